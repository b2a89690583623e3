//! The commit protocol of a table, the same on every store.
//!
//! A run writes its files under `<warehouse>/.bnetl-staging/<run_id>/`, with the same relative
//! paths they will have in the warehouse, so no reader ever lists them. It then *claims* the
//! table's next version by creating `<table>/_bnetl_log/<version>.json` only if it does not
//! exist (an atomic create on a local disk, S3's `If-None-Match: *`; on HDFS the entry is
//! staged while the data files close, then renamed into the log without overwrite, so a run
//! waits for the NameNode once, not once per file). That file is the commit: it lists the run's files, the offsets the table now holds
//! per partition, and the save mode. Two runs that started from the same version cannot both
//! claim the next one: the second fails with a conflict and its output is discarded.
//!
//! Publishing follows the claim: `_SUCCESS` is removed, each staged file is renamed to its final
//! name (atomic on a local disk and HDFS; a server-side copy then delete on S3, so each file
//! appears whole), an overwrite then deletes the files of earlier versions, then the log marks
//! the version published (an empty `<version>.published` beside its commit) and `_SUCCESS` is
//! written last. Both markers are empty files, like Spark's `_SUCCESS`: on HDFS a file with
//! data makes its writer wait for the NameNode to hear of its last block (up to 500 ms), an
//! empty one does not. Publishing is idempotent: a run that finds the latest commit unpublished
//! (no `_SUCCESS`, or no published mark for that version) finishes it first. So a
//! run killed before its claim leaves nothing but a staging folder, and one killed after it is
//! completed by the next run: the offsets in the log always describe exactly the rows in the
//! table, which is what makes `--incremental` exactly-once.
//!
//! Every [`CHECKPOINT_INTERVAL`]th version, the run that publishes it also writes
//! `<version>.checkpoint.json`, the table's state as of that version ([`TableState`]: its files,
//! rows and first offsets since the latest overwrite), so a reader folds at most that many
//! commits, then points `_last_checkpoint` at it, so readers and writers list the log from
//! there (S3's start-after; a local disk skips the older names without a `statx` each)
//! instead of from its first version. Writers need only the latest commit and never read
//! checkpoints; a checkpoint that cannot be read is logged and the commits are read instead
//! (the whole log is listed again when they are older than the pointer's). That run also
//! deletes the log entries of the versions before the previous checkpoint that are older than
//! [`LOG_RETENTION_MS`], once both checkpoints read back whole, as Delta Lake expires its log:
//! the log keeps the last day's versions and at least one to two checkpoint intervals, however
//! long the table lives. A claim of a version at or below the pointer's is a conflict: only a
//! run that stalled for a day could try it, and the version it would take may have expired.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};

use super::durable::Synced;
use super::store::{STAGING_DIR, StoreKind};
use super::{SUCCESS_MARKER, SinkError, Warehouse};

/// Folder of a table's commits. It starts with `_`, so Spark and Hive skip it, and holds no
/// `.parquet` files, so DuckDB's and DataFusion's globs skip it too.
pub const LOG_DIR: &str = "_bnetl_log";

/// Every this many versions, the run that publishes one also writes a checkpoint of the table's
/// state, so readers fold at most this many commits however long the table's history is.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// Staging folders older than this with no commit are left by killed runs and are removed.
const ORPHAN_AGE_MS: i64 = 24 * 3600 * 1000;

/// Log entries before the previous checkpoint are deleted once they are this old: a run that
/// started from one of those versions (and would claim the next, unaware that it was taken)
/// has had its staging removed as an orphan by then.
pub const LOG_RETENTION_MS: i64 = ORPHAN_AGE_MS;

/// `<table>/_bnetl_log/_last_checkpoint`: `{"version": N}`, the newest checkpoint, where
/// listings of the log start. Only a hint: without it, or when it names a version whose
/// checkpoint or commit the listing does not find, the whole log is listed.
const LAST_CHECKPOINT: &str = "_last_checkpoint";

/// Folders of a table listed at once when an overwrite looks for the files it replaces.
const LISTINGS_AT_ONCE: usize = 8;

/// Spark's save modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SaveMode {
    /// Replace the table (the previous data stays readable until the new data is complete).
    Overwrite,
    /// Add the run's files to the table.
    Append,
    /// Fail if the table exists.
    ErrorIfExists,
    /// Do nothing if the table exists.
    Ignore,
}

impl std::fmt::Display for SaveMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SaveMode::Overwrite => "overwrite",
            SaveMode::Append => "append",
            SaveMode::ErrorIfExists => "error-if-exists",
            SaveMode::Ignore => "ignore",
        })
    }
}

/// The offsets one run read from one partition: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedRange {
    /// Partition.
    pub partition: i32,
    /// First offset read.
    pub start: i64,
    /// One past the last offset read.
    pub end: i64,
}

/// One committed version of a table: `<table>/_bnetl_log/<version>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// 1, 2, ... in commit order.
    pub version: u64,
    /// The run that wrote it.
    pub run_id: String,
    /// The job (extract, transform, filtered-writes).
    pub job: String,
    /// Overwrite (the table is this version's files) or append (added to the previous ones).
    pub mode: SaveMode,
    /// When the version was claimed (ms since the epoch).
    pub committed_at_ms: i64,
    /// The topic read.
    pub topic: String,
    /// What this run read.
    pub ranges: Vec<CommittedRange>,
    /// Per partition, the next offset to read: everything before it is in the table.
    pub offsets: BTreeMap<i32, i64>,
    /// Data files of the run, relative to the warehouse root (the table's and its bad records').
    pub files: Vec<String>,
    /// Rows the run added to the table.
    pub rows: u64,
    /// Rows the run added to the table's bad records.
    pub bad_records: u64,
    /// The table's columns as of this version, with the version that added each (empty in
    /// commits of bnetl versions before schemas were committed).
    #[serde(default)]
    pub schema: Vec<super::TableColumn>,
}

/// What a query reads of a table: the files of its last complete version, and the table's
/// columns as its latest commit records them (empty for a log older than schemas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Data files, relative to the warehouse root.
    pub files: BTreeSet<String>,
    /// The committed schema.
    pub columns: Vec<super::TableColumn>,
}

/// What a table holds as of one version: the commits since its last overwrite, folded. Kept
/// every [`CHECKPOINT_INTERVAL`] versions in `<table>/_bnetl_log/<version>.checkpoint.json`, a
/// cache of what the commits say: a reader that cannot read one reads the commits, or an older
/// checkpoint, instead. Once commits before the previous checkpoint have expired, a table whose
/// two newest checkpoints are both damaged is an error naming the first version it lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// The version described (0: before the first commit).
    pub version: u64,
    /// Data files of the live commits, relative to the warehouse root.
    pub files: BTreeSet<String>,
    /// Rows the live commits added to the table.
    pub rows: u64,
    /// Rows the live commits added to the table's bad records.
    pub bad_records: u64,
    /// Per partition, the first offset a live commit read.
    pub first_offsets: BTreeMap<i32, i64>,
}

impl TableState {
    /// The state after `commit`, the version that follows this one: an overwrite starts anew.
    fn apply(&mut self, commit: &Commit) {
        if commit.mode == SaveMode::Overwrite {
            *self = TableState::default();
        }
        self.version = commit.version;
        self.files.extend(commit.files.iter().cloned());
        self.rows += commit.rows;
        self.bad_records += commit.bad_records;
        for range in commit.ranges.iter().filter(|r| r.end > r.start) {
            let first = self
                .first_offsets
                .entry(range.partition)
                .or_insert(range.start);
            *first = (*first).min(range.start);
        }
    }
}

/// What earlier bnetl versions wrote in `_SUCCESS`: the version it marks complete. Still honoured
/// for tables written then; `_SUCCESS` is now empty, as Spark's.
#[derive(Debug, Serialize, Deserialize)]
struct SuccessMarker {
    version: u64,
}

/// The kinds of entry in a table's log folder, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `<version>.json`
    Commit,
    /// `<version>.published`
    Published,
    /// `<version>.checkpoint.json`
    Checkpoint,
}

/// The version and kind of the log entry named `name`; `None` for any other file (the
/// pointer, a hidden temp file).
fn log_entry(name: &str) -> Option<(u64, Entry)> {
    let (version, entry) = if let Some(v) = name.strip_suffix(".checkpoint.json") {
        (v, Entry::Checkpoint)
    } else if let Some(v) = name.strip_suffix(".json") {
        (v, Entry::Commit)
    } else {
        (name.strip_suffix(".published")?, Entry::Published)
    };
    Some((version.parse().ok()?, entry))
}

/// What `_last_checkpoint` holds.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointPointer {
    version: u64,
}

/// The commit log of one table and the folder its bad records go to.
#[derive(Debug, Clone)]
pub struct TableLog {
    warehouse: Warehouse,
    table: String,
    bad_folder: String,
    retention_ms: i64,
}

/// The versions a listing of the log found, oldest first.
#[derive(Debug, Default)]
struct Listing {
    /// Committed versions.
    versions: Vec<u64>,
    /// Checkpointed versions.
    checkpoints: Vec<u64>,
    /// True when the listing started at `_last_checkpoint`, leaving older entries out.
    partial: bool,
}

impl TableLog {
    /// The log of `table` (its bad records live under [`super::bad_records_folder`]).
    pub fn new(warehouse: &Warehouse, table: &str) -> Self {
        TableLog {
            warehouse: warehouse.clone(),
            table: table.to_owned(),
            bad_folder: super::bad_records_folder(table),
            retention_ms: LOG_RETENTION_MS,
        }
    }

    /// The same log, deleting entries once they are `retention_ms` old (tests: 0).
    #[cfg(test)]
    fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = retention_ms;
        self
    }

    fn log_folder(&self) -> Path {
        self.warehouse.path(&format!("{}/{LOG_DIR}", self.table))
    }

    fn pointer_path(&self) -> Path {
        self.warehouse
            .path(&format!("{}/{LOG_DIR}/{LAST_CHECKPOINT}", self.table))
    }

    fn log_path(&self, version: u64) -> Path {
        self.warehouse
            .path(&format!("{}/{LOG_DIR}/{version:020}.json", self.table))
    }

    fn published_path(&self, version: u64) -> Path {
        self.warehouse
            .path(&format!("{}/{LOG_DIR}/{version:020}.published", self.table))
    }

    fn success_path(&self) -> Path {
        self.warehouse
            .path(&format!("{}/{SUCCESS_MARKER}", self.table))
    }

    /// Staging folder of a run (warehouse-relative).
    pub fn staging_folder(run_id: &str) -> String {
        format!("{STAGING_DIR}/{run_id}")
    }

    /// Where `commit`'s files are while staged, before [`TableLog::publish`] moves them.
    pub fn staged_files(&self, commit: &Commit) -> Vec<Path> {
        let staging = Self::staging_folder(&commit.run_id);
        commit
            .files
            .iter()
            .map(|f| self.warehouse.object(&format!("{staging}/{f}")))
            .collect()
    }

    fn checkpoint_path(&self, version: u64) -> Path {
        self.warehouse.path(&format!(
            "{}/{LOG_DIR}/{version:020}.checkpoint.json",
            self.table
        ))
    }

    /// Every committed version, oldest first.
    #[cfg(test)]
    pub async fn versions(&self) -> Result<Vec<u64>, SinkError> {
        Ok(self.list(None).await?.versions)
    }

    /// The versions from the newest checkpoint on (see [`LAST_CHECKPOINT`]), or every
    /// version when there is no checkpoint or its pointer does not hold.
    async fn listing(&self) -> Result<Listing, SinkError> {
        if let Some(from) = self.last_checkpoint().await {
            let listing = self.list(Some(from)).await?;
            if listing.checkpoints.first() == Some(&from) && listing.versions.first() == Some(&from)
            {
                return Ok(listing);
            }
            tracing::warn!(
                table = self.table,
                version = from,
                "the log's last checkpoint pointer names a version it lacks; listing the whole log"
            );
        }
        self.list(None).await
    }

    /// Lists the log's entries of versions `from` and later (every version with `None`).
    async fn list(&self, from: Option<u64>) -> Result<Listing, SinkError> {
        let folder = self.log_folder();
        let store = self.warehouse.store();
        let entries = match from {
            // Every entry of version `from` sorts after its bare zero-padded number.
            Some(from) => {
                store.list_with_offset(Some(&folder), &folder.clone().join(format!("{from:020}")))
            }
            None => store.list(Some(&folder)),
        };
        let objects: Vec<_> = entries
            .try_collect()
            .await
            .map_err(|e| self.warehouse.store_error(&folder, e))?;
        let mut listing = Listing {
            partial: from.is_some(),
            ..Listing::default()
        };
        let entries = objects
            .iter()
            .filter_map(|o| log_entry(o.location.filename()?))
            // A store that ignores the offset (some S3-compatible servers) lists older ones too.
            .filter(|&(v, _)| from.is_none_or(|from| v >= from));
        for (v, entry) in entries {
            match entry {
                Entry::Commit => listing.versions.push(v),
                Entry::Checkpoint => listing.checkpoints.push(v),
                Entry::Published => {}
            }
        }
        listing.versions.sort_unstable();
        listing.checkpoints.sort_unstable();
        Ok(listing)
    }

    /// The version `_last_checkpoint` names, if it is there and readable (what is wrong with
    /// one that is there is logged).
    async fn last_checkpoint(&self) -> Option<u64> {
        let path = self.pointer_path();
        let read = async { self.warehouse.store().get(&path).await?.bytes().await };
        let parsed = match read.await {
            Ok(bytes) => serde_json::from_slice::<CheckpointPointer>(&bytes)
                .map(|pointer| pointer.version)
                .map_err(|e| e.to_string()),
            Err(object_store::Error::NotFound { .. }) => return None,
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(version) => Some(version),
            Err(reason) => {
                tracing::warn!(
                    pointer = self.warehouse.display(&path),
                    reason,
                    "cannot read the log's last checkpoint pointer; listing the whole log"
                );
                None
            }
        }
    }

    /// The table's state as of `version`, from `listing`; a partial listing that does not
    /// reach back far enough (its checkpoint unreadable) is redone over the whole log.
    async fn state_from(
        &self,
        version: u64,
        listing: &Listing,
        known: Option<&Commit>,
    ) -> Result<TableState, SinkError> {
        match self.state_at(version, listing, known).await {
            Err(SinkError::MissingVersion { .. }) if listing.partial => {
                let whole = self.list(None).await?;
                self.state_at(version, &whole, known).await
            }
            other => other,
        }
    }

    /// The table's state as of `version` (one of the listed ones): the commits after the latest
    /// overwrite, read newest first down to that overwrite or to a checkpoint. `known` is a
    /// commit the caller has already read, used instead of reading it again.
    async fn state_at(
        &self,
        version: u64,
        listing: &Listing,
        known: Option<&Commit>,
    ) -> Result<TableState, SinkError> {
        let mut newer = Vec::new();
        let mut base = TableState::default();
        // Versions are claimed one after another: a gap is a lost commit, whose files the
        // table would silently leave out.
        let mut expected = version;
        let gap = |missing: u64| SinkError::MissingVersion {
            table: self.table.clone(),
            version: missing,
            path: self.warehouse.display(&self.log_path(missing)),
        };
        for &v in listing.versions.iter().rev().filter(|&&v| v <= version) {
            if v != expected {
                return Err(gap(expected));
            }
            expected = v - 1;
            // The newest readable checkpoint on the way down ends the fold.
            if listing.checkpoints.binary_search(&v).is_ok()
                && let Some(state) = self.read_checkpoint(v).await
            {
                base = state;
                expected = 0;
                break;
            }
            let commit = match known {
                Some(commit) if commit.version == v => commit.clone(),
                _ => self.read(v).await?,
            };
            let overwrite = commit.mode == SaveMode::Overwrite;
            newer.push(commit);
            if overwrite {
                expected = 0;
                break;
            }
        }
        if expected != 0 {
            return Err(gap(expected));
        }
        for commit in newer.iter().rev() {
            base.apply(commit);
        }
        Ok(base)
    }

    /// Checkpoint `version`, if it is there and whole; what is wrong with it is logged.
    async fn read_checkpoint(&self, version: u64) -> Option<TableState> {
        let path = self.checkpoint_path(version);
        let read = async {
            let bytes = self.warehouse.store().get(&path).await?.bytes().await?;
            Ok::<_, object_store::Error>(bytes)
        };
        let parsed = match read.await {
            Ok(bytes) => serde_json::from_slice::<TableState>(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(state) if state.version == version => Some(state),
            Ok(state) => {
                tracing::warn!(
                    checkpoint = self.warehouse.display(&path),
                    version = state.version,
                    "a checkpoint names another version; reading the commits instead"
                );
                None
            }
            Err(reason) => {
                tracing::warn!(
                    checkpoint = self.warehouse.display(&path),
                    reason,
                    "cannot read a checkpoint; reading the commits instead"
                );
                None
            }
        }
    }

    /// Writes the checkpoint of `commit`'s version. A failure is logged, not raised: the
    /// commits are the table, a checkpoint only saves readers from reading them all.
    async fn write_checkpoint(&self, commit: &Commit) {
        let version = commit.version;
        let path = self.checkpoint_path(version);
        let written = async {
            let listing = self.listing().await?;
            let state = self.state_from(version, &listing, Some(commit)).await?;
            let body = serde_json::to_vec(&state).map_err(|e| SinkError::Corrupt {
                path: self.warehouse.display(&path),
                reason: e.to_string(),
            })?;
            self.warehouse
                .store()
                .put(&path, body.into())
                .await
                .map_err(|e| self.warehouse.store_error(&path, e))?;
            Ok::<_, SinkError>(())
        };
        match written.await {
            Ok(()) => tracing::info!(table = self.table, version, "checkpointed table version"),
            Err(e) => {
                tracing::warn!(
                    table = self.table,
                    version,
                    error = %crate::error::chain(&e),
                    "cannot write a checkpoint; readers read the commits instead"
                );
                return;
            }
        }
        let pointer = self.pointer_path();
        let body = serde_json::to_vec(&CheckpointPointer { version }).unwrap_or_default();
        let pointed = async {
            self.warehouse
                .store()
                .put(&pointer, body.into())
                .await
                .map_err(|e| self.warehouse.store_error(&pointer, e))?;
            // Durable before any commit it stands for is deleted.
            let written = [path, pointer.clone()];
            self.warehouse.sync(&written, Synced::Data).await?;
            self.warehouse.sync(&written, Synced::Names).await
        };
        match pointed.await {
            Ok(()) => self.expire(version).await,
            Err(e) => tracing::warn!(
                path = self.warehouse.display(&pointer),
                error = %crate::error::chain(&e),
                "cannot point at the new checkpoint; readers list the whole log, none of it expires"
            ),
        }
    }

    /// Deletes the log entries of the versions before the checkpoint preceding `checkpoint`
    /// that are older than the retention, if both checkpoints read back whole (the commits
    /// they replace go). Failures are logged: expiring is housekeeping.
    async fn expire(&self, checkpoint: u64) {
        let folder = self.log_folder();
        let shown = self.warehouse.display(&folder);
        let store = self.warehouse.store();
        let objects: Vec<_> = match store.list(Some(&folder)).try_collect().await {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(log = shown, error = %e, "cannot list the log to expire it");
                return;
            }
        };
        let entry_of = |o: &object_store::ObjectMeta| log_entry(o.location.filename()?);
        let Some(previous) = objects
            .iter()
            .filter_map(entry_of)
            .filter(|&(v, entry)| entry == Entry::Checkpoint && v < checkpoint)
            .map(|(v, _)| v)
            .max()
        else {
            return;
        };
        if self.read_checkpoint(checkpoint).await.is_none()
            || self.read_checkpoint(previous).await.is_none()
        {
            tracing::warn!(
                log = shown,
                checkpoint,
                previous,
                "a checkpoint does not read back whole; the commits it stands for are kept"
            );
            return;
        }
        let cutoff = now_ms().saturating_sub(self.retention_ms);
        let expired: Vec<Path> = objects
            .into_iter()
            .filter(|o| {
                entry_of(o).is_some_and(|(v, _)| v < previous)
                    && o.last_modified.timestamp_millis() <= cutoff
            })
            .map(|o| o.location)
            .collect();
        if expired.is_empty() {
            return;
        }
        let count = expired.len();
        let paths = futures::stream::iter(expired.into_iter().map(Ok)).boxed();
        let mut deleted = store.delete_stream(paths);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(log = shown, error = %e, "cannot expire a log entry");
                    return;
                }
            }
        }
        tracing::info!(
            log = shown,
            entries = count,
            before = previous,
            "expired the log entries of old versions"
        );
    }

    /// Reads version `version`.
    pub async fn read(&self, version: u64) -> Result<Commit, SinkError> {
        let path = self.log_path(version);
        let bytes = self
            .warehouse
            .store()
            .get(&path)
            .await
            .map_err(|e| self.warehouse.store_error(&path, e))?
            .bytes()
            .await
            .map_err(|e| self.warehouse.store_error(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| SinkError::Corrupt {
            path: self.warehouse.display(&path),
            reason: e.to_string(),
        })
    }

    /// The latest committed version, if any.
    pub async fn latest(&self) -> Result<Option<Commit>, SinkError> {
        match self.listing().await?.versions.last() {
            Some(&version) => Ok(Some(self.read(version).await?)),
            None => Ok(None),
        }
    }

    /// The latest commit and what the table holds as of it (its files, rows and first offsets
    /// since the latest overwrite); `None` before the first commit.
    pub async fn state(&self) -> Result<Option<(Commit, TableState)>, SinkError> {
        let listing = self.listing().await?;
        let Some(&latest) = listing.versions.last() else {
            return Ok(None);
        };
        let commit = self.read(latest).await?;
        let state = self.state_from(latest, &listing, Some(&commit)).await?;
        Ok(Some((commit, state)))
    }

    /// True when the table holds anything: a commit or any file. Hidden files (a name starting
    /// with `.`) do not count, as in Hadoop: HDFS's client leaves `.<name>.tmp.<n>` behind when
    /// a conditional create fails half-way (a DataNode dying during a claim), and such a file
    /// must not make a table that never committed look like another tool's.
    pub async fn exists(&self) -> Result<bool, SinkError> {
        let folder = self.warehouse.path(&self.table);
        self.warehouse.holds_files(&folder).await
    }

    /// True when the table's `_SUCCESS` is there (whoever wrote it: bnetl, Spark, ...).
    pub async fn has_success(&self) -> Result<bool, SinkError> {
        let path = self.success_path();
        match self.warehouse.store().head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.warehouse.store_error(&path, e)),
        }
    }

    /// True when `version`'s publication finished: its published mark and `_SUCCESS` are both
    /// there (or, for a table an older bnetl wrote, `_SUCCESS` names `version` or a later one).
    pub async fn is_published(&self, version: u64) -> Result<bool, SinkError> {
        let store = self.warehouse.store();
        let success = self.success_path();
        let marker = match store.get(&success).await {
            Ok(found) => found
                .bytes()
                .await
                .map_err(|e| self.warehouse.store_error(&success, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(self.warehouse.store_error(&success, e)),
        };
        if let Ok(legacy) = serde_json::from_slice::<SuccessMarker>(&marker) {
            return Ok(legacy.version >= version);
        }
        let published = self.published_path(version);
        match store.head(&published).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.warehouse.store_error(&published, e)),
        }
    }

    /// The data files (warehouse-relative) of the table's last complete version, for readers
    /// that must not finish an interrupted commit themselves: the latest version when it was
    /// published or all its files are already in place (an overwrite deleting the files it
    /// replaces), else the version before it (its files are all still there: publishing
    /// deletes only after every new file is in). `None` for a table with no commit log.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, SinkError> {
        let listing = self.listing().await?;
        let Some(&latest) = listing.versions.last() else {
            return Ok(None);
        };
        let commit = self.read(latest).await?;
        let complete = if self.is_published(latest).await? || self.all_in_place(&commit).await? {
            latest
        } else {
            tracing::info!(
                table = self.table,
                version = latest,
                "the latest version is being published; reading the one before it"
            );
            latest - 1
        };
        let files = self
            .state_from(complete, &listing, Some(&commit))
            .await?
            .files;
        Ok(Some(Snapshot {
            files,
            columns: commit.schema,
        }))
    }

    /// True when every file of `commit` is at its final place.
    async fn all_in_place(&self, commit: &Commit) -> Result<bool, SinkError> {
        let store = self.warehouse.store();
        let found: Vec<bool> = futures::stream::iter(&commit.files)
            .map(|file| {
                let path = self.warehouse.object(file);
                let store = std::sync::Arc::clone(&store);
                async move {
                    match store.head(&path).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(self.warehouse.store_error(&path, e)),
                    }
                }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(found.iter().all(|&f| f))
    }

    /// Finishes publishing the latest commit if a killed run left it half done, and removes
    /// staging folders that killed runs left long ago. Returns the latest commit.
    pub async fn recover(&self) -> Result<Option<Commit>, SinkError> {
        let latest = self.latest().await?;
        if let Some(commit) = &latest
            && !self.is_published(commit.version).await?
        {
            tracing::warn!(
                table = self.table,
                version = commit.version,
                run = commit.run_id,
                "finishing the publication of a commit an interrupted run left"
            );
            self.publish(commit).await?;
        }
        self.sweep_orphans(latest.as_ref()).await;
        Ok(latest)
    }

    fn commit_body(&self, commit: &Commit) -> Result<Vec<u8>, SinkError> {
        serde_json::to_vec_pretty(commit).map_err(|e| SinkError::Corrupt {
            path: self.warehouse.display(&self.log_path(commit.version)),
            reason: e.to_string(),
        })
    }

    /// On HDFS, writes `commit`'s log entry into the run's staging folder (at its log path
    /// there), for [`TableLog::claim`] to rename into the log: written while the data files
    /// close, its wait for the NameNode overlaps theirs. Elsewhere a claim creates the entry
    /// in place, and this returns `None`.
    pub async fn stage_claim(&self, commit: &Commit) -> Result<Option<Path>, SinkError> {
        if self.warehouse.kind() != StoreKind::Hdfs {
            return Ok(None);
        }
        let relative = format!("{}/{LOG_DIR}/{:020}.json", self.table, commit.version);
        let staged = self.warehouse.path(&format!(
            "{}/{relative}",
            Self::staging_folder(&commit.run_id)
        ));
        let body = self.commit_body(commit)?;
        self.warehouse
            .store()
            .put(&staged, body.into())
            .await
            .map_err(|e| self.warehouse.store_error(&staged, e))?;
        Ok(Some(staged))
    }

    /// Claims version `commit.version`: creates its log file only if no run created it first
    /// (from `staged`, the entry [`TableLog::stage_claim`] wrote, when there is one). On a
    /// local warehouse the staged files are synced first and the log file is created durably
    /// (see [`super::durable`]). An entry already there is another run's
    /// ([`SinkError::Conflict`]) unless it names this run: then a retried attempt found what
    /// its first, unanswered, attempt made, and the version is this run's. A version at or
    /// below `_last_checkpoint`'s is always a conflict (it may have expired from the log).
    pub async fn claim(&self, commit: &Commit, staged: Option<&Path>) -> Result<(), SinkError> {
        // A version at or below the last checkpoint was taken long ago and may have expired
        // from the log, where a create would find nothing there and succeed.
        if let Some(pointed) = self.last_checkpoint().await
            && pointed >= commit.version
        {
            return Err(SinkError::Conflict {
                table: self.table.clone(),
                version: commit.version,
                other_run: format!("another run (the log is checkpointed at version {pointed})"),
            });
        }
        let path = self.log_path(commit.version);
        let attempt = async {
            match (staged, self.warehouse.syncer()) {
                (Some(staged), _) => {
                    let renamed = self
                        .warehouse
                        .store()
                        .rename_if_not_exists(staged, &path)
                        .await;
                    self.created(&path, renamed)
                }
                (None, Some(syncer)) => {
                    let body = self.commit_body(commit)?;
                    self.warehouse
                        .sync(&self.staged_files(commit), Synced::Data)
                        .await?;
                    let file = self.warehouse.local_file(&path);
                    let display = self.warehouse.display(&path);
                    tokio::task::spawn_blocking(move || {
                        super::durable::create_new(syncer.as_ref(), &file, &body)
                    })
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|created| created)
                    .map_err(|source| SinkError::Sync {
                        path: display,
                        source,
                    })
                }
                (None, None) => {
                    let body = self.commit_body(commit)?;
                    let options = PutOptions::from(PutMode::Create);
                    let put = self
                        .warehouse
                        .store()
                        .put_opts(&path, body.into(), options)
                        .await;
                    self.created(&path, put)
                }
            }
        };
        // A create or rename that failed, or found the entry there, may still have been this
        // run's (a retry after a lost reply): the entry decides. Taking it for another run's
        // would abort the run and delete the files its entry names.
        let (created, failed) = match attempt.await {
            Ok(created) => (created, None),
            Err(e) => (false, Some(e)),
        };
        if !created {
            let other = self.read(commit.version).await.ok();
            if other.as_ref().is_some_and(|c| c.run_id == commit.run_id) {
                tracing::warn!(
                    table = self.table,
                    version = commit.version,
                    "the claim's reply was lost: its entry is in the log, the version is this run's"
                );
            } else if let Some(e) = failed {
                return Err(e);
            } else {
                return Err(SinkError::Conflict {
                    table: self.table.clone(),
                    version: commit.version,
                    other_run: other
                        .map_or_else(|| "another run".into(), |c| format!("run {}", c.run_id)),
                });
            }
        }
        tracing::info!(
            table = self.table,
            version = commit.version,
            files = commit.files.len(),
            "claimed table version"
        );
        Ok(())
    }

    /// Whether a create-if-absent of `path` made it: `false` when an entry was there first.
    fn created<T>(&self, path: &Path, result: object_store::Result<T>) -> Result<bool, SinkError> {
        match result {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.warehouse.store_error(path, e)),
        }
    }

    /// Moves the commit's staged files into the table, removes what an overwrite replaces, and
    /// writes `_SUCCESS` last. Safe to repeat after an interruption at any point.
    pub async fn publish(&self, commit: &Commit) -> Result<(), SinkError> {
        let store = self.warehouse.store();
        let success = self.success_path();
        match store.delete(&success).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.warehouse.store_error(&success, e)),
        }
        let staging = Self::staging_folder(&commit.run_id);
        futures::stream::iter(&commit.files)
            .map(|file| self.move_into_place(&staging, file))
            .buffer_unordered(8)
            .try_collect::<()>()
            .await?;
        if commit.mode == SaveMode::Overwrite {
            let keep: BTreeSet<Path> = commit
                .files
                .iter()
                .map(|f| self.warehouse.object(f))
                .collect();
            for folder in [self.table.clone(), self.bad_folder.clone()] {
                self.delete_except(&folder, &keep).await?;
            }
        }
        // The files are durable in their folders before any marker vouches for them.
        let placed: Vec<Path> = commit
            .files
            .iter()
            .map(|f| self.warehouse.object(f))
            .collect();
        self.warehouse.sync(&placed, Synced::Names).await?;
        let markers = [self.published_path(commit.version), success];
        for marker in &markers {
            store
                .put(marker, object_store::PutPayload::default())
                .await
                .map_err(|e| self.warehouse.store_error(marker, e))?;
        }
        self.warehouse.sync(&markers, Synced::Names).await?;
        remove_folder(&self.warehouse, &staging).await;
        tracing::info!(
            table = self.table,
            version = commit.version,
            "published table version"
        );
        if commit.version.is_multiple_of(CHECKPOINT_INTERVAL) {
            self.write_checkpoint(commit).await;
        }
        Ok(())
    }

    async fn move_into_place(&self, staging: &str, file: &str) -> Result<(), SinkError> {
        let store = self.warehouse.store();
        let from = self.warehouse.object(&format!("{staging}/{file}"));
        let to = self.warehouse.object(file);
        let Err(error) = store.rename(&from, &to).await else {
            return Ok(());
        };
        // Moved before an interruption: in place and no longer staged. Looked up rather than
        // read from the error: hdfs-native reports a missing rename source as a generic RPC
        // error (FileNotFoundException), not as NotFound.
        let published = store.head(&to).await.is_ok();
        let staged = !matches!(
            store.head(&from).await,
            Err(object_store::Error::NotFound { .. })
        );
        match (published, staged, error) {
            (true, false, _) => Ok(()),
            (_, false, _) => Err(SinkError::Corrupt {
                path: self.warehouse.display(&to),
                reason: format!(
                    "a file of table {} is neither staged nor published",
                    self.table
                ),
            }),
            (_, true, error) => Err(self.warehouse.store_error(&from, error)),
        }
    }

    /// Deletes every object under `folder` except `keep`, the commit log and `_SUCCESS`. The
    /// log is not listed: `folder`'s own entries are, then each of its other folders whole
    /// (a few at a time), so an overwrite does not `statx` every version of a long log.
    async fn delete_except(&self, folder: &str, keep: &BTreeSet<Path>) -> Result<(), SinkError> {
        let store = self.warehouse.store();
        let prefix = self.warehouse.path(folder);
        let log = self.log_folder();
        let listed = |e| self.warehouse.store_error(&prefix, e);
        let top = store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(listed)?;
        let mut objects: Vec<Path> = top.objects.into_iter().map(|o| o.location).collect();
        let nested: Vec<Vec<Path>> = futures::stream::iter(
            top.common_prefixes
                .into_iter()
                .filter(|folder| !folder.prefix_matches(&log)),
        )
        .map(|folder| {
            store
                .list(Some(&folder))
                .map_ok(|o| o.location)
                .try_collect::<Vec<Path>>()
        })
        .buffer_unordered(LISTINGS_AT_ONCE)
        .try_collect()
        .await
        .map_err(listed)?;
        objects.extend(nested.into_iter().flatten());
        let stale: Vec<Path> = objects
            .into_iter()
            .filter(|p| !(keep.contains(p) || p.filename() == Some(SUCCESS_MARKER)))
            .collect();
        // Batched where the store can (S3's DeleteObjects takes 1000 keys a request).
        let paths = futures::stream::iter(stale.into_iter().map(Ok)).boxed();
        let mut deleted = store.delete_stream(paths);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.warehouse.store_error(&prefix, e)),
            }
        }
        Ok(())
    }

    /// Removes staging folders of runs that started more than a day ago and never committed.
    async fn sweep_orphans(&self, latest: Option<&Commit>) {
        let staging = self.warehouse.path(STAGING_DIR);
        let Ok(runs) = self.warehouse.folders(&staging).await else {
            return;
        };
        let now = now_ms();
        for run in runs {
            let Ok(id) = uuid::Uuid::parse_str(&run) else {
                continue;
            };
            let started = id
                .get_timestamp()
                .map(|t| {
                    let (secs, nanos) = t.to_unix();
                    i64::try_from(secs * 1000 + u64::from(nanos) / 1_000_000).unwrap_or(i64::MAX)
                })
                .unwrap_or(i64::MAX);
            let committed = latest.is_some_and(|c| c.run_id == run);
            if !committed && now.saturating_sub(started) > ORPHAN_AGE_MS {
                remove_folder(&self.warehouse, &Self::staging_folder(&run)).await;
            }
        }
    }
}

/// Deletes everything under a warehouse-relative folder; failures are logged, not raised
/// (a leftover staging folder is invisible to readers).
pub async fn remove_folder(warehouse: &Warehouse, folder: &str) {
    let store = warehouse.store();
    let prefix = warehouse.path(folder);
    let paths = store.list(Some(&prefix)).map_ok(|o| o.location).boxed();
    let mut deleted = store.delete_stream(paths);
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(folder = warehouse.display(&prefix), error = %e, "cannot remove a staging folder");
                return;
            }
        }
    }
    if warehouse.kind() == super::store::StoreKind::Local {
        // A local store leaves the emptied folders behind.
        let dir = std::path::PathBuf::from(warehouse.display(&prefix));
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(folder = %dir.display(), error = %e, "cannot remove a staging folder");
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The offsets a table holds after a run: an overwrite holds what it read; an append adds what
/// it read to what the table held.
pub fn next_offsets(
    base: Option<&Commit>,
    mode: SaveMode,
    ranges: &[CommittedRange],
) -> BTreeMap<i32, i64> {
    let mut offsets = match (mode, base) {
        (SaveMode::Append, Some(base)) => base.offsets.clone(),
        _ => BTreeMap::new(),
    };
    for range in ranges {
        let next = offsets.entry(range.partition).or_insert(range.end);
        *next = (*next).max(range.end);
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(mode: SaveMode, offsets: &[(i32, i64)]) -> Commit {
        Commit {
            version: 1,
            run_id: "r".into(),
            job: "extract".into(),
            mode,
            committed_at_ms: 0,
            topic: "events".into(),
            ranges: Vec::new(),
            offsets: offsets.iter().copied().collect(),
            files: Vec::new(),
            rows: 0,
            bad_records: 0,
            schema: Vec::new(),
        }
    }

    #[test]
    fn appends_carry_the_offsets_forward_and_overwrites_restart_them() {
        let base = commit(SaveMode::Overwrite, &[(0, 10), (1, 7)]);
        let read = [
            CommittedRange {
                partition: 0,
                start: 10,
                end: 15,
            },
            CommittedRange {
                partition: 2,
                start: 0,
                end: 3,
            },
        ];
        let appended = next_offsets(Some(&base), SaveMode::Append, &read);
        assert_eq!(appended, [(0, 15), (1, 7), (2, 3)].into());
        let replaced = next_offsets(Some(&base), SaveMode::Overwrite, &read);
        assert_eq!(replaced, [(0, 15), (2, 3)].into());
        // Re-reading old offsets in append mode never moves the table's offsets back.
        let old = [CommittedRange {
            partition: 0,
            start: 0,
            end: 5,
        }];
        assert_eq!(
            next_offsets(Some(&base), SaveMode::Append, &old),
            [(0, 10), (1, 7)].into()
        );
    }

    #[test]
    fn commits_round_trip_through_json_with_spark_mode_names() {
        let c = commit(SaveMode::ErrorIfExists, &[(0, 1)]);
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""mode":"error-if-exists""#), "{text}");
        assert_eq!(serde_json::from_str::<Commit>(&text).unwrap(), c);
    }

    #[tokio::test]
    async fn a_version_can_be_claimed_by_one_run_and_publishing_can_be_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let log = TableLog::new(&wh, "t");
        let mut c = commit(SaveMode::Overwrite, &[(0, 3)]);
        c.files = vec!["t/part-a.parquet".into()];
        let staged = wh.path(&format!(
            "{}/t/part-a.parquet",
            TableLog::staging_folder("r")
        ));
        wh.store().put(&staged, b"x".to_vec().into()).await.unwrap();
        log.claim(&c, None).await.unwrap();
        // Another run cannot claim it...
        let other = Commit {
            run_id: "s".into(),
            ..c.clone()
        };
        let theirs = wh.path(&format!(
            "{}/t/part-a.parquet",
            TableLog::staging_folder("s")
        ));
        wh.store().put(&theirs, b"y".to_vec().into()).await.unwrap();
        let err = log.claim(&other, None).await.unwrap_err().to_string();
        assert!(err.contains("version 1") && err.contains("run r"), "{err}");
        // ...and this run's retried claim (the first reply lost) finds its own entry.
        log.claim(&c, None).await.unwrap();
        assert_eq!(log.read(1).await.unwrap(), c);
        assert!(!log.is_published(1).await.unwrap());
        // A run that dies after its claim is finished by the next run's recovery.
        assert_eq!(log.recover().await.unwrap(), Some(c.clone()));
        assert!(log.is_published(1).await.unwrap());
        assert!(!log.is_published(2).await.unwrap());
        let success = wh.store().head(&wh.path("t/_SUCCESS")).await.unwrap();
        assert_eq!(success.size, 0, "an empty _SUCCESS, as Spark's");
        assert!(wh.store().head(&wh.path("t/part-a.parquet")).await.is_ok());
        log.publish(&c).await.unwrap();
        assert!(wh.store().head(&wh.path("t/part-a.parquet")).await.is_ok());
        assert!(!dir.path().join(STAGING_DIR).join("r").exists());
    }

    #[tokio::test]
    async fn a_success_marker_naming_its_version_still_counts_as_published() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let log = TableLog::new(&wh, "t");
        let marker = br#"{"version":2,"run_id":"r"}"#.to_vec();
        wh.store()
            .put(&wh.path("t/_SUCCESS"), marker.into())
            .await
            .unwrap();
        assert!(log.is_published(2).await.unwrap());
        assert!(!log.is_published(3).await.unwrap());
        // An empty _SUCCESS (Spark's) without bnetl's mark says nothing about a bnetl version.
        wh.store()
            .put(&wh.path("t/_SUCCESS"), object_store::PutPayload::default())
            .await
            .unwrap();
        assert!(log.has_success().await.unwrap());
        assert!(!log.is_published(1).await.unwrap());
    }

    #[tokio::test]
    async fn readers_start_from_a_checkpoint_and_fold_what_the_commits_say() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let log = TableLog::new(&wh, "t");
        let mut commits = Vec::new();
        for v in 1..=160u64 {
            let overwrite = v == 1 || v == 60 || v == 150;
            let mut c = nth_commit(&log, v, overwrite);
            c.rows = 2;
            c.bad_records = v % 2;
            c.ranges[0].partition = i32::from(v % 3 == 0);
            land(&wh, &log, &c).await;
            commits.push(c);
        }
        let folded = |version: u64| {
            let mut state = TableState::default();
            for c in commits.iter().take(usize::try_from(version).unwrap()) {
                state.apply(c);
            }
            state
        };
        let whole = log.list(None).await.unwrap();
        assert_eq!(whole.checkpoints, [100]);
        assert_eq!(whole.versions.len(), 160);
        let listing = log.listing().await.unwrap();
        assert!(listing.partial);
        assert_eq!(listing.versions, (100..=160).collect::<Vec<_>>());
        // Past the last overwrite (150), no checkpoint is needed.
        let (latest, state) = log.state().await.unwrap().unwrap();
        assert_eq!((latest.version, &state), (160, &folded(160)));
        assert_eq!(state.files.len(), 11);
        assert_eq!(state.rows, 22);
        // Version 140 is the checkpoint of 100 (the overwrite of 60 and what followed) and 40
        // more commits; the commits before 100 are not read.
        let expected = folded(140);
        assert_eq!(expected.files.len(), 81);
        assert_eq!(expected.first_offsets, [(0, 60), (1, 59)].into());
        std::fs::remove_file(dir.path().join("t/_bnetl_log/00000000000000000080.json")).unwrap();
        let whole = log.list(None).await.unwrap();
        let at_140 = log.state_at(140, &whole, None).await.unwrap();
        assert_eq!(at_140, expected);
        // A damaged checkpoint is read around: the commits are read instead, and here one
        // of them is lost, which is an error naming it, never a table without its files.
        let checkpoint = dir
            .path()
            .join("t/_bnetl_log/00000000000000000100.checkpoint.json");
        let whole = std::fs::read(&checkpoint).unwrap();
        std::fs::write(&checkpoint, &whole[..whole.len() / 2]).unwrap();
        let whole_log = log.list(None).await.unwrap();
        let err = log.state_at(140, &whole_log, None).await.unwrap_err();
        assert!(err.to_string().contains("lacks version 80"), "{err}");
        std::fs::write(&checkpoint, &whole).unwrap();
        let at_140 = log.state_at(140, &whole_log, None).await.unwrap();
        assert_eq!(at_140, expected);
        // So is a lost commit after the checkpoint.
        std::fs::remove_file(dir.path().join("t/_bnetl_log/00000000000000000155.json")).unwrap();
        let err = log.state().await.unwrap_err().to_string();
        assert!(err.contains("lacks version 155"), "{err}");
    }

    /// Version `v` of `log`'s table by run `r<v>`: an overwrite or an append of one file
    /// and one row, offset `v - 1` of partition 0.
    fn nth_commit(log: &TableLog, v: u64, overwrite: bool) -> Commit {
        let mode = if overwrite {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        };
        let end = i64::try_from(v).unwrap();
        let mut c = commit(mode, &[(0, end)]);
        c.version = v;
        c.run_id = format!("r{v}");
        c.files = vec![format!("{}/f{v}.parquet", log.table)];
        c.rows = 1;
        c.ranges = vec![CommittedRange {
            partition: 0,
            start: end - 1,
            end,
        }];
        c
    }

    /// Stages `c`'s file, claims its version and publishes it.
    async fn land(wh: &Warehouse, log: &TableLog, c: &Commit) {
        let staged = wh.path(&format!(
            "{}/{}",
            TableLog::staging_folder(&c.run_id),
            c.files[0]
        ));
        wh.store().put(&staged, b"x".to_vec().into()).await.unwrap();
        log.claim(c, None).await.unwrap();
        log.publish(c).await.unwrap();
    }

    /// Lands `versions` of `log`'s table (version 1 an overwrite, the rest appends); returns
    /// the table's state as of the last.
    async fn append_versions(
        wh: &Warehouse,
        log: &TableLog,
        versions: std::ops::RangeInclusive<u64>,
    ) -> TableState {
        let mut state = TableState::default();
        for v in versions {
            let c = nth_commit(log, v, v == 1);
            land(wh, log, &c).await;
            state.apply(&c);
        }
        state
    }

    /// The versions named by the entries of `table`'s log folder, sorted, without repeats.
    fn logged_versions(dir: &std::path::Path, table: &str) -> Vec<u64> {
        let mut versions: Vec<u64> = std::fs::read_dir(dir.join(table).join(LOG_DIR))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.split('.').next()?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    #[tokio::test]
    async fn the_log_is_listed_from_its_last_checkpoint_and_old_entries_expire() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let log = TableLog::new(&wh, "t").with_retention(0);
        let expected = append_versions(&wh, &log, 1..=250).await;
        // Checkpoint 200 expired every entry (commit, published mark) before checkpoint 100.
        assert_eq!(
            logged_versions(dir.path(), "t"),
            (100..=250).collect::<Vec<_>>()
        );
        let whole = log.list(None).await.unwrap();
        assert_eq!(whole.versions, (100..=250).collect::<Vec<_>>());
        assert_eq!(whole.checkpoints, [100, 200]);
        let listing = log.listing().await.unwrap();
        assert!(listing.partial);
        assert_eq!(listing.versions, (200..=250).collect::<Vec<_>>());
        let (latest, state) = log.state().await.unwrap().unwrap();
        assert_eq!((latest.version, &state), (250, &expected));
        assert_eq!(state.files.len(), 250);
        assert_eq!(log.snapshot().await.unwrap().unwrap().files, expected.files);
        // A run that stalled since version 49 cannot claim the expired version 50, nor one
        // still in the log at or below the checkpoint.
        for version in [50, 150] {
            let mut late = commit(SaveMode::Overwrite, &[(0, 1)]);
            late.version = version;
            let err = log.claim(&late, None).await.unwrap_err();
            assert!(matches!(err, SinkError::Conflict { .. }), "{err}");
        }
        assert_eq!(logged_versions(dir.path(), "t")[0], 100);
        // A damaged newest checkpoint: the whole log is listed and the one before it read.
        let checkpoint = |v: u64| {
            dir.path()
                .join(format!("t/_bnetl_log/{v:020}.checkpoint.json"))
        };
        let newest = std::fs::read(checkpoint(200)).unwrap();
        std::fs::write(checkpoint(200), b"{").unwrap();
        assert_eq!(log.state().await.unwrap().unwrap().1, expected);
        // Both damaged: what is lost is named, never a table without those files.
        let older = std::fs::read(checkpoint(100)).unwrap();
        std::fs::write(checkpoint(100), b"{").unwrap();
        let err = log.state().await.unwrap_err().to_string();
        assert!(err.contains("lacks version 99"), "{err}");
        std::fs::write(checkpoint(100), older).unwrap();
        std::fs::write(checkpoint(200), newest).unwrap();
        // A pointer naming a version the log lacks is not trusted.
        let pointer = dir.path().join("t/_bnetl_log/_last_checkpoint");
        std::fs::write(&pointer, br#"{"version":300}"#).unwrap();
        let listing = log.listing().await.unwrap();
        assert!(!listing.partial);
        assert_eq!(log.state().await.unwrap().unwrap().1, expected);
        assert_eq!(log.latest().await.unwrap().unwrap().version, 250);
        // Nor one naming a commit without its checkpoint; an older one still holds.
        std::fs::write(&pointer, br#"{"version":230}"#).unwrap();
        assert!(!log.listing().await.unwrap().partial);
        std::fs::write(&pointer, br#"{"version":100}"#).unwrap();
        let listing = log.listing().await.unwrap();
        assert!(listing.partial);
        assert_eq!(listing.versions.len(), 151);
        assert_eq!(log.state().await.unwrap().unwrap().1, expected);
        // Without a pointer, the whole log.
        std::fs::remove_file(&pointer).unwrap();
        assert!(!log.listing().await.unwrap().partial);
        assert_eq!(log.state().await.unwrap().unwrap().1, expected);
    }

    #[tokio::test]
    async fn a_table_exists_when_it_holds_a_visible_file_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        let put = |path: &str| {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, b"x").unwrap();
        };
        assert!(!wh.exists().await.unwrap());
        // A claim's temp file left by HDFS's client, in an otherwise empty table: not a table.
        put("t/_bnetl_log/.00000000000000000001.json.tmp.1");
        std::fs::create_dir_all(dir.path().join("t/event_type=a")).unwrap();
        let log = TableLog::new(&wh, "t");
        assert!(!log.exists().await.unwrap());
        put("t/event_type=a/part-0.parquet");
        assert!(log.exists().await.unwrap());
        put("u/_SUCCESS");
        assert!(TableLog::new(&wh, "u").exists().await.unwrap());
        put("v/_bnetl_log/00000000000000000001.json");
        assert!(TableLog::new(&wh, "v").exists().await.unwrap());
        assert!(wh.exists().await.unwrap());
    }

    #[tokio::test]
    async fn young_entries_and_those_of_an_unreadable_checkpoint_do_not_expire() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::parse(&dir.path().to_string_lossy()).unwrap();
        // With the default retention of a day, a fresh log keeps every version.
        let log = TableLog::new(&wh, "fresh");
        append_versions(&wh, &log, 1..=200).await;
        assert_eq!(
            logged_versions(dir.path(), "fresh"),
            (1..=200).collect::<Vec<_>>()
        );
        // With no retention, a damaged previous checkpoint keeps the commits it stood for.
        let log = TableLog::new(&wh, "guarded").with_retention(0);
        append_versions(&wh, &log, 1..=199).await;
        let checkpoint = dir
            .path()
            .join("guarded/_bnetl_log/00000000000000000100.checkpoint.json");
        std::fs::write(&checkpoint, b"{").unwrap();
        land(&wh, &log, &nth_commit(&log, 200, false)).await;
        assert_eq!(
            logged_versions(dir.path(), "guarded"),
            (1..=200).collect::<Vec<_>>()
        );
    }

    /// Records every sync with what the disk held at that moment; fails the syncs of one path.
    #[derive(Debug)]
    struct Recorder {
        table: std::path::PathBuf,
        fail: Option<String>,
        calls: std::sync::Mutex<Vec<(String, String, bool, bool)>>,
    }

    impl Recorder {
        fn record(&self, kind: &str, path: &std::path::Path) -> std::io::Result<()> {
            let name = path.display().to_string();
            self.calls.lock().unwrap().push((
                kind.to_owned(),
                name.clone(),
                self.table
                    .join("_bnetl_log/00000000000000000001.json")
                    .exists(),
                self.table.join("_SUCCESS").exists(),
            ));
            match &self.fail {
                Some(fail) if name.ends_with(fail.as_str()) => {
                    Err(std::io::Error::other("disk on fire"))
                }
                _ => Ok(()),
            }
        }
    }

    impl super::super::durable::Syncer for Recorder {
        fn sync_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.record("file", path)
        }
        fn sync_folder(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.record("folder", path)
        }
    }

    async fn commit_with(
        fail: Option<&str>,
    ) -> (
        tempfile::TempDir,
        Result<(), SinkError>,
        Vec<(String, String, bool, bool)>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let recorder = std::sync::Arc::new(Recorder {
            table: dir.path().join("t"),
            fail: fail.map(str::to_owned),
            calls: std::sync::Mutex::default(),
        });
        let wh = Warehouse::parse(&dir.path().to_string_lossy())
            .unwrap()
            .with_syncer(recorder.clone());
        let log = TableLog::new(&wh, "t");
        let mut c = commit(SaveMode::Append, &[(0, 3)]);
        c.files = vec!["t/p=1/a.parquet".into(), "t/b.parquet".into()];
        for file in &c.files {
            let staged = wh.path(&format!("{}/{file}", TableLog::staging_folder("r")));
            wh.store().put(&staged, b"x".to_vec().into()).await.unwrap();
        }
        let result = async {
            log.claim(&c, None).await?;
            log.publish(&c).await
        }
        .await;
        let calls = recorder.calls.lock().unwrap().clone();
        (dir, result, calls)
    }

    #[tokio::test]
    async fn a_local_commit_syncs_data_then_claim_then_folders_then_markers() {
        let (dir, result, calls) = commit_with(None).await;
        result.unwrap();
        let root = dir.path().display().to_string();
        let mut short: Vec<(String, String, bool, bool)> = calls
            .into_iter()
            .map(|(kind, path, claimed, success)| {
                let path = path.strip_prefix(&root).unwrap_or(&path).to_owned();
                // The claim's temporary file has a random name.
                let path = if path.ends_with(".tmp") {
                    "<claim>.tmp".into()
                } else {
                    path
                };
                (kind, path, claimed, success)
            })
            .collect();
        // The staged files are synced side by side: in any order.
        short[..2].sort();
        let expected: Vec<(String, String, bool, bool)> = [
            // 1. The staged data, before the claim exists.
            ("file", "/.bnetl-staging/r/t/b.parquet", false, false),
            ("file", "/.bnetl-staging/r/t/p=1/a.parquet", false, false),
            // 2. The claim's bytes before its name, then its folder.
            ("file", "<claim>.tmp", false, false),
            ("folder", "/t/_bnetl_log", true, false),
            // 3. The folders the files moved into, up to the warehouse root.
            ("folder", "/t/p=1", true, false),
            ("folder", "/t", true, false),
            ("folder", "", true, false),
            // 4. The markers' folders, _SUCCESS last of all.
            ("folder", "/t/_bnetl_log", true, true),
            ("folder", "/t", true, true),
            ("folder", "", true, true),
        ]
        .into_iter()
        .map(|(k, p, c, s)| (k.to_owned(), p.to_owned(), c, s))
        .collect();
        assert_eq!(short, expected);
    }

    #[tokio::test]
    async fn a_failed_sync_before_the_claim_commits_nothing() {
        let (dir, result, _) = commit_with(Some("b.parquet")).await;
        let err = crate::error::chain(&result.unwrap_err());
        assert!(
            err.contains("cannot sync")
                && err.contains("b.parquet")
                && err.contains("disk on fire"),
            "{err}"
        );
        assert!(!dir.path().join("t/_bnetl_log").exists());
        assert!(!dir.path().join("t/_SUCCESS").exists());
    }
}
