//! Sink stage: `RecordBatch` streams → a Parquet table in the warehouse, committed atomically.
//!
//! A run writes every file under `<warehouse>/.bnetl-staging/<table>-<run_id>/`, closes them,
//! writes `_SUCCESS` there, and only then swaps the folder into place as `<warehouse>/<table>`
//! (the previous table is renamed aside first and removed after). Readers therefore see the old
//! table or the new one, never a part of a run, and a failed or killed run leaves only a hidden
//! staging folder. Save mode is overwrite, as the seed's Spark jobs.

pub mod partition;
pub mod store;
pub mod writer;

use std::error::Error as StdError;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt};
use object_store::ObjectStoreExt;
use parquet::errors::ParquetError;
use tokio_util::sync::CancellationToken;

pub use store::Warehouse;
pub use writer::{PartitionedWriter, RollPolicy};

/// Marker file that says a table is complete, as Hadoop's output committer writes it.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

/// Failures writing a table.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("invalid warehouse location {location}: {reason}")]
    Location { location: String, reason: String },
    #[error("cannot {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
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
    #[error("partition column {column} is not in the output (columns: {})", available.join(", "))]
    PartitionColumn {
        column: String,
        available: Vec<String>,
    },
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

/// Writes `batches` as table `spec.name` and commits it, replacing the previous table.
/// On any error the previous table is left as it was and the staging folder is removed.
pub async fn write_table<S, E>(
    warehouse: &Warehouse,
    spec: &TableSpec,
    run_id: &str,
    schema: &SchemaRef,
    mut batches: S,
    on_rows: impl Fn(u64),
    cancel: &CancellationToken,
) -> Result<WriteSummary, SinkError>
where
    S: Stream<Item = Result<RecordBatch, E>> + Unpin,
    E: StdError + Send + Sync + 'static,
{
    let staging_name = format!("{}-{run_id}", spec.name);
    let staging_dir = warehouse
        .local_root()
        .join(store::STAGING_DIR)
        .join(&staging_name);
    let staging = warehouse
        .path(store::STAGING_DIR)
        .join(staging_name.as_str());
    let written = async {
        let mut writer = PartitionedWriter::new(
            warehouse.store(),
            staging.clone(),
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
        let written = writer.finish().await?;
        let marker = staging.clone().join(SUCCESS_MARKER);
        warehouse
            .store()
            .put(&marker, bytes::Bytes::new().into())
            .await
            .map_err(|source| SinkError::Store {
                path: marker.to_string(),
                source,
            })?;
        Ok::<_, SinkError>(written)
    }
    .await;
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            remove_staging(&staging_dir);
            return Err(e);
        }
    };
    let table_dir = warehouse.local_root().join(&spec.name);
    if let Err(source) = swap_into_place(&staging_dir, &table_dir) {
        remove_staging(&staging_dir);
        return Err(SinkError::Io {
            action: format!("commit table {} at {}", spec.name, table_dir.display()),
            source,
        });
    }
    Ok(WriteSummary {
        table: spec.name.clone(),
        rows: written.rows,
        files: written.files.len(),
        location: warehouse.table_url(&spec.name),
    })
}

/// Replaces `table` with the complete folder `staged`: the old table is renamed aside, the new
/// one renamed in, then the old one deleted. Each rename is atomic on a local file system.
fn swap_into_place(staged: &std::path::Path, table: &std::path::Path) -> std::io::Result<()> {
    let previous = staged.with_extension("previous");
    let had_previous = match std::fs::rename(table, &previous) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if let Some(parent) = table.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if let Err(e) = std::fs::rename(staged, table) {
        if had_previous {
            // Put the previous table back so the failed run changes nothing.
            let _ = std::fs::rename(&previous, table);
        }
        return Err(e);
    }
    if had_previous && let Err(e) = std::fs::remove_dir_all(&previous) {
        tracing::warn!(path = %previous.display(), error = %e, "cannot remove the previous table version");
    }
    Ok(())
}

fn remove_staging(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), error = %e, "cannot remove the staging folder");
    }
}
