//! `bnetl status [TABLE]`: per table and partition, the offsets the table holds (from its commit
//! log), the topic's current end and the lag; rows, files and `_SUCCESS`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use futures::TryStreamExt;

use crate::cli::StatusArgs;
use crate::commands::sql;
use crate::decode::BAD_RECORDS_TABLE;
use crate::error::{Error, Result};
use crate::pipeline;
use crate::settings::Settings;
use crate::sink::{Commit, TableLog, TableState};
use crate::source::offsets::Watermark;
use crate::transform::QueryError;

/// Prints the status of one table or of every table.
pub async fn run(settings: &Settings, args: &StatusArgs) -> Result<()> {
    let warehouse = &settings.warehouse;
    if !warehouse.exists().await? {
        return Err(QueryError::NoWarehouse {
            location: warehouse.url().to_string(),
        }
        .into());
    }
    let tables = match &args.table {
        Some(table) if table == BAD_RECORDS_TABLE => {
            return Err(Error::Usage(format!(
                "{BAD_RECORDS_TABLE} is not a table of its own: each table commits its bad records with its rows, and its status counts them (bnetl status TABLE)"
            )));
        }
        Some(table) => vec![table.clone()],
        None => warehouse
            .tables()
            .await?
            .into_iter()
            .filter(|t| t != BAD_RECORDS_TABLE)
            .collect(),
    };
    let mut rows = StatusRows::default();
    let mut ends: BTreeMap<String, Option<Vec<Watermark>>> = BTreeMap::new();
    for table in &tables {
        let log = TableLog::new(warehouse, table);
        if !log.exists().await? {
            return Err(Error::Usage(format!(
                "no table {table} at {}",
                warehouse.table_url(table)
            )));
        }
        let state = log.state().await?;
        let latest = state.as_ref().map(|(commit, _)| commit);
        let topic = latest.map_or_else(|| settings.topic.clone(), |c| c.topic.clone());
        if !ends.contains_key(&topic) {
            let log = settings.log.clone();
            let name = topic.clone();
            let watermarks = match pipeline::blocking(move || log.watermarks(&name)).await? {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(topic, error = %crate::error::chain(&e), "cannot read the topic's end offsets");
                    None
                }
            };
            ends.insert(topic.clone(), watermarks);
        }
        let table_facts = TableFacts {
            table,
            version: latest.map(|c| c.version),
            success: log.has_success().await?,
            rows: state.as_ref().map(|(_, s)| s.rows),
            bad_records: state.as_ref().map(|(_, s)| s.bad_records),
            files: count_files(settings, table).await?,
            topic: &topic,
        };
        rows.add_table(&table_facts, state.as_ref(), ends[&topic].as_deref());
    }
    let batch = rows.finish()?;
    let mut out = std::io::stdout().lock();
    sql::print(&mut out, &batch, args.format, 0).map_err(Error::io("write the status to stdout"))
}

/// Data files under a table.
async fn count_files(settings: &Settings, table: &str) -> Result<u64> {
    let warehouse = &settings.warehouse;
    let folder = warehouse.path(table);
    let objects: Vec<_> = warehouse
        .store()
        .list(Some(&folder))
        .try_collect()
        .await
        .map_err(|e| warehouse.store_error(&folder, e))?;
    Ok(objects
        .iter()
        .filter(|o| o.location.extension() == Some("parquet"))
        .count() as u64)
}

struct TableFacts<'a> {
    table: &'a str,
    version: Option<u64>,
    success: bool,
    rows: Option<u64>,
    bad_records: Option<u64>,
    files: u64,
    topic: &'a str,
}

#[derive(Default)]
struct StatusRows {
    table: StringBuilder,
    version: UInt64Builder,
    success: BooleanBuilder,
    rows: UInt64Builder,
    files: UInt64Builder,
    bad_records: UInt64Builder,
    topic: StringBuilder,
    partition: Int32Builder,
    first_offset: Int64Builder,
    next_offset: Int64Builder,
    end_offset: Int64Builder,
    lag: Int64Builder,
}

impl StatusRows {
    /// One row per partition the table holds or the topic has (one row without a partition
    /// for a table with neither).
    fn add_table(
        &mut self,
        facts: &TableFacts<'_>,
        state: Option<&(Commit, TableState)>,
        ends: Option<&[Watermark]>,
    ) {
        let empty = BTreeMap::new();
        let (committed, first) =
            state.map_or((&empty, &empty), |(c, s)| (&c.offsets, &s.first_offsets));
        let mut partitions: BTreeSet<i32> = committed.keys().copied().collect();
        partitions.extend(ends.unwrap_or_default().iter().map(|w| w.partition));
        let partitions: Vec<Option<i32>> = if partitions.is_empty() {
            vec![None]
        } else {
            partitions.into_iter().map(Some).collect()
        };
        for partition in partitions {
            self.table.append_value(facts.table);
            self.version.append_option(facts.version);
            self.success.append_value(facts.success);
            self.rows.append_option(facts.rows);
            self.files.append_value(facts.files);
            self.bad_records.append_option(facts.bad_records);
            self.topic.append_value(facts.topic);
            self.partition.append_option(partition);
            let next = partition.and_then(|p| committed.get(&p).copied());
            let end = partition.and_then(|p| ends?.iter().find(|w| w.partition == p).copied());
            self.first_offset
                .append_option(partition.and_then(|p| first.get(&p).copied()));
            self.next_offset.append_option(next);
            self.end_offset.append_option(end.map(|w| w.high));
            // Unread events: from the committed offset (or the log start, for a partition the
            // table never read) to the end.
            self.lag
                .append_option(end.map(|w| w.high - next.unwrap_or(w.low).max(w.low)));
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("table", Arc::new(self.table.finish())),
            ("version", Arc::new(self.version.finish())),
            ("_SUCCESS", Arc::new(self.success.finish())),
            ("rows", Arc::new(self.rows.finish())),
            ("files", Arc::new(self.files.finish())),
            ("bad_records", Arc::new(self.bad_records.finish())),
            ("topic", Arc::new(self.topic.finish())),
            ("partition", Arc::new(self.partition.finish())),
            ("first_offset", Arc::new(self.first_offset.finish())),
            ("committed_offset", Arc::new(self.next_offset.finish())),
            ("end_offset", Arc::new(self.end_offset.finish())),
            ("lag", Arc::new(self.lag.finish())),
        ];
        RecordBatch::try_from_iter(columns).map_err(Error::arrow("build the status table"))
    }
}
