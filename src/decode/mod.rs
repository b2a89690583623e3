//! Decode stage: messages → Arrow `RecordBatch`es of game events.
//!
//! The decoder owns the schema ([`schema`]): which columns exist, their order and types, and how
//! conflicts are resolved. Messages that are not JSON objects are bad records: kept aside with
//! their position and the reason (in a [`Quarantine`], with bounded memory), counted, and
//! written to the `_bad_records` table.

pub mod json;
pub mod quarantine;
pub mod schema;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

pub use json::{Conformance, EventDecoder, scan};
pub use quarantine::{Quarantine, Quarantined};
pub use schema::SchemaInference;

use crate::source::Message;

/// Name of the quarantine table.
pub const BAD_RECORDS_TABLE: &str = "_bad_records";

/// Failures of the decode stage (bad records are data, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot build a batch of decoded events")]
    Arrow(#[source] ArrowError),
    #[error("a batch changed the inferred schema; the read is decoded again with the whole schema")]
    SchemaChanged,
    #[error("cannot {action}")]
    Quarantine {
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A message that is not a game event, kept with where it came from and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Partition of the message.
    pub partition: i32,
    /// Offset of the message.
    pub offset: i64,
    /// Record timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Raw value, byte for byte.
    pub value: Option<Vec<u8>>,
    /// Why it was rejected.
    pub error: String,
}

impl BadRecord {
    /// A bad record for `message`.
    pub fn new(message: &Message, error: String) -> Self {
        BadRecord {
            partition: message.partition,
            offset: message.offset,
            timestamp_ms: message.timestamp_ms,
            // Copied: a message's bytes can be a slice of its whole batch, which a kept
            // bad record must not hold on to.
            key: message.key.as_deref().map(<[u8]>::to_vec),
            value: message.value.as_deref().map(<[u8]>::to_vec),
            error,
        }
    }
}

/// Schema of the `_bad_records` table.
pub fn bad_records_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("error", DataType::Utf8, false),
    ]))
}

/// The bad records of `topic` as one batch of [`bad_records_schema`].
pub fn bad_records_batch(topic: &str, bad: &[BadRecord]) -> Result<RecordBatch, DecodeError> {
    let mut topics = StringBuilder::new();
    let mut partitions = Int32Builder::new();
    let mut offsets = Int64Builder::new();
    let mut timestamps = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut keys = BinaryBuilder::new();
    let mut values = BinaryBuilder::new();
    let mut errors = StringBuilder::new();
    for record in bad {
        topics.append_value(topic);
        partitions.append_value(record.partition);
        offsets.append_value(record.offset);
        timestamps.append_value(record.timestamp_ms);
        keys.append_option(record.key.as_deref());
        values.append_option(record.value.as_deref());
        errors.append_value(&record.error);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(topics.finish()),
        Arc::new(partitions.finish()),
        Arc::new(offsets.finish()),
        Arc::new(timestamps.finish()),
        Arc::new(keys.finish()),
        Arc::new(values.finish()),
        Arc::new(errors.finish()),
    ];
    RecordBatch::try_new(bad_records_schema(), columns).map_err(DecodeError::Arrow)
}
