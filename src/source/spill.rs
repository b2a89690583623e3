//! Spill: the messages of one bounded read, kept in a local Arrow IPC file.
//!
//! A run normally decodes while it reads and keeps nothing. When that cannot be used (a batch
//! changed the inferred schema, or a query reads `events` more than once), the run reads its
//! ranges again and writes every message here; the decode and every scan of the `events` table
//! then replay the file, so they all see exactly the same bytes. The file lives in the system
//! temp folder (`TMPDIR`) and is deleted when the last handle is dropped.

use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use arrow::ipc::writer::StreamWriter;
use bytes::Bytes;
use tempfile::NamedTempFile;

use crate::temp_ipc;

use super::{Message, SourceError, decode_headers, encode_headers};

fn spill_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("timestamp_type", DataType::Int32, false),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("headers", DataType::Binary, true),
    ]))
}

fn spill_error(
    action: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> SourceError {
    SourceError::Spill {
        action: action.to_owned(),
        source: Box::new(source),
    }
}

fn from_temp_ipc(e: temp_ipc::TempIpcError) -> SourceError {
    SourceError::Spill {
        action: e.action,
        source: e.source,
    }
}

/// Writes messages to a new spill file.
pub struct SpillWriter {
    writer: StreamWriter<BufWriter<File>>,
    file: NamedTempFile,
    messages: u64,
}

/// A finished spill file: replayable any number of times, from any thread.
#[derive(Debug, Clone)]
pub struct Spill {
    file: Arc<NamedTempFile>,
    messages: u64,
}

impl SpillWriter {
    /// Creates an empty spill file in the system temp folder.
    pub fn create() -> Result<Self, SourceError> {
        let (file, writer) = temp_ipc::create("bnetl-spill-", "the spill file", &spill_schema())
            .map_err(from_temp_ipc)?;
        Ok(SpillWriter {
            writer,
            file,
            messages: 0,
        })
    }

    /// Appends `messages`.
    pub fn write(&mut self, messages: &[Message]) -> Result<(), SourceError> {
        let rows = messages.len();
        let mut partitions = Int32Builder::with_capacity(rows);
        let mut offsets = Int64Builder::with_capacity(rows);
        let mut timestamps = Int64Builder::with_capacity(rows);
        let mut types = Int32Builder::with_capacity(rows);
        let mut keys = BinaryBuilder::with_capacity(rows, 0);
        let value_bytes = messages
            .iter()
            .map(|m| m.value.as_ref().map_or(0, Bytes::len))
            .sum();
        let mut values = BinaryBuilder::with_capacity(rows, value_bytes);
        let mut headers = BinaryBuilder::with_capacity(rows, 0);
        for m in messages {
            partitions.append_value(m.partition);
            offsets.append_value(m.offset);
            timestamps.append_value(m.timestamp_ms);
            types.append_value(m.timestamp_type);
            keys.append_option(m.key.as_deref());
            values.append_option(m.value.as_deref());
            headers.append_option(encode_headers(&m.headers));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(partitions.finish()),
            Arc::new(offsets.finish()),
            Arc::new(timestamps.finish()),
            Arc::new(types.finish()),
            Arc::new(keys.finish()),
            Arc::new(values.finish()),
            Arc::new(headers.finish()),
        ];
        let batch = RecordBatch::try_new(spill_schema(), columns)
            .map_err(|e| spill_error("build a spill batch", e))?;
        self.writer
            .write(&batch)
            .map_err(|e| spill_error("write the spill file", e))?;
        self.messages += rows as u64;
        Ok(())
    }

    /// Flushes and closes the file for replaying.
    pub fn finish(mut self) -> Result<Spill, SourceError> {
        self.writer
            .finish()
            .map_err(|e| spill_error("finish the spill file", e))?;
        Ok(Spill {
            file: Arc::new(self.file),
            messages: self.messages,
        })
    }
}

impl Spill {
    /// Messages in the file.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Replays every message in the order it was written, one written batch at a time.
    pub fn read(
        &self,
        on_batch: &mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let reader = temp_ipc::read(&self.file, "the spill file").map_err(from_temp_ipc)?;
        for batch in reader {
            let batch = batch.map_err(|e| spill_error("read the spill file", e))?;
            if on_batch(messages_of(&batch)).is_break() {
                break;
            }
        }
        Ok(())
    }
}

fn messages_of(batch: &RecordBatch) -> Vec<Message> {
    let partitions = batch.column(0).as_primitive::<Int32Type>();
    let offsets = batch.column(1).as_primitive::<Int64Type>();
    let timestamps = batch.column(2).as_primitive::<Int64Type>();
    let types = batch.column(3).as_primitive::<Int32Type>();
    let keys = batch.column(4).as_binary::<i32>();
    let values = batch.column(5).as_binary::<i32>();
    let headers = batch.column(6).as_binary::<i32>();
    let bytes = |array: &arrow::array::BinaryArray, row: usize| {
        (!array.is_null(row)).then(|| array.value(row).to_vec())
    };
    (0..batch.num_rows())
        .map(|row| Message {
            partition: partitions.value(row),
            offset: offsets.value(row),
            timestamp_ms: timestamps.value(row),
            timestamp_type: types.value(row),
            key: bytes(keys, row).map(Bytes::from),
            value: bytes(values, row).map(Bytes::from),
            headers: decode_headers((!headers.is_null(row)).then(|| headers.value(row))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, value: Option<&[u8]>) -> Message {
        Message {
            partition: 3,
            offset,
            timestamp_ms: 1_000 + offset,
            timestamp_type: 1,
            key: (offset % 2 == 0).then(|| Bytes::from_static(b"k")),
            value: value.map(Bytes::copy_from_slice),
            headers: if offset == 1 {
                vec![("h".into(), None)]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn a_spill_replays_every_message_byte_for_byte_and_more_than_once() {
        let first = vec![message(0, Some(b"{\"a\":1}")), message(1, None)];
        let second = vec![
            message(2, Some(b"\xff\xfe not utf-8")),
            message(3, Some(b"")),
        ];
        let mut writer = SpillWriter::create().unwrap();
        writer.write(&first).unwrap();
        writer.write(&second).unwrap();
        let spill = writer.finish().unwrap();
        assert_eq!(spill.messages(), 4);
        for _ in 0..2 {
            let mut replayed = Vec::new();
            spill
                .read(&mut |batch| {
                    replayed.push(batch);
                    ControlFlow::Continue(())
                })
                .unwrap();
            assert_eq!(replayed, vec![first.clone(), second.clone()]);
        }
    }

    #[test]
    fn the_file_is_removed_with_the_last_handle() {
        let spill = SpillWriter::create().unwrap().finish().unwrap();
        let path = spill.file.path().to_owned();
        let copy = spill.clone();
        drop(spill);
        assert!(path.exists());
        drop(copy);
        assert!(!path.exists());
    }
}
