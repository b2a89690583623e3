//! The DataFusion session: configuration, the `events` input table and the warehouse tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::QueryError;
use crate::sink::read_only::ReadOnlyStore;
use crate::sink::{SinkError, TableLog, Warehouse};

/// A session configured for bnetl's tables.
///
/// Identifier normalization is off: `SELECT Host FROM gamer` finds the column `Host`, as the
/// seed's Spark SQL did, instead of looking for `host`. Names with a dash are quoted:
/// `"User-Agent"`. Casts of UTC timestamps to dates are computed by division
/// ([`super::utc_date`]); `starts_with` with a prefix holding `_`, `%` or `\` is not run as a LIKE
/// ([`super::starts_with`]).
pub fn new_context() -> SessionContext {
    new_context_with_partitions(SessionConfig::new().target_partitions())
}

/// [`new_context`] whose plans run as `partitions` streams (1: in their input's order, on one
/// thread).
pub fn new_context_with_partitions(partitions: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(true)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let ctx = SessionContext::new_with_config(config);
    ctx.add_optimizer_rule(Arc::new(super::utc_date::UtcDateCast));
    ctx.register_udf(super::starts_with::StartsWith::udf());
    ctx
}

/// Opens a fresh stream of the same rows each time it is called.
pub type OpenStream = Arc<dyn Fn() -> SendableRecordBatchStream + Send + Sync>;

/// A table whose rows come from re-running a stream (a bounded topic read), so a query may scan
/// it more than once (self-joins) and each scan sees the same snapshot.
struct ReplayedStream {
    schema: SchemaRef,
    open: OpenStream,
}

impl fmt::Debug for ReplayedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayedStream")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PartitionStream for ReplayedStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        (self.open)()
    }
}

/// Registers `name` as a table of `schema` whose scans call `open`.
pub fn register_stream(
    ctx: &SessionContext,
    name: &str,
    schema: SchemaRef,
    open: OpenStream,
) -> Result<(), QueryError> {
    let register = |source| QueryError::Register {
        table: name.to_owned(),
        location: "topic read".to_owned(),
        source,
    };
    let partition = Arc::new(ReplayedStream {
        schema: Arc::clone(&schema),
        open,
    });
    let table = StreamingTable::try_new(schema, vec![partition]).map_err(register)?;
    ctx.register_table(name, Arc::new(table))
        .map_err(register)?;
    Ok(())
}

/// The warehouse tables a statement needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needed {
    /// The tables the statement names.
    pub named: BTreeSet<String>,
    /// Every table, not only those named (`SHOW TABLES`, `DESCRIBE`, the catalog views, a
    /// statement that does not parse).
    pub all: bool,
}

impl Needed {
    /// Every table of the warehouse.
    pub fn all() -> Self {
        Needed {
            named: BTreeSet::new(),
            all: true,
        }
    }

    fn wants(&self, table: &str) -> bool {
        self.all || self.named.contains(table)
    }

    /// Whether a damaged log of `table` fails the statement: it names the table, or
    /// `_bad_records`, which shows the bad records of every table.
    fn must_read(&self, table: &str) -> bool {
        self.named.contains(table) || self.named.contains(crate::decode::BAD_RECORDS_TABLE)
    }
}

/// Registers the tables of the warehouse that `needed` asks for, under their folder names
/// exactly (as identifiers are not normalized: `Sales` is `Sales`), Hive partition columns
/// included (as strings), through a [`ReadOnlyStore`] that shows each table's last complete
/// version. Returns the names of every table in the warehouse.
///
/// A table whose commit log is damaged (unreadable JSON, a lost commit) fails the statements
/// that need it; a statement over every table (`SHOW TABLES`, `DESCRIBE` of another table)
/// leaves it out with a warning naming it, so one damaged table does not stop queries over the
/// others. A failure to reach the store is an error whatever the statement.
pub async fn register_warehouse(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    needed: &Needed,
) -> Result<Vec<String>, QueryError> {
    let unlisted = |e: SinkError| QueryError::Register {
        table: "*".into(),
        location: warehouse.url().to_string(),
        source: DataFusionError::External(Box::new(e)),
    };
    if !warehouse.exists().await.map_err(unlisted)? {
        return Err(QueryError::NoWarehouse {
            location: warehouse.url().to_string(),
        });
    }
    let tables = warehouse.tables().await.map_err(unlisted)?;
    let bad_records = crate::decode::BAD_RECORDS_TABLE;
    let unreadable = |table: &str, source: DataFusionError| QueryError::Register {
        table: table.to_owned(),
        location: warehouse.table_url(table),
        source,
    };
    // Each table as its last complete version: never half of a commit being published, never
    // finished here (a query only reads). `_bad_records` shows the bad records of every table.
    let mut visible = BTreeMap::new();
    let mut damaged = BTreeSet::new();
    for table in &tables {
        if table == bad_records || !(needed.wants(table) || needed.wants(bad_records)) {
            continue;
        }
        let folders = [table.clone(), crate::sink::bad_records_folder(table)];
        let files = match TableLog::new(warehouse, table).snapshot().await {
            Ok(Some(files)) => files,
            // No commit log: a folder of Parquet files as another tool wrote it, shown whole.
            Ok(None) => continue,
            Err(e @ (SinkError::Corrupt { .. } | SinkError::MissingVersion { .. }))
                if !needed.must_read(table) =>
            {
                tracing::warn!(
                    table,
                    error = %crate::error::chain(&e),
                    "the table's commit log is damaged: the table and its bad records are left out of this statement"
                );
                // Its bad records are hidden too, not shown whole.
                for folder in &folders {
                    visible.insert(warehouse.path(folder), BTreeSet::new());
                }
                damaged.insert(table);
                continue;
            }
            Err(e) => return Err(unreadable(table, DataFusionError::External(Box::new(e)))),
        };
        for folder in folders {
            let prefix = format!("{folder}/");
            let held = files
                .iter()
                .filter(|f| f.starts_with(&prefix))
                .map(|f| warehouse.object(f))
                .collect();
            visible.insert(warehouse.path(&folder), held);
        }
    }
    ctx.register_object_store(
        &warehouse.store_url(),
        Arc::new(ReadOnlyStore::new(warehouse.store(), visible)),
    );
    let registered = tables
        .iter()
        .filter(|table| needed.wants(table) && !damaged.contains(table));
    for table in registered {
        let location = warehouse.table_url(table);
        let partition_cols = warehouse
            .partition_columns(table)
            .await
            .map_err(|e| unreadable(table, DataFusionError::External(Box::new(e))))?
            .into_iter()
            .map(|c| (c, DataType::Utf8))
            .collect();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols);
        ctx.register_listing_table(
            TableReference::bare(table.as_str()),
            &location,
            options,
            None,
            None,
        )
        .await
        .map_err(|source| unreadable(table, source))?;
    }
    Ok(tables)
}
