//! Sink stage: `RecordBatch` streams → a Parquet table in the warehouse (local, S3 or HDFS),
//! staged out of readers' sight and committed with Spark's save modes (see [`commit`]).

pub mod commit;
pub mod durable;
pub mod partition;
pub mod read_only;
pub mod store;
pub mod writer;

use std::error::Error as StdError;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use parquet::errors::ParquetError;
use tokio_util::sync::CancellationToken;

pub use commit::{Commit, CommittedRange, SaveMode, TableLog};
pub use store::Warehouse;
pub use writer::{PartitionedWriter, RollPolicy};

/// Marker file that says a table is complete, as Hadoop's output committer writes it.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Failures writing a table.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid warehouse location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error("cannot write Parquet")]
    Parquet(#[source] ParquetError),
    #[error("cannot split a batch into partitions")]
    Arrow(#[source] ArrowError),
    #[error("cannot write {path}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "HDFS at {cluster} refused this client: Kerberos authentication failed ({reason}); get a ticket with `kinit PRINCIPAL` or `kinit -kt KEYTAB PRINCIPAL`, or name a keytab in KRB5_CLIENT_KTNAME"
    )]
    Kerberos { cluster: String, reason: String },
    #[error("cannot sync {path} to disk")]
    Sync {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("partition column {column} is not in the output (columns: {})", available.join(", "))]
    PartitionColumn {
        column: String,
        available: Vec<String>,
    },
    #[error(
        "table {table} changed while this run was writing: its version {version} was committed by {other_run}; this run's output was discarded (run it again)"
    )]
    Conflict {
        table: String,
        version: u64,
        other_run: String,
    },
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("table {table} already exists at {location} (--mode error-if-exists)")]
    Exists { table: String, location: String },
    #[error("writing table {table} was interrupted")]
    Cancelled { table: String },
    #[error("the input of table {table} failed")]
    Input {
        table: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// What to write: a table name, its partition columns and file sizes.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table (folder) name under the warehouse.
    pub name: String,
    /// Hive partition columns, outermost first.
    pub partition_by: Vec<String>,
    /// When to start a new file.
    pub roll: RollPolicy,
}

/// What a committed write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// Table name.
    pub table: String,
    /// Rows written.
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// Where the table is.
    pub location: String,
}

/// The folder (warehouse-relative) that holds the bad records of `table`'s runs: a partition of
/// the `_bad_records` table, so each job's quarantined messages are kept apart and committed
/// with its table.
pub fn bad_records_folder(table: &str) -> String {
    format!(
        "{}/{}",
        crate::decode::BAD_RECORDS_TABLE,
        partition::hive_path(&["table_name".to_owned()], &[Some(table.to_owned())])
    )
}

/// One run's output to a table and its bad records: staged out of sight, then committed as the
/// table's next version, or discarded.
#[derive(Debug)]
pub struct TableRun {
    warehouse: Warehouse,
    log: TableLog,
    spec: TableSpec,
    mode: SaveMode,
    run_id: String,
    base: Option<Commit>,
    untracked: bool,
    files: Vec<String>,
    rows: u64,
    bad_records: u64,
}

impl TableRun {
    /// Prepares a run of `mode` on table `spec.name`: finishes a commit an interrupted run left
    /// half published, then applies the mode. `None` means `--mode ignore` found the table.
    pub async fn begin(
        warehouse: &Warehouse,
        spec: &TableSpec,
        mode: SaveMode,
        run_id: &str,
    ) -> Result<Option<Self>, SinkError> {
        let log = TableLog::new(warehouse, &spec.name);
        let base = log.recover().await?;
        let exists = base.is_some() || log.exists().await?;
        if matches!(mode, SaveMode::ErrorIfExists | SaveMode::Ignore) && exists {
            if mode == SaveMode::Ignore {
                return Ok(None);
            }
            return Err(SinkError::Exists {
                table: spec.name.clone(),
                location: warehouse.table_url(&spec.name),
            });
        }
        Ok(Some(TableRun {
            warehouse: warehouse.clone(),
            log,
            spec: spec.clone(),
            // A table that did not exist is written as a whole, as Spark does.
            mode: if mode == SaveMode::Append {
                mode
            } else {
                SaveMode::Overwrite
            },
            run_id: run_id.to_owned(),
            untracked: exists && base.is_none(),
            base,
            files: Vec::new(),
            rows: 0,
            bad_records: 0,
        }))
    }

    /// True when the table exists but has no commit log (written by another tool or an older
    /// bnetl): which offsets it holds is unknown.
    pub fn untracked(&self) -> bool {
        self.untracked
    }

    /// The version this run builds on, if the table has one.
    pub fn base(&self) -> Option<&Commit> {
        self.base.as_ref()
    }

    /// True when the run must write a file even with no rows, so that the table (new or
    /// replaced) has a schema readers can load.
    fn needs_schema_file(&self) -> bool {
        self.mode == SaveMode::Overwrite || self.base.is_none()
    }

    fn staging(&self) -> object_store::path::Path {
        self.warehouse.path(&TableLog::staging_folder(&self.run_id))
    }

    /// Stages the table's rows.
    pub async fn write<S, E>(
        &mut self,
        schema: &SchemaRef,
        batches: S,
        on_rows: impl Fn(u64),
        cancel: &CancellationToken,
    ) -> Result<u64, SinkError>
    where
        S: Stream<Item = Result<RecordBatch, E>> + Unpin,
        E: StdError + Send + Sync + 'static,
    {
        let folder = self.staging().join(self.spec.name.as_str());
        let written = stage(
            &self.warehouse,
            folder,
            &self.spec,
            &self.run_id,
            schema,
            batches,
            self.needs_schema_file(),
            on_rows,
            cancel,
        )
        .await?;
        self.rows += written.rows;
        self.keep(&written);
        Ok(written.rows)
    }

    /// Stages the run's bad records (one batch of `decode::bad_records_schema`).
    pub async fn write_bad_records(
        &mut self,
        batch: RecordBatch,
        cancel: &CancellationToken,
    ) -> Result<(), SinkError> {
        if batch.num_rows() == 0 && !self.needs_schema_file() {
            return Ok(());
        }
        let folder = bad_records_folder(&self.spec.name);
        let spec = TableSpec {
            name: folder.clone(),
            partition_by: Vec::new(),
            roll: RollPolicy::default(),
        };
        let schema = batch.schema();
        let rows = batch.num_rows() as u64;
        let batches = futures::stream::iter([Ok::<_, std::convert::Infallible>(batch)]);
        let folder = self.warehouse.path(&format!(
            "{}/{folder}",
            TableLog::staging_folder(&self.run_id)
        ));
        let written = stage(
            &self.warehouse,
            folder,
            &spec,
            &self.run_id,
            &schema,
            batches,
            true,
            |_| (),
            cancel,
        )
        .await?;
        self.bad_records += rows;
        self.keep(&written);
        Ok(())
    }

    /// Removes the table's staged files (not its bad records'), so that it can be written again.
    pub async fn discard_staged_table(&mut self) {
        let prefix = format!("{}/", self.spec.name);
        self.files.retain(|f| !f.starts_with(&prefix));
        self.rows = 0;
        let folder = format!(
            "{}/{}",
            TableLog::staging_folder(&self.run_id),
            self.spec.name
        );
        commit::remove_folder(&self.warehouse, &folder).await;
    }

    fn keep(&mut self, written: &writer::WrittenFiles) {
        let staging = self.staging();
        self.files.extend(
            written
                .files
                .iter()
                .filter_map(|f| Warehouse::relative_to(f, &staging)),
        );
    }

    /// Commits the staged files as the table's next version, recording the offsets read, and
    /// publishes them. Fails with [`SinkError::Conflict`] if another run committed since
    /// [`TableRun::begin`]; the staged files are then removed.
    pub async fn commit(
        self,
        job: &str,
        topic: &str,
        ranges: Vec<CommittedRange>,
    ) -> Result<(Commit, WriteSummary), SinkError> {
        let commit = Commit {
            version: self.base.as_ref().map_or(1, |b| b.version + 1),
            run_id: self.run_id.clone(),
            job: job.to_owned(),
            mode: self.mode,
            committed_at_ms: commit::now_ms(),
            topic: topic.to_owned(),
            offsets: commit::next_offsets(self.base.as_ref(), self.mode, &ranges),
            ranges,
            files: self.files.clone(),
            rows: self.rows,
            bad_records: self.bad_records,
        };
        if let Err(e) = self.log.claim(&commit).await {
            self.abort().await;
            return Err(e);
        }
        // From here on the run is committed: a failure to publish is finished by the next run.
        self.log.publish(&commit).await?;
        let table_files = commit
            .files
            .iter()
            .filter(|f| f.starts_with(&format!("{}/", self.spec.name)))
            .count();
        let summary = WriteSummary {
            table: self.spec.name.clone(),
            rows: self.rows,
            files: table_files,
            location: self.warehouse.table_url(&self.spec.name),
        };
        Ok((commit, summary))
    }

    /// Discards the staged files.
    pub async fn abort(self) {
        commit::remove_folder(&self.warehouse, &TableLog::staging_folder(&self.run_id)).await;
    }
}

/// Writes `batches` under `folder` (a staging folder), partitioned and rolled as `spec` says.
#[allow(clippy::too_many_arguments)]
async fn stage<S, E>(
    warehouse: &Warehouse,
    folder: object_store::path::Path,
    spec: &TableSpec,
    run_id: &str,
    schema: &SchemaRef,
    mut batches: S,
    schema_file: bool,
    on_rows: impl Fn(u64),
    cancel: &CancellationToken,
) -> Result<writer::WrittenFiles, SinkError>
where
    S: Stream<Item = Result<RecordBatch, E>> + Unpin,
    E: StdError + Send + Sync + 'static,
{
    let mut writer = PartitionedWriter::new(
        warehouse.store(),
        folder,
        run_id,
        schema,
        spec.partition_by.clone(),
        spec.roll,
    )?;
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(SinkError::Cancelled { table: spec.name.clone() }),
            next = batches.next() => next,
        };
        let Some(batch) = next else { break };
        let batch = batch.map_err(|e| SinkError::Input {
            table: spec.name.clone(),
            source: Box::new(e),
        })?;
        writer.write(&batch).await?;
        on_rows(batch.num_rows() as u64);
    }
    writer.finish(schema_file).await
}
