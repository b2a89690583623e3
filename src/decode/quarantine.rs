//! Quarantine: the bad records of one read, kept in a local Arrow IPC file as they are found.
//!
//! A topic can hold any number of messages that are not game events; holding them in memory
//! until the end of the read would make a job's memory grow with them. They are buffered up to
//! [`FLUSH_RECORDS`] records or [`FLUSH_BYTES`] bytes, then appended to a file of
//! [`super::bad_records_schema`] batches in the system temp folder (`TMPDIR`), deleted when the
//! run ends. The job writes them to `_bad_records` from there, one batch at a time.

use std::fs::File;
use std::io::BufWriter;

use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use tempfile::NamedTempFile;

use crate::temp_ipc;

use super::{BadRecord, DecodeError, bad_records_batch, bad_records_schema};

/// Bad records buffered before they go to the file.
pub const FLUSH_RECORDS: usize = 8192;
/// Bytes of bad values buffered before they go to the file.
pub const FLUSH_BYTES: usize = 16 << 20;

fn quarantine_error(
    action: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DecodeError {
    DecodeError::Quarantine {
        action: action.to_owned(),
        source: Box::new(source),
    }
}

fn from_temp_ipc(e: temp_ipc::TempIpcError) -> DecodeError {
    DecodeError::Quarantine {
        action: e.action,
        source: e.source,
    }
}

/// Collects the bad records of one read with bounded memory.
pub struct Quarantine {
    topic: String,
    pending: Vec<BadRecord>,
    pending_bytes: usize,
    file: Option<(StreamWriter<BufWriter<File>>, NamedTempFile)>,
    count: u64,
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantine")
            .field("topic", &self.topic)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// The bad records of a finished read: in memory when few, else in their file.
#[derive(Debug)]
pub struct Quarantined {
    topic: String,
    last: Vec<BadRecord>,
    file: Option<NamedTempFile>,
    count: u64,
}

impl Quarantine {
    /// An empty quarantine for messages of `topic`.
    pub fn new(topic: &str) -> Self {
        Quarantine {
            topic: topic.to_owned(),
            pending: Vec::new(),
            pending_bytes: 0,
            file: None,
            count: 0,
        }
    }

    /// Adds bad records, writing the buffer out when it is full.
    pub fn extend(&mut self, bad: impl IntoIterator<Item = BadRecord>) -> Result<(), DecodeError> {
        for record in bad {
            self.pending_bytes += record.value.as_ref().map_or(0, Vec::len)
                + record.key.as_ref().map_or(0, Vec::len)
                + record.error.len();
            self.pending.push(record);
            self.count += 1;
            if self.pending.len() >= FLUSH_RECORDS || self.pending_bytes >= FLUSH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DecodeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            let (file, writer) = temp_ipc::create(
                "bnetl-bad-records-",
                "the bad records file",
                &bad_records_schema(),
            )
            .map_err(from_temp_ipc)?;
            self.file = Some((writer, file));
        }
        let batch = bad_records_batch(&self.topic, &self.pending)?;
        let (writer, _) = self.file.as_mut().expect("created above");
        writer
            .write(&batch)
            .map_err(|e| quarantine_error("write the bad records file", e))?;
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Ends the read: what was quarantined, ready to be written out.
    pub fn finish(mut self) -> Result<Quarantined, DecodeError> {
        let file = match self.file.take() {
            Some((mut writer, file)) => {
                self.file = None;
                let batch = bad_records_batch(&self.topic, &self.pending)?;
                writer
                    .write(&batch)
                    .map_err(|e| quarantine_error("write the bad records file", e))?;
                writer
                    .finish()
                    .map_err(|e| quarantine_error("finish the bad records file", e))?;
                self.pending.clear();
                Some(file)
            }
            None => None,
        };
        Ok(Quarantined {
            topic: self.topic,
            last: self.pending,
            file,
            count: self.count,
        })
    }
}

impl Quarantined {
    /// Bad records.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The bad records as batches of [`super::bad_records_schema`], in the order found; at
    /// least one batch (empty when there were none), so a table always gets their schema.
    pub fn batches(
        &self,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, DecodeError>> + Send>, DecodeError>
    {
        let Some(file) = &self.file else {
            let batch = bad_records_batch(&self.topic, &self.last)?;
            return Ok(Box::new(std::iter::once(Ok(batch))));
        };
        let reader = temp_ipc::read(file, "the bad records file").map_err(from_temp_ipc)?;
        Ok(Box::new(reader.map(|batch| {
            batch.map_err(|e| quarantine_error("read the bad records file", e))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(offset: i64) -> BadRecord {
        BadRecord {
            partition: 0,
            offset,
            timestamp_ms: offset,
            key: None,
            value: Some(vec![b'x'; 10]),
            error: "not JSON".into(),
        }
    }

    #[test]
    fn many_bad_records_go_through_the_file_in_order() {
        let mut quarantine = Quarantine::new("events");
        let n = FLUSH_RECORDS as i64 * 2 + 5;
        quarantine.extend((0..n).map(bad)).unwrap();
        assert!(quarantine.file.is_some());
        assert!(quarantine.pending.len() < FLUSH_RECORDS);
        let done = quarantine.finish().unwrap();
        assert_eq!(done.count(), n as u64);
        let offsets: Vec<i64> = done
            .batches()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let o = b
                    .column(2)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .clone();
                o.values().to_vec()
            })
            .collect();
        assert_eq!(offsets, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn few_bad_records_stay_in_memory_and_none_still_give_a_batch() {
        let mut quarantine = Quarantine::new("events");
        quarantine.extend([bad(1)]).unwrap();
        let done = quarantine.finish().unwrap();
        assert!(done.file.is_none());
        assert_eq!(
            done.batches().unwrap().next().unwrap().unwrap().num_rows(),
            1
        );
        let none = Quarantine::new("events").finish().unwrap();
        assert_eq!(
            none.batches().unwrap().next().unwrap().unwrap().num_rows(),
            0
        );
    }
}
