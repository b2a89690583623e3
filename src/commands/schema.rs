//! `bnetl schema TABLE`: a table's committed schema, as its latest commit records it: each
//! column, its type, and the version (and time) that added it. Reads only.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::cli::SchemaArgs;
use crate::commands::sql;
use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::sink::TableLog;

/// Prints the schema of one table.
pub async fn run(settings: &Settings, args: &SchemaArgs) -> Result<()> {
    let warehouse = &settings.warehouse;
    let table = &args.table;
    let log = TableLog::new(warehouse, table);
    let Some(latest) = log.latest().await? else {
        return Err(Error::Usage(format!(
            "no table {table} with a commit log at {}",
            warehouse.table_url(table)
        )));
    };
    if latest.schema.is_empty() {
        return Err(Error::Usage(format!(
            "table {table} (version {}) was written by a bnetl that did not record schemas; its next run records it",
            latest.version
        )));
    }
    let mut names = StringBuilder::new();
    let mut types = StringBuilder::new();
    let mut since = UInt64Builder::new();
    let mut added = TimestampMillisecondBuilder::new().with_timezone("UTC");
    for column in &latest.schema {
        names.append_value(&column.name);
        types.append_value(&column.data_type);
        since.append_value(column.since);
        let at = if column.since == latest.version {
            Some(latest.committed_at_ms)
        } else {
            // An overwrite may have removed older commits' files, never their log entries.
            log.read(column.since).await.ok().map(|c| c.committed_at_ms)
        };
        added.append_option(at);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("since_version", DataType::UInt64, false),
        Field::new(
            "added_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(names.finish()),
        Arc::new(types.finish()),
        Arc::new(since.finish()),
        Arc::new(added.finish()),
    ];
    let batch =
        RecordBatch::try_new(schema, columns).map_err(Error::arrow("build the schema listing"))?;
    let mut out = std::io::stdout().lock();
    sql::print(&mut out, &batch, args.format, 0).map_err(Error::io("write the schema to stdout"))
}
