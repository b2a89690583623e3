//! Source stage: a topic log → messages.
//!
//! A [`TopicLog`] is where events live: the embedded log (a durable SQLite file under the data
//! dir, the default) or a Kafka cluster (`--brokers`). Batch jobs resolve their offset ranges
//! once ([`snapshot`]: watermarks plus Spark's starting/ending options) and then read exactly
//! those ranges ([`TopicLog::read`]), so events that arrive during a run are left for the next
//! one. Appends go through [`embedded::LogWriter`], the group-committing [`Producer`], or
//! Kafka's producers.

pub mod embedded;
pub mod kafka;
pub mod offsets;
pub mod producer;
pub mod spill;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

use bytes::Bytes;

pub use embedded::EmbeddedLog;
pub use kafka::KafkaLog;
pub use offsets::{OffsetRange, ReadBounds};
pub use producer::Producer;

use offsets::{DataLoss, ResolveError, Watermark};

/// One message read from a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Partition the message was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Kafka's timestamp type, as Spark's `timestampType`: 0 CreateTime, 1 LogAppendTime.
    pub timestamp_type: i32,
    /// Optional record key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a tombstone. Shared, not copied, with the batch it was read
    /// in (the embedded log's batch row); whatever keeps a message long copies it first.
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// One record to append to a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Optional key; records with a key always go to the same partition.
    pub key: Option<Vec<u8>>,
    /// The value, stored byte for byte.
    pub value: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Partition to append to; `None` lets the key (or the partitioner) decide.
    pub partition: Option<i32>,
}

/// Where a topic lives.
#[derive(Debug, Clone)]
pub enum TopicLog {
    /// The embedded durable log under the data dir.
    Embedded(EmbeddedLog),
    /// A Kafka cluster.
    Kafka(KafkaLog),
}

/// The ranges a run reads, resolved once at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// One range per partition.
    pub ranges: Vec<OffsetRange>,
    /// Offsets skipped because the log no longer holds them (`--fail-on-data-loss false`).
    pub lost: Vec<DataLoss>,
}

impl TopicLog {
    /// The embedded log stored in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        TopicLog::Embedded(EmbeddedLog::new(data_dir))
    }

    /// The `[low, high)` watermarks of every partition of `topic`.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermark>, SourceError> {
        match self {
            TopicLog::Embedded(log) => log.watermarks(topic),
            TopicLog::Kafka(log) => log.watermarks(topic),
        }
    }

    /// Per partition, the first offset whose timestamp is at least `timestamp_ms`.
    pub fn offsets_for_times(
        &self,
        topic: &str,
        timestamp_ms: i64,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, SourceError> {
        match self {
            TopicLog::Embedded(log) => log.offsets_for_times(topic, timestamp_ms, partitions),
            TopicLog::Kafka(log) => log.offsets_for_times(topic, timestamp_ms, partitions),
        }
    }

    /// Reads every message of `ranges`, handing them to `on_batch` in batches of at most
    /// `batch_rows`. Blocking: call it from a blocking thread. `on_batch` returns
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
            TopicLog::Kafka(log) => log.read(topic, ranges, batch_rows, on_batch),
        }
    }

    /// A description for messages: the log's location.
    pub fn describe(&self) -> String {
        match self {
            TopicLog::Embedded(log) => format!("embedded log {}", log.path().display()),
            TopicLog::Kafka(log) => format!("Kafka at {}", log.brokers()),
        }
    }
}

/// Resolves the ranges of a bounded read of `topic`: watermarks, then Spark's options.
pub fn snapshot(log: &TopicLog, topic: &str, bounds: &ReadBounds) -> Result<Snapshot, SourceError> {
    let watermarks = log.watermarks(topic)?;
    let partitions: Vec<i32> = watermarks.iter().map(|w| w.partition).collect();
    let times = |ts: Option<i64>| {
        ts.map(|ts| log.offsets_for_times(topic, ts, &partitions))
            .transpose()
    };
    let start_times = times(bounds.starting_timestamp)?;
    let end_times = times(bounds.ending_timestamp)?;
    let resolved = offsets::resolve(
        topic,
        &watermarks,
        bounds,
        start_times.as_ref(),
        end_times.as_ref(),
    )?;
    for lost in &resolved.lost {
        tracing::warn!(
            topic,
            partition = lost.partition,
            requested = lost.requested,
            log_start = lost.log_start,
            skipped = lost.skipped(),
            "data loss: offsets below the log start are skipped (--fail-on-data-loss false)"
        );
    }
    Ok(Snapshot {
        ranges: resolved.ranges,
        lost: resolved.lost,
    })
}

/// Headers as stored: `None` when there are none, else a JSON array of `[name, [bytes…] | null]`.
pub(crate) fn encode_headers(headers: &[(String, Option<Vec<u8>>)]) -> Option<Vec<u8>> {
    if headers.is_empty() {
        None
    } else {
        serde_json::to_vec(headers).ok()
    }
}

/// Inverse of [`encode_headers`]; bnetl wrote the bytes, so a value it cannot read is a
/// corrupted file and yields no headers rather than failing the read.
pub(crate) fn decode_headers(stored: Option<&[u8]>) -> Vec<(String, Option<Vec<u8>>)> {
    stored
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or_default()
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
    #[error("Kafka at {brokers} refused bnetl: {reason}")]
    Refused { brokers: String, reason: String },
    #[error("cannot {action}")]
    Kafka {
        action: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("{topic} has no partition {partition} (it has {partitions})")]
    NoSuchPartition {
        topic: String,
        partition: i32,
        partitions: i32,
    },
    #[error("{failed} of {sent} records sent to {topic} were not acknowledged by the broker")]
    NotAcknowledged {
        topic: String,
        failed: u64,
        sent: u64,
    },
    #[error(
        "records of {topic} (partitions {partitions:?}) were deleted while they were read (data loss)"
    )]
    DataLossDuringRead { topic: String, partitions: Vec<i32> },
    #[error(
        "the embedded log {log} is damaged: the batch of {topic}/{partition} from offset {base_offset} stops making sense at byte {at}"
    )]
    CorruptBatch {
        log: PathBuf,
        topic: String,
        partition: i32,
        base_offset: i64,
        at: usize,
    },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot {action}")]
    Spill {
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
