//! The DataFusion session: configuration, the `events` input table and the warehouse tables.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::QueryError;
use crate::sink::read_only::ReadOnlyStore;
use crate::sink::{TableLog, Warehouse};

/// A session configured for bnetl's tables.
///
/// Identifier normalization is off: `SELECT Host FROM gamer` finds the column `Host`, as the
/// seed's Spark SQL did, instead of looking for `host`. Names with a dash are quoted:
/// `"User-Agent"`.
pub fn new_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    SessionContext::new_with_config(config)
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

/// Registers every table of the warehouse under its folder name, Hive partition columns
/// included (as strings), through a [`ReadOnlyStore`] that shows each table's last complete
/// version. Returns the names registered.
pub async fn register_warehouse(
    ctx: &SessionContext,
    warehouse: &Warehouse,
) -> Result<Vec<String>, QueryError> {
    let unreadable = |e: crate::sink::SinkError| QueryError::Register {
        table: "*".into(),
        location: warehouse.url().to_string(),
        source: datafusion::error::DataFusionError::External(Box::new(e)),
    };
    if !warehouse.exists().await.map_err(unreadable)? {
        return Err(QueryError::NoWarehouse {
            location: warehouse.url().to_string(),
        });
    }
    let tables = warehouse.tables().await.map_err(unreadable)?;
    // Each table as its last complete version: never half of a commit being published, never
    // finished here (a query only reads).
    let mut visible = BTreeMap::new();
    for table in &tables {
        if table == crate::decode::BAD_RECORDS_TABLE {
            continue;
        }
        let Some(files) = TableLog::new(warehouse, table)
            .snapshot()
            .await
            .map_err(unreadable)?
        else {
            continue;
        };
        for folder in [table.clone(), crate::sink::bad_records_folder(table)] {
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
    for table in &tables {
        let location = warehouse.table_url(table);
        let partition_cols = warehouse
            .partition_columns(table)
            .await
            .map_err(unreadable)?
            .into_iter()
            .map(|c| (c, DataType::Utf8))
            .collect();
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols);
        ctx.register_listing_table(table.as_str(), &location, options, None, None)
            .await
            .map_err(|source| QueryError::Register {
                table: table.clone(),
                location: location.clone(),
                source,
            })?;
    }
    Ok(tables)
}
