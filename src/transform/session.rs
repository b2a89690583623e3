//! The DataFusion session: configuration, the `events` input table and the warehouse tables.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Column;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{TableType, ViewTable, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::functions::expr_fn::nullif;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, cast, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::QueryError;
use crate::sink::read_only::ReadOnlyStore;
use crate::sink::{SinkError, TableColumn, TableLog, Warehouse};

/// The table of the topic's decoded events, as the jobs' queries and `bnetl sql` name it.
pub const EVENTS_TABLE: &str = "events";

/// A session configured for bnetl's tables.
///
/// Identifier normalization is off: `SELECT Host FROM gamer` finds the column `Host`, as the
/// seed's Spark SQL did, instead of looking for `host`. Names with a dash are quoted:
/// `"User-Agent"`. Casts of UTC timestamps to dates are computed by division
/// ([`super::utc_date`]); `starts_with` with a prefix holding `_`, `%` or `\` is not run as a LIKE
/// ([`super::starts_with`]); `date_format` reads a pattern without `%` as Spark's
/// ([`super::spark_format`]); a cast of binary to text replaces bytes that are not UTF-8, as
/// Spark's does ([`super::binary_text`]); Spark's `get_json_object` reads JSON text
/// ([`super::get_json_object`]).
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
    ctx.add_analyzer_rule(Arc::new(super::binary_text::BinaryTextCast));
    ctx.register_udf(super::starts_with::StartsWith::udf());
    ctx.register_udf(super::spark_format::DateFormat::udf());
    ctx.register_udf(super::get_json_object::GetJsonObject::udf());
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
/// included (with their committed types, see [`listing_table`]), through a [`ReadOnlyStore`]
/// that shows each table's last complete version. Returns the names of every table in the
/// warehouse.
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
    let mut columns: BTreeMap<&str, Vec<TableColumn>> = BTreeMap::new();
    for table in &tables {
        if table == bad_records || !(needed.wants(table) || needed.wants(bad_records)) {
            continue;
        }
        let folders = [table.clone(), crate::sink::bad_records_folder(table)];
        let files = match TableLog::new(warehouse, table).snapshot().await {
            Ok(Some(snapshot)) => {
                columns.insert(table, snapshot.columns);
                snapshot.files
            }
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
            .map_err(|e| unreadable(table, DataFusionError::External(Box::new(e))))?;
        let committed = columns.get(table.as_str()).map_or(&[][..], Vec::as_slice);
        let provider = listing_table(ctx, table, &location, partition_cols, committed)
            .await
            .map_err(|source| unreadable(table, source))?;
        ctx.register_table(TableReference::bare(table.as_str()), provider)
            .map_err(|source| unreadable(table, source))?;
    }
    Ok(tables)
}

/// The table of Parquet files at `location`, Hive partition columns included. DataFusion
/// reads a partition folder's value as text, and `__HIVE_DEFAULT_PARTITION__` as that text;
/// Spark reads it as null, and a partition column with its type (`level=12` an integer, so
/// that `MAX(level)` is 12, not `9`). Here each partition column is read as its committed type
/// (text when the log records none, a folder of files another tool wrote), with the default
/// partition as null: the listing is wrapped in a projection that does the casts, which
/// conditions on the column still go through, so they still prune folders.
async fn listing_table(
    ctx: &SessionContext,
    table: &str,
    location: &str,
    partition_cols: Vec<String>,
    committed: &[TableColumn],
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let typed: Vec<(String, DataType)> = partition_cols
        .into_iter()
        .map(|name| {
            let data_type = committed
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.arrow_type().ok())
                .unwrap_or(DataType::Utf8);
            (name, data_type)
        })
        .collect();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            typed
                .iter()
                .map(|(name, _)| (name.clone(), DataType::Utf8))
                .collect(),
        );
    let path = ListingTableUrl::parse(location)?.with_table_ref(TableReference::bare(table));
    let schema = options.infer_schema(&ctx.state(), &path).await?;
    let config = ListingTableConfig::new(path)
        .with_listing_options(options)
        .with_schema(schema);
    let listing = Arc::new(
        ListingTable::try_new(config)?
            .with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache()),
    );
    if typed.is_empty() {
        return Ok(listing);
    }
    let schema = listing.schema();
    let projection = schema.fields().iter().map(|field| {
        let column = Expr::Column(Column::new_unqualified(field.name()));
        match typed.iter().find(|(name, _)| name == field.name()) {
            Some((name, data_type)) => {
                let value = nullif(column, lit(crate::sink::partition::DEFAULT_PARTITION));
                let value = match data_type {
                    DataType::Utf8 => value,
                    other => cast(value, other.clone()),
                };
                value.alias(name)
            }
            None => column,
        }
    });
    let plan = LogicalPlanBuilder::scan(table, provider_as_source(listing), None)?
        .project(projection)?
        .build()?;
    Ok(Arc::new(BaseTable(ViewTable::new(plan, None))))
}

/// A table defined by a plan ([`ViewTable`]) that the catalog lists as a table, not a view:
/// the partitioned tables of [`listing_table`], which are tables to their users.
#[derive(Debug)]
struct BaseTable(ViewTable);

#[async_trait::async_trait]
impl TableProvider for BaseTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
}
