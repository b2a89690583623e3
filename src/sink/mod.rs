//! Sink stage: `RecordBatch` streams → a Parquet table in the warehouse (local, S3 or HDFS),
//! reconciled with the table's committed schema ([`schema`]), written with bounded memory
//! ([`writer`], [`sorted`]), staged out of readers' sight and committed with Spark's save
//! modes ([`commit`]).

pub mod commit;
pub mod dictionary;
pub mod durable;
pub mod partition;
pub mod read_only;
pub mod schema;
pub mod shared;
pub mod sorted;
pub mod store;
pub mod writer;

use std::error::Error as StdError;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use parquet::errors::ParquetError;
use tokio_util::sync::CancellationToken;

pub use commit::{Commit, CommittedRange, SaveMode, TableLog, TableState};
pub use schema::{SchemaEvolution, TableColumn};
pub use store::Warehouse;
pub use writer::{PartitionedWriter, RollPolicy, Unclosed};

/// Marker file that says a table is complete, as Hadoop's output committer writes it.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Failures writing a table.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid warehouse location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error("cannot write Parquet file {path}")]
    Parquet {
        path: String,
        #[source]
        source: ParquetError,
    },
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
    #[error("cannot sort the rows of table {table} by partition")]
    Sort {
        table: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
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
    #[error(
        "table {table} has no column {}: --schema-evolution fail-on-new-columns refuses a run that would add it (nothing was written; add-new-columns adds it, rescue keeps its values in _rescued_data, none ignores it)",
        columns.join(", ")
    )]
    NewColumns { table: String, columns: Vec<String> },
    #[error("{path} is damaged: {reason}")]
    Corrupt { path: String, reason: String },
    #[error(
        "the commit log of table {table} lacks version {version} ({path}): a commit was lost, so which files the table holds is unknown"
    )]
    MissingVersion {
        table: String,
        version: u64,
        path: String,
    },
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
    /// What an append does with columns the table does not have yet.
    pub evolution: SchemaEvolution,
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
    /// How the run changed the table's schema (columns added, values rescued), a line each.
    pub schema_changes: Vec<String>,
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
    /// The table's staged files, written but not closed yet (closed by [`TableRun::prepare`]).
    table_unclosed: Unclosed,
    /// The bad records' staged files, likewise.
    bad_unclosed: Unclosed,
    /// The table's schema after this run, and how the run changed it (set by `write`).
    reconciled: Option<schema::Reconciled>,
    /// Encoded columns shared with the run's other unpartitioned tables.
    shared: Option<Arc<shared::SharedChunks>>,
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
            table_unclosed: Unclosed::default(),
            bad_unclosed: Unclosed::default(),
            reconciled: None,
            shared: None,
        }))
    }

    /// True when the table exists but has no commit log (written by another tool or an older
    /// bnetl): which offsets it holds is unknown.
    pub fn untracked(&self) -> bool {
        self.untracked
    }

    /// True when the table is Hive-partitioned.
    pub fn partitioned(&self) -> bool {
        !self.spec.partition_by.is_empty()
    }

    /// Shares encoded columns with the run's other unpartitioned tables (see [`shared`]).
    pub fn share_columns(&mut self, shared: Option<Arc<shared::SharedChunks>>) {
        self.shared = shared;
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

    /// The version this run commits.
    fn version(&self) -> u64 {
        self.base.as_ref().map_or(1, |b| b.version + 1)
    }

    fn staging(&self) -> object_store::path::Path {
        self.warehouse.path(&TableLog::staging_folder(&self.run_id))
    }

    /// Stages the table's rows (their files are closed by [`TableRun::commit`]), reconciled
    /// with the table's committed schema (see [`schema`]).
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
        let table_columns = self.base.as_ref().map_or(&[][..], |b| &b.schema[..]);
        let mut reconciled = schema::Reconciled::new(
            &self.spec.name,
            table_columns,
            schema,
            self.version(),
            self.mode == SaveMode::Overwrite,
            self.spec.evolution,
        )?
        .with_rescue_column(self.version());
        let written_schema = Arc::clone(&reconciled.schema);
        let batches = batches.map(|batch| {
            batch
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))
                .and_then(|batch| reconciled.apply(&batch))
        });
        let staged = stage(
            &self.warehouse,
            folder,
            &self.spec,
            &self.run_id,
            &written_schema,
            batches,
            self.needs_schema_file(),
            self.shared.clone(),
            on_rows,
            cancel,
        )
        .await;
        let (written, unclosed) = staged?;
        for change in reconciled.drift.describe() {
            tracing::info!(table = self.spec.name, "{change}");
        }
        self.reconciled = Some(reconciled);
        self.rows += written.rows;
        self.keep(&written);
        self.table_unclosed.extend(unclosed);
        Ok(written.rows)
    }

    /// Stages the run's bad records (batches of `decode::bad_records_schema`), one batch at a
    /// time.
    pub async fn write_bad_records<I, E>(
        &mut self,
        batches: I,
        cancel: &CancellationToken,
    ) -> Result<(), SinkError>
    where
        I: Iterator<Item = Result<RecordBatch, E>> + Unpin,
        E: StdError + Send + Sync + 'static,
    {
        let folder = bad_records_folder(&self.spec.name);
        let spec = TableSpec {
            name: folder.clone(),
            partition_by: Vec::new(),
            roll: RollPolicy::default(),
            evolution: SchemaEvolution::default(),
        };
        let schema = crate::decode::bad_records_schema();
        let batches = futures::stream::iter(batches);
        let folder = self.warehouse.path(&format!(
            "{}/{folder}",
            TableLog::staging_folder(&self.run_id)
        ));
        let (written, unclosed) = stage(
            &self.warehouse,
            folder,
            &spec,
            &self.run_id,
            &schema,
            batches,
            self.needs_schema_file(),
            None,
            |_| (),
            cancel,
        )
        .await?;
        let rows = written.rows;
        self.bad_records += rows;
        self.keep(&written);
        self.bad_unclosed.extend(unclosed);
        Ok(())
    }

    /// Removes the table's staged files (not its bad records'), so that it can be written again.
    pub async fn discard_staged_table(&mut self) {
        let prefix = format!("{}/", self.spec.name);
        self.files.retain(|f| !f.starts_with(&prefix));
        self.rows = 0;
        self.reconciled = None;
        // Closed only to let go of them: the files are deleted next.
        if let Err(e) = std::mem::take(&mut self.table_unclosed).close().await {
            tracing::debug!(error = %crate::error::chain(&e), "closing discarded files");
        }
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

    /// The slow half of a commit, which a run's outputs do side by side: closes the staged
    /// files (on HDFS each close waits for the NameNode to hear of the file's last block) and,
    /// on HDFS, stages the log entry alongside, so the waits overlap instead of adding up.
    /// Nothing is committed yet: [`Prepared::commit`] claims the version. On failure the
    /// staged files are removed.
    pub async fn prepare(
        mut self,
        job: &str,
        topic: &str,
        ranges: Vec<CommittedRange>,
    ) -> Result<Prepared, SinkError> {
        let schema = match &self.reconciled {
            Some(reconciled) => reconciled.columns.clone(),
            None => self
                .base
                .as_ref()
                .map(|b| b.schema.clone())
                .unwrap_or_default(),
        };
        let commit = Commit {
            version: self.version(),
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
            schema,
        };
        let mut unclosed = std::mem::take(&mut self.table_unclosed);
        unclosed.extend(std::mem::take(&mut self.bad_unclosed));
        let staged_files = self.log.staged_files(&commit);
        // On a local warehouse, the closed files are synced here, while the run's other
        // outputs close and sync theirs, rather than in the claims, which run one after
        // another (the claim syncs them again, then finding nothing left to write).
        let closed = async {
            unclosed.close().await?;
            self.warehouse
                .sync(&staged_files, durable::Synced::Data)
                .await
        };
        let (closed, staged) = tokio::join!(closed, self.log.stage_claim(&commit));
        match closed.and(staged) {
            Ok(staged) => Ok(Prepared {
                run: self,
                commit,
                staged,
            }),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// What committing `commit` writes to the table.
    fn summary(&self, commit: &Commit) -> WriteSummary {
        let table_files = commit
            .files
            .iter()
            .filter(|f| f.starts_with(&format!("{}/", self.spec.name)))
            .count();
        WriteSummary {
            table: self.spec.name.clone(),
            rows: self.rows,
            files: table_files,
            location: self.warehouse.table_url(&self.spec.name),
            schema_changes: self
                .reconciled
                .as_ref()
                .map(|r| r.drift.describe())
                .unwrap_or_default(),
        }
    }

    /// Discards the staged files (those still open are dropped unclosed).
    pub async fn abort(self) {
        let TableRun {
            warehouse,
            run_id,
            table_unclosed,
            bad_unclosed,
            ..
        } = self;
        drop((table_unclosed, bad_unclosed));
        commit::remove_folder(&warehouse, &TableLog::staging_folder(&run_id)).await;
    }
}

/// A table run whose files are closed and whose log entry is ready: [`Prepared::commit`]
/// claims the version and publishes it, [`Prepared::abort`] discards it.
#[derive(Debug)]
#[must_use = "a prepared run is committed or aborted; dropped, its staging stays until the next run's sweep a day later"]
pub struct Prepared {
    run: TableRun,
    commit: Commit,
    /// The log entry staged on HDFS, for the claim to rename into the log.
    staged: Option<object_store::path::Path>,
}

impl Prepared {
    /// Commits the staged files as the table's next version, recording the offsets read, and
    /// publishes them. Fails with [`SinkError::Conflict`] if another run committed since
    /// [`TableRun::begin`]; the staged files are then removed.
    pub async fn commit(self) -> Result<(Commit, WriteSummary), SinkError> {
        let Prepared {
            run,
            commit,
            staged,
        } = self;
        if let Err(e) = run.log.claim(&commit, staged.as_ref()).await {
            run.abort().await;
            return Err(e);
        }
        // From here on the run is committed: a failure to publish is finished by the next run.
        run.log.publish(&commit).await?;
        let summary = run.summary(&commit);
        Ok((commit, summary))
    }

    /// Leaves the table as it is (the staged run is discarded) and says what was written:
    /// nothing.
    pub async fn leave(self) -> WriteSummary {
        let summary = self.run.summary(&self.commit);
        self.run.abort().await;
        summary
    }

    /// The table's latest version when committing would add nothing to it: an append with no
    /// rows, no bad records and no file, over no offset, that leaves the table's offsets and
    /// schema as they are. `None` when it would add something (or the table is new).
    pub fn adds_nothing_to(&self) -> Option<u64> {
        let base = self.run.base.as_ref()?;
        let commit = &self.commit;
        (commit.mode == SaveMode::Append
            && commit.rows == 0
            && commit.bad_records == 0
            && commit.files.is_empty()
            && commit.ranges.iter().all(|r| r.start >= r.end)
            && commit.offsets == base.offsets
            && commit.schema == base.schema)
            .then_some(base.version)
    }

    /// Discards the staged files (and the staged log entry).
    pub async fn abort(self) {
        self.run.abort().await;
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
    shared: Option<Arc<shared::SharedChunks>>,
    on_rows: impl Fn(u64),
    cancel: &CancellationToken,
) -> Result<(writer::WrittenFiles, Unclosed), SinkError>
where
    S: Stream<Item = Result<RecordBatch, E>> + Unpin,
    E: StdError + Send + Sync + 'static,
{
    let mut writer = PartitionedWriter::new(
        warehouse.store(),
        warehouse.display_root(),
        folder,
        run_id,
        schema,
        spec.partition_by.clone(),
        spec.roll,
    )?
    .share(shared);
    let cancelled = || SinkError::Cancelled {
        table: spec.name.clone(),
    };
    let input = |e: E| SinkError::Input {
        table: spec.name.clone(),
        source: Box::new(e),
    };
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            next = batches.next() => next,
        };
        let Some(batch) = next else { break };
        let batch = batch.map_err(input)?;
        if writer.write(&batch).await? == writer::Written::Rows {
            on_rows(batch.num_rows() as u64);
            continue;
        }
        // Too many partition values for one open file each: the rest goes through a sort.
        tracing::info!(
            table = spec.name,
            max_open_files = spec.roll.max_open_files,
            "many partition values: sorting the rest of the rows by partition"
        );
        let sort_error = |source| SinkError::Sort {
            table: spec.name.clone(),
            source,
        };
        let (rows, mut sorted) = sorted::by_partition(schema, &spec.partition_by)
            .await
            .map_err(sort_error)?;
        let feed = async {
            let mut next = Some(batch);
            while let Some(batch) = next {
                if rows.send(Ok(batch)).await.is_err() {
                    // The sort stopped: its error comes out of the sorted side.
                    return Ok(());
                }
                next = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(cancelled()),
                    next = batches.next() => next.transpose().map_err(input)?,
                };
            }
            drop(rows);
            Ok(())
        };
        let write = async {
            while let Some(batch) = sorted.next().await {
                let batch = batch.map_err(sort_error)?;
                writer.write_sorted(&batch).await?;
                on_rows(batch.num_rows() as u64);
            }
            Ok::<_, SinkError>(())
        };
        let (fed, written) = tokio::join!(feed, write);
        fed?;
        written?;
        break;
    }
    writer.finish(schema_file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    async fn staged_run(warehouse: &Warehouse, table: &str, run_id: &str) -> TableRun {
        let spec = TableSpec {
            name: table.to_owned(),
            partition_by: Vec::new(),
            roll: RollPolicy::default(),
            evolution: SchemaEvolution::default(),
        };
        let mut run = TableRun::begin(warehouse, &spec, SaveMode::Append, run_id)
            .await
            .unwrap()
            .unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("Host", DataType::Utf8, true)]));
        let column: ArrayRef = Arc::new(StringArray::from(vec!["user1.comcast.com"]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
        let batches = futures::stream::iter([Ok::<_, std::io::Error>(batch)]);
        run.write(&schema, batches, |_| {}, &CancellationToken::new())
            .await
            .unwrap();
        run
    }

    #[tokio::test]
    async fn prepared_runs_commit_nothing_until_claimed_and_an_aborted_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let kept = staged_run(&warehouse, "kept", "run-kept").await;
        let dropped = staged_run(&warehouse, "dropped", "run-dropped").await;
        let (kept, dropped) = tokio::join!(
            kept.prepare("test", "events", Vec::new()),
            dropped.prepare("test", "events", Vec::new())
        );
        let (kept, dropped) = (kept.unwrap(), dropped.unwrap());
        let versions = |table: &str| {
            let log = TableLog::new(&warehouse, table);
            async move { log.versions().await.unwrap() }
        };
        // Files closed, log entries ready: no table holds a version or a file yet, and the
        // closed files wait in the runs' staging folders.
        assert!(versions("kept").await.is_empty() && versions("dropped").await.is_empty());
        assert!(!dir.path().join("kept").exists() && !dir.path().join("dropped").exists());
        let staged = dir
            .path()
            .join(TableLog::staging_folder("run-kept"))
            .join("kept");
        assert_eq!(std::fs::read_dir(&staged).unwrap().count(), 1);

        dropped.abort().await;
        let (commit, summary) = kept.commit().await.unwrap();
        assert_eq!((commit.version, summary.rows), (1, 1));
        assert_eq!(versions("kept").await, [1]);
        assert!(versions("dropped").await.is_empty());
        for run in ["run-dropped", "run-kept"] {
            let staging = dir.path().join(TableLog::staging_folder(run));
            assert!(!staging.exists(), "{} left behind", staging.display());
        }
        let files = TableLog::new(&warehouse, "kept").snapshot().await.unwrap();
        assert_eq!(files.map(|s| s.files.len()), Some(1));
    }
}
