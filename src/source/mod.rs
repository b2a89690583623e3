//! Source stage: a topic log → messages.
//!
//! A [`TopicLog`] is where events live: the embedded log (a durable SQLite file under the data
//! dir, the default) or, later, a Kafka cluster. Batch jobs snapshot its offset ranges once
//! ([`TopicLog::snapshot`]) and then read exactly those ranges ([`TopicLog::read`]), so events
//! that arrive during a run are left for the next one. Appends go through [`LogWriter`] or the
//! group-committing [`Producer`].
//!
//! [`LogWriter`]: embedded::LogWriter

pub mod embedded;
pub mod offsets;
pub mod producer;

use std::ops::ControlFlow;
use std::path::PathBuf;

pub use embedded::EmbeddedLog;
pub use offsets::OffsetRange;
pub use producer::Producer;

/// One message read from a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Partition the message was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Optional record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

/// One record to append to a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Optional key; records with a key always go to the same partition.
    pub key: Option<Vec<u8>>,
    /// The value, stored byte for byte.
    pub value: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// Where a topic lives.
#[derive(Debug, Clone)]
pub enum TopicLog {
    /// The embedded durable log under the data dir.
    Embedded(EmbeddedLog),
}

impl TopicLog {
    /// The embedded log stored in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        TopicLog::Embedded(EmbeddedLog::new(data_dir))
    }

    /// Snapshots the `[low, high)` watermarks of every partition of `topic`.
    pub fn snapshot(&self, topic: &str) -> Result<Vec<OffsetRange>, SourceError> {
        match self {
            TopicLog::Embedded(log) => log.snapshot(topic),
        }
    }

    /// Reads every message of `ranges` in offset order, handing them to `on_batch` in batches of
    /// at most `batch_rows`. Blocking: call it from a blocking thread. `on_batch` returns
    /// `ControlFlow::Break` to stop early (the receiver went away).
    pub fn read(
        &self,
        topic: &str,
        ranges: &[OffsetRange],
        batch_rows: usize,
        on_batch: &mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        match self {
            TopicLog::Embedded(log) => log.read(topic, ranges, batch_rows, on_batch),
        }
    }

    /// A description for messages: the log's location.
    pub fn describe(&self) -> String {
        match self {
            TopicLog::Embedded(log) => format!("embedded log {}", log.path().display()),
        }
    }
}

/// Failures reading or appending to a topic log.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open the embedded log {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "topic {topic} does not exist in {log} (produce to it first: bnetl serve or bnetl produce)"
    )]
    UnknownTopic { topic: String, log: String },
    #[error("cannot read watermarks of {topic}")]
    Watermarks {
        topic: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read {topic}/{partition} from offset {start}")]
    Read {
        topic: String,
        partition: i32,
        start: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{topic}/{partition} stopped at offset {reached}, expected to reach {end}")]
    Incomplete {
        topic: String,
        partition: i32,
        reached: i64,
        end: i64,
    },
    #[error("cannot append {count} records to {topic}")]
    Append {
        topic: String,
        count: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the log writer for {topic} has stopped")]
    WriterGone { topic: String },
}
