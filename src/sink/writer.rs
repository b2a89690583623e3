//! Parquet files of one run: one open writer per partition, rolled by [`RollPolicy`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::{Path, PathPart};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::SinkError;
use super::partition::{PartitionKey, data_schema, hive_path, split_by_partition};

/// Rows per Parquet row group: large enough for good compression and scans, small enough that
/// the encoder's buffers stay a few tens of MB.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// When to close a data file and start the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollPolicy {
    /// A file holds at most this many rows.
    pub max_rows_per_file: u64,
    /// Close a file once its encoded size reaches this many bytes (checked after each batch, so
    /// a file can exceed it by up to one batch's encoded size).
    pub max_file_bytes: u64,
}

impl Default for RollPolicy {
    fn default() -> Self {
        RollPolicy {
            max_rows_per_file: 4 * 1024 * 1024,
            max_file_bytes: 512 * 1024 * 1024,
        }
    }
}

/// What a data file holds so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFileStats {
    /// Rows written.
    pub rows: u64,
    /// Encoded bytes, flushed and buffered.
    pub bytes: u64,
}

impl RollPolicy {
    /// True when a file with `stats` is full.
    pub fn should_roll(&self, stats: &OpenFileStats) -> bool {
        stats.rows >= self.max_rows_per_file || stats.bytes >= self.max_file_bytes
    }
}

struct OpenFile {
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

/// Writes the batches of one run under a folder, Hive-partitioned by `partition_by`.
pub struct PartitionedWriter {
    store: Arc<dyn ObjectStore>,
    folder: Path,
    run_id: String,
    partition_by: Vec<String>,
    data_schema: SchemaRef,
    roll: RollPolicy,
    open: HashMap<PartitionKey, OpenFile>,
    next_seq: u32,
    files: Vec<Path>,
    rows: u64,
}

impl PartitionedWriter {
    /// A writer for batches of `schema` into `folder`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        folder: Path,
        run_id: &str,
        schema: &SchemaRef,
        partition_by: Vec<String>,
        roll: RollPolicy,
    ) -> Result<Self, SinkError> {
        for column in &partition_by {
            if schema.index_of(column).is_err() {
                return Err(SinkError::PartitionColumn {
                    column: column.clone(),
                    available: schema.fields().iter().map(|f| f.name().clone()).collect(),
                });
            }
        }
        let data_schema = Arc::new(data_schema(schema, &partition_by));
        Ok(PartitionedWriter {
            store,
            folder,
            run_id: run_id.to_owned(),
            partition_by,
            data_schema,
            roll,
            open: HashMap::new(),
            next_seq: 0,
            files: Vec::new(),
            rows: 0,
        })
    }

    /// Writes one batch, rolling files as the policy says.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let parts = if self.partition_by.is_empty() {
            vec![(Vec::new(), batch.clone())]
        } else {
            split_by_partition(batch, &self.partition_by).map_err(SinkError::Arrow)?
        };
        for (key, mut part) in parts {
            // A file never holds more than `max_rows_per_file` rows, as Spark's
            // maxRecordsPerFile: a batch that would overfill it is split across files.
            while part.num_rows() > 0 {
                if !self.open.contains_key(&key) {
                    let file = self.open_file(&key)?;
                    self.open.insert(key.clone(), file);
                }
                let file = self.open.get_mut(&key).expect("inserted above");
                let room = self.roll.max_rows_per_file.saturating_sub(file.rows).max(1);
                let take = part
                    .num_rows()
                    .min(usize::try_from(room).unwrap_or(usize::MAX));
                let head = part.slice(0, take);
                part = part.slice(take, part.num_rows() - take);
                file.writer.write(&head).await.map_err(SinkError::Parquet)?;
                file.rows += take as u64;
                self.rows += take as u64;
                let stats = OpenFileStats {
                    rows: file.rows,
                    bytes: (file.writer.bytes_written() + file.writer.in_progress_size()) as u64,
                };
                if self.roll.should_roll(&stats) {
                    let full = self.open.remove(&key).expect("present");
                    full.writer.close().await.map_err(SinkError::Parquet)?;
                }
            }
        }
        Ok(())
    }

    fn open_file(&mut self, key: &[Option<String>]) -> Result<OpenFile, SinkError> {
        let name = format!("part-{}-{:05}.snappy.parquet", self.run_id, self.next_seq);
        self.next_seq += 1;
        let mut path = self.folder.clone();
        if !key.is_empty() {
            // Segments are already escaped as Spark escapes them (`%2F` for `/`): taken as
            // they are, not escaped a second time by object_store.
            for segment in hive_path(&self.partition_by, key).split('/') {
                let part = PathPart::parse(segment).map_err(|e| SinkError::Location {
                    location: segment.to_owned(),
                    reason: e.to_string(),
                })?;
                path = path.join(part);
            }
        }
        let path = path.join(name);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("bnetl version {}", env!("CARGO_PKG_VERSION")))
            .build();
        let object = BufWriter::new(Arc::clone(&self.store), path.clone());
        let writer = AsyncArrowWriter::try_new(object, Arc::clone(&self.data_schema), Some(props))
            .map_err(SinkError::Parquet)?;
        self.files.push(path);
        Ok(OpenFile { writer, rows: 0 })
    }

    /// Closes every open file. With `schema_file`, a run with no rows still writes one empty
    /// file, so the table has a schema that readers can load.
    pub async fn finish(mut self, schema_file: bool) -> Result<WrittenFiles, SinkError> {
        if self.files.is_empty() && schema_file {
            let key: PartitionKey = self.partition_by.iter().map(|_| None).collect();
            let file = self.open_file(&key)?;
            self.open.insert(key, file);
        }
        // Closed together: on HDFS each close can wait 500 ms for the NameNode to hear of the
        // last block (hdfs-native's `complete` retry), so one after another adds up per file.
        futures::future::try_join_all(self.open.drain().map(|(_, file)| file.writer.close()))
            .await
            .map_err(SinkError::Parquet)?;
        Ok(WrittenFiles {
            files: self.files,
            rows: self.rows,
        })
    }
}

/// The files a run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    /// Data files, in the order they were opened.
    pub files: Vec<Path>,
    /// Rows across all files.
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_roll_on_rows_or_bytes_whichever_comes_first() {
        let policy = RollPolicy {
            max_rows_per_file: 100,
            max_file_bytes: 1_000,
        };
        assert!(!policy.should_roll(&OpenFileStats {
            rows: 99,
            bytes: 999
        }));
        assert!(policy.should_roll(&OpenFileStats {
            rows: 100,
            bytes: 0
        }));
        assert!(policy.should_roll(&OpenFileStats {
            rows: 1,
            bytes: 1_000
        }));
    }
}
