//! `bnetl sql`: statements (one, several separated by `;`, or a file of them) over the
//! warehouse tables, and over `events`, the topic's decoded events (the jobs' input table:
//! read only when a statement names it, bounded by the read options), each result printed as
//! a table (the first rows, as Spark's `show()`; an `EXPLAIN`'s plans whole, as spark-sql
//! prints them), CSV or JSON lines, or one statement's saved to a file with `--output`. A
//! statement over no table (`SELECT 1`) needs no warehouse. Spark's `DESCRIBE` and `SHOW
//! PARTITIONS` answer as Spark's do ([`spark_commands`]). It only reads: statements that
//! would write are refused (see [`crate::transform::queries`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use futures::StreamExt;
use unicode_width::UnicodeWidthStr;

use crate::cli::{OutputFormat, SqlArgs};
use crate::decode::{self, SchemaInference};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::pipeline::pushdown::{self, TopicScan};
use crate::progress::Progress;
use crate::settings::{ReadSettings, Settings};
use crate::source::{self, OffsetRange};
use crate::transform::QueryError;
use crate::transform::binary_text::binary_values;
use crate::transform::queries::{self, Query};
use crate::transform::session::{self, Needed};
use crate::transform::{result_names, spark_commands};
use std::ops::ControlFlow;
use tokio_util::sync::CancellationToken;

/// The table of the topic's decoded events, as the jobs' queries name it.
pub const TOPIC_TABLE: &str = session::EVENTS_TABLE;

/// The tables a statement names, and whether it needs every warehouse table: Spark's
/// `DESCRIBE t` and `SHOW PARTITIONS t` need `t`; another statement than a query (or the
/// EXPLAIN of one), such as `SHOW TABLES`, one over the catalog views, and one that does not
/// parse (it fails later, with the planner's message) need them all.
fn needed_tables(ctx: &SessionContext, sql: &str) -> Needed {
    fn is_query(statement: &DFStatement) -> bool {
        match statement {
            DFStatement::Statement(statement) => match statement.as_ref() {
                ast::Statement::Query(_) => true,
                ast::Statement::Explain { statement, .. } => {
                    matches!(statement.as_ref(), ast::Statement::Query(_))
                }
                _ => false,
            },
            DFStatement::Explain(explain) => is_query(&explain.statement),
            _ => false,
        }
    }
    if let Some(command) = spark_commands::recognize(sql, queries::dialect(ctx).as_ref()) {
        return Needed {
            named: BTreeSet::from([command.table().to_owned()]),
            all: false,
        };
    }
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let Ok(statement) = state.sql_to_statement(sql, &dialect) else {
        return Needed::all();
    };
    let Ok(references) = state.resolve_table_references(&statement) else {
        return Needed::all();
    };
    let (catalog, tables): (Vec<_>, Vec<_>) = references
        .iter()
        .partition(|r| r.schema() == Some("information_schema"));
    Needed {
        named: tables.iter().map(|r| r.table().to_owned()).collect(),
        all: !catalog.is_empty() || !is_query(&statement),
    }
}

/// Whether a statement needs the warehouse to exist: it names one of its tables, or it names
/// none and needs them all (`SHOW TABLES`). One about the topic's `events` alone (`DESCRIBE
/// events` too) or a query over no table (`SELECT 1`, `VALUES (1)`) does not.
fn needs_warehouse(needed: &Needed) -> bool {
    if needed.named.contains(TOPIC_TABLE) {
        needed.named.len() > 1
    } else {
        !needed.named.is_empty() || needed.all
    }
}

/// What a statement over `events` reads of the topic: the read options' range, narrowed by
/// the statement's conditions on `partition`, `offset` and `timestamp`, and the columns its
/// plan scans (None: all), so the others are not kept (see [`pushdown`]).
async fn topic_read(
    settings: &Settings,
    read: &ReadSettings,
    ctx: &SessionContext,
    sql: &str,
) -> Result<(Vec<OffsetRange>, Option<BTreeSet<String>>)> {
    let (log, topic, bounds) = (
        settings.log.clone(),
        settings.topic.clone(),
        read.bounds.clone(),
    );
    let snapshot = pipeline::blocking(move || source::snapshot(&log, &topic, &bounds)).await??;
    // The columns the statement is planned against: those of the first batch of the read.
    let (log, topic, ranges) = (
        settings.log.clone(),
        settings.topic.clone(),
        snapshot.ranges.clone(),
    );
    let mut inference = SchemaInference::new(read.schema.clone());
    let include_headers = read.include_headers;
    let sample = pipeline::blocking(move || {
        log.read(&topic, &ranges, pipeline::BATCH_ROWS, &mut |batch| {
            decode::scan(&batch, &mut inference);
            ControlFlow::Break(())
        })
        .map(|()| inference.finish(include_headers).arrow())
    })
    .await??;
    let TopicScan { narrowing, columns } =
        pushdown::topic_scan(ctx, sql, TOPIC_TABLE, sample).await;
    if narrowing.is_everything() {
        return Ok((snapshot.ranges, columns));
    }
    let from_offsets = match narrowing.from_timestamp {
        Some(ts) => {
            let (log, topic) = (settings.log.clone(), settings.topic.clone());
            let partitions: Vec<i32> = snapshot.ranges.iter().map(|r| r.partition).collect();
            Some(
                pipeline::blocking(move || log.offsets_for_times(&topic, ts, &partitions))
                    .await??,
            )
        }
        None => None,
    };
    let ranges = narrowing.apply(&snapshot.ranges, from_offsets.as_ref());
    tracing::info!(
        topic = settings.topic,
        ?narrowing,
        ?ranges,
        "the statement's conditions narrow the read"
    );
    Ok((ranges, columns))
}

/// The statements of `args`: its query, or the file it names, split at their semicolons
/// (Spark's `EXPLAIN EXTENDED` as DataFusion's `EXPLAIN`).
fn statements(ctx: &SessionContext, args: &SqlArgs) -> Result<Vec<String>> {
    let (script, from) = match (&args.query, &args.file) {
        (Some(query), _) => (query.clone(), "the query argument".to_owned()),
        (None, Some(path)) => {
            let (read, from) = if path.as_os_str() == "-" {
                let read = std::io::read_to_string(std::io::stdin().lock());
                (read, "standard input".to_owned())
            } else {
                (std::fs::read_to_string(path), path.display().to_string())
            };
            let script = read.map_err(|source| QueryError::Read {
                name: "statements".to_owned(),
                path: from.clone(),
                source,
            })?;
            (script, from)
        }
        (None, None) => return Err(Error::Usage("give a statement, or --file FILE".into())),
    };
    let dialect = queries::dialect(ctx);
    let statements: Vec<String> = queries::split_statements(&script, dialect.as_ref())
        .map_err(|e| Error::Usage(format!("{from}: {e}")))?
        .into_iter()
        .map(|sql| spark_commands::plain_explain(&sql, dialect.as_ref()).unwrap_or(sql))
        .collect();
    if statements.is_empty() {
        return Err(Error::Usage(format!("no statement in {from}")));
    }
    Ok(statements)
}

/// Runs the statements of `args` over the warehouse (and the topic's `events`), one after the
/// other, and prints each result on stdout (a blank line between two), or saves the result of
/// the one statement to `args.output`. Every statement over the warehouse alone is planned
/// before any runs, so one that does not parse or would write stops them all; a statement over
/// `events` is planned when the topic has been read for it (each such statement reads it).
pub async fn run(
    settings: &Settings,
    args: &SqlArgs,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<()> {
    let ctx = session::new_context();
    let statements = statements(&ctx, args)?;
    let output = match &args.output {
        Some(path) if statements.len() > 1 => {
            return Err(Error::Usage(format!(
                "--output {} saves the result of one statement, and {} were given",
                path.display(),
                statements.len()
            )));
        }
        Some(path) => Some(Export::new(path, &settings.warehouse)?),
        None => None,
    };
    let needs: Vec<Needed> = statements
        .iter()
        .map(|sql| needed_tables(&ctx, sql))
        .collect();
    let reads_topic: Vec<bool> = needs
        .iter()
        .map(|n| n.named.contains(TOPIC_TABLE))
        .collect();
    let needed = Needed {
        named: needs.iter().flat_map(|n| n.named.iter().cloned()).collect(),
        all: needs.iter().any(|n| n.all),
    };
    let tables = match session::register_warehouse(&ctx, &settings.warehouse, &needed).await {
        Ok(tables) => tables,
        // Statements over the topic alone, or over no table (`SELECT 1`), need no warehouse.
        Err(QueryError::NoWarehouse { .. }) if !needs.iter().any(needs_warehouse) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let label = |i: usize| match statements.len() {
        1 => "statement".to_owned(),
        n => format!("statement {} of {n}", i + 1),
    };
    let read = match reads_topic.contains(&true) {
        true if tables.iter().any(|t| t == TOPIC_TABLE) => {
            return Err(Error::Usage(format!(
                "the warehouse has a table named {TOPIC_TABLE}, which is also the name of the topic's events; rename the table"
            )));
        }
        true => Some(ReadSettings::from_args(&args.read, &settings.topic)?),
        false => None,
    };
    let mut planned = Vec::with_capacity(statements.len());
    for (i, sql) in statements.iter().enumerate() {
        planned.push(match &read {
            Some(read) if reads_topic[i] => Planned::OverTopic(read),
            _ => Planned::Ready(plan_statement(settings, &ctx, &label(i), sql, &tables).await?),
        });
    }
    for (i, (sql, planned)) in statements.iter().zip(planned).enumerate() {
        let frame = match planned {
            Planned::Ready(frame) => frame,
            Planned::OverTopic(read) => {
                register_events(settings, read, &ctx, sql, progress, cancel).await?;
                let mut tables = tables.clone();
                tables.push(TOPIC_TABLE.to_owned());
                plan_statement(settings, &ctx, &label(i), sql, &tables).await?
            }
        };
        if let Some(output) = &output {
            let rows = output.write(frame).await?;
            eprintln!("wrote {rows} rows to {}", output.path.display());
            return Ok(());
        }
        print_result(frame, args, &label(i), i > 0).await?;
        if reads_topic[i] {
            ctx.deregister_table(TOPIC_TABLE).map_err(execute)?;
        }
    }
    Ok(())
}

/// A statement of `bnetl sql` before it runs.
enum Planned<'r> {
    /// Over the warehouse alone: planned.
    Ready(DataFrame),
    /// Over `events`: planned once the topic is read for it, with these options.
    OverTopic(&'r ReadSettings),
}

/// Reads the topic for `sql` (narrowed by its conditions, only the columns it scans) and
/// registers the decoded events as the `events` table of `ctx`.
async fn register_events(
    settings: &Settings,
    read: &ReadSettings,
    ctx: &SessionContext,
    sql: &str,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<()> {
    let (ranges, columns) = topic_read(settings, read, ctx, sql).await?;
    let events =
        pipeline::read_events(settings, read, &ranges, columns.as_ref(), progress, cancel).await?;
    tracing::info!(
        topic = settings.topic,
        messages = events.messages,
        "read the topic for the events table"
    );
    if events.bad_records > 0 {
        tracing::warn!(
            topic = settings.topic,
            bad_records = events.bad_records,
            "messages that are not JSON objects are not in events"
        );
    }
    session::register_stream(ctx, TOPIC_TABLE, events.schema, events.open)?;
    Ok(())
}

/// Runs `frame` (the statement `label`, in messages) and prints its result on stdout in the
/// format of `args`, after a blank line when it is not the first.
async fn print_result(
    frame: DataFrame,
    args: &SqlArgs,
    label: &str,
    after_another: bool,
) -> Result<()> {
    let execute = |source| QueryError::Execute {
        name: label.to_owned(),
        source,
    };
    let mut out = std::io::stdout().lock();
    if after_another {
        out.write_all(b"\n")
            .map_err(Error::io("write the result to stdout"))?;
    }
    match args.format {
        OutputFormat::Table if is_explain(&frame) => {
            // A plan's rows are few, and a limit cannot sit above an EXPLAIN.
            let batches = frame.collect().await.map_err(execute)?;
            out.write_all(plans_text(&batches, args.truncate).as_bytes())
                .map_err(Error::io("write the result to stdout"))
        }
        OutputFormat::Table => {
            let schema = Arc::clone(frame.schema().inner());
            let limit = (args.rows > 0).then_some(args.rows);
            // One row more than shown says whether there are more.
            let frame = match limit {
                Some(n) => frame.limit(0, Some(n + 1)).map_err(execute)?,
                None => frame,
            };
            let batches = frame.collect().await.map_err(execute)?;
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let shown = match limit {
                Some(n) if total > n => first_rows(&batches, n)?,
                // No rows: the header alone, as show() prints it.
                _ if batches.is_empty() => vec![RecordBatch::new_empty(schema)],
                _ => batches,
            };
            let mut text = show(&shown, args.truncate);
            if let Some(n) = limit.filter(|&n| total > n) {
                text.push_str(&format!(
                    "only showing top {n} row{}\n",
                    if n == 1 { "" } else { "s" }
                ));
            }
            out.write_all(text.as_bytes())
                .map_err(Error::io("write the result to stdout"))
        }
        format => {
            let mut stream = frame.execute_stream().await.map_err(execute)?;
            let mut writer = RowWriter::new(&mut out, format, stream.schema());
            while let Some(batch) = stream.next().await {
                writer
                    .write(&batch.map_err(execute)?)
                    .map_err(Error::io("write the result to stdout"))?;
            }
            writer
                .finish()
                .map_err(Error::io("write the result to stdout"))
        }
    }
}

/// Plans one statement of `bnetl sql`, named `label` in messages: Spark's table commands
/// ([`spark_commands`]) here, with what the warehouse says of the table, anything else by
/// DataFusion ([`plan`]).
async fn plan_statement(
    settings: &Settings,
    ctx: &SessionContext,
    label: &str,
    sql: &str,
    tables: &[String],
) -> Result<DataFrame> {
    let Some(command) = spark_commands::recognize(sql, queries::dialect(ctx).as_ref()) else {
        return plan(ctx, label, sql, tables).await;
    };
    let table = command.table();
    let invalid = |source| QueryError::Plan {
        name: statement_name(label, tables),
        hint: String::new(),
        source,
    };
    let over_warehouse = table != TOPIC_TABLE && tables.iter().any(|t| t == table);
    // Listing the partition folders is a round trip to the store: only for the commands
    // that show them.
    let partition_columns = || async {
        if !over_warehouse {
            return Ok(Vec::new());
        }
        settings
            .warehouse
            .partition_columns(table)
            .await
            .map_err(|e| invalid(datafusion::error::DataFusionError::External(Box::new(e))))
    };
    let frame = match &command {
        spark_commands::Command::Describe {
            extended,
            column: Some(column),
            ..
        } => spark_commands::describe_column(ctx, table, column, *extended).await,
        spark_commands::Command::ShowColumns { .. } => {
            spark_commands::show_columns(ctx, table).await
        }
        spark_commands::Command::Describe { extended, .. } => {
            let details = if over_warehouse {
                vec![
                    ("Table", table.to_owned()),
                    ("Provider", "parquet".to_owned()),
                    ("Location", settings.warehouse.table_url(table)),
                ]
            } else {
                vec![
                    ("Table", table.to_owned()),
                    ("Topic", settings.topic.clone()),
                ]
            };
            let partitions = partition_columns().await?;
            spark_commands::describe(ctx, table, &partitions, *extended, &details).await
        }
        spark_commands::Command::ShowPartitions { .. } => {
            let partitions = partition_columns().await?;
            spark_commands::show_partitions(ctx, table, &partitions).await
        }
    };
    Ok(frame.map_err(invalid)?)
}

/// How messages name the statement `label`: with the tables that exist, so that a planning
/// failure over a misspelt table shows the right name.
fn statement_name(label: &str, tables: &[String]) -> String {
    format!("{label} (warehouse tables: {})", tables.join(", "))
}

/// Plans one statement, named `label` in messages. A planning failure names the tables that
/// exist.
async fn plan(
    ctx: &SessionContext,
    label: &str,
    sql: &str,
    tables: &[String],
) -> Result<DataFrame> {
    let statement = Query {
        name: statement_name(label, tables),
        sql: sql.to_owned(),
    };
    let frame = statement.plan(ctx).await?;
    // Spark's names for the columns the statement did not name (`count(1)`, not `count(*)`).
    let Some(names) =
        result_names::spark_names(frame.logical_plan()).filter(|_| !is_explain(&frame))
    else {
        return Ok(frame);
    };
    let renamed: Vec<Expr> = frame
        .schema()
        .columns()
        .into_iter()
        .zip(names)
        .map(|(column, name)| Expr::Column(column).alias(name))
        .collect();
    Ok(frame.select(renamed).map_err(execute)?)
}

/// Plans and collects one statement.
pub async fn query(ctx: &SessionContext, sql: &str, tables: &[String]) -> Result<Vec<RecordBatch>> {
    let frame = plan(ctx, "statement", sql, tables).await?;
    Ok(frame.collect().await.map_err(execute)?)
}

fn execute(source: datafusion::error::DataFusionError) -> QueryError {
    QueryError::Execute {
        name: "statement".into(),
        source,
    }
}

/// The first `n` rows of `batches`, as one batch.
fn first_rows(batches: &[RecordBatch], n: usize) -> Result<Vec<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let all =
        arrow::compute::concat_batches(&first.schema(), batches).map_err(|e| execute(e.into()))?;
    Ok(vec![all.slice(0, n.min(all.num_rows()))])
}

/// `--output FILE`: where a result is saved, and in which format.
struct Export {
    path: PathBuf,
    kind: ExportKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportKind {
    Parquet,
    Csv,
    Json,
}

impl Export {
    /// Checks `path` before anything runs: a known extension, a folder that exists, and not
    /// inside a local warehouse (tables change only through their commit log).
    fn new(path: &Path, warehouse: &crate::sink::Warehouse) -> Result<Export> {
        let kind = match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("parquet") => ExportKind::Parquet,
            Some("csv") => ExportKind::Csv,
            Some("json" | "jsonl" | "ndjson") => ExportKind::Json,
            _ => {
                return Err(Error::Usage(format!(
                    "--output {}: name a .parquet, .csv or .json file",
                    path.display()
                )));
            }
        };
        let absolute = std::path::absolute(path)
            .map_err(Error::io(format!("resolve --output {}", path.display())))?;
        let folder = absolute.parent().unwrap_or(Path::new("/"));
        let folder = folder.canonicalize().map_err(|_| {
            Error::Usage(format!(
                "--output {}: folder {} does not exist",
                path.display(),
                folder.display()
            ))
        })?;
        if let Ok(root) = warehouse.url().to_file_path()
            && let Ok(root) = root.canonicalize()
            && folder.starts_with(&root)
        {
            return Err(Error::Usage(format!(
                "--output {}: it is inside the warehouse {}; tables are written only by bnetl's jobs",
                path.display(),
                root.display()
            )));
        }
        let name = absolute.file_name().unwrap_or_default();
        Ok(Export {
            path: folder.join(name),
            kind,
        })
    }

    /// Streams the result into a hidden file beside `path`, then renames it into place, so
    /// `path` is never seen half written. Returns the rows written.
    async fn write(&self, frame: DataFrame) -> Result<u64> {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy();
        let partial = self
            .path
            .with_file_name(format!(".{name}.{}.partial", std::process::id()));
        let result = self.write_to(frame, &partial).await;
        match result {
            Ok(rows) => {
                std::fs::rename(&partial, &self.path).map_err(Error::io(format!(
                    "move the result into {}",
                    self.path.display()
                )))?;
                Ok(rows)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    async fn write_to(&self, frame: DataFrame, partial: &Path) -> Result<u64> {
        let io = || Error::io(format!("write the result to {}", self.path.display()));
        let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
        let mut stream = frame.execute_stream().await.map_err(execute)?;
        let file = std::fs::File::create(partial).map_err(io())?;
        let mut rows = 0u64;
        match self.kind {
            ExportKind::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let parquet = || Error::parquet(format!("write {}", self.path.display()));
                let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))
                    .map_err(parquet())?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(execute)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch).map_err(parquet())?;
                }
                writer.close().map_err(parquet())?;
            }
            ExportKind::Csv | ExportKind::Json => {
                let format = if self.kind == ExportKind::Csv {
                    OutputFormat::Csv
                } else {
                    OutputFormat::Json
                };
                let mut out = std::io::BufWriter::new(file);
                let mut writer = RowWriter::new(&mut out, format, schema);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(execute)?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch).map_err(io())?;
                }
                writer.finish().map_err(io())?;
                out.flush().map_err(io())?;
            }
        }
        Ok(rows)
    }
}

/// CSV (one header row, also for a result without rows, as pandas and Spark expect of a CSV
/// file) or JSON lines (nothing for no rows), written batch by batch.
struct RowWriter<W: Write> {
    format: Rows<W>,
    schema: SchemaRef,
    started: bool,
}

enum Rows<W: Write> {
    Csv(Box<arrow::csv::Writer<W>>),
    Json(arrow::json::LineDelimitedWriter<W>),
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows of `schema` to `out` (CSV for [`OutputFormat::Table`] too).
    fn new(out: W, format: OutputFormat, schema: SchemaRef) -> Self {
        let format = match format {
            OutputFormat::Json => Rows::Json(arrow::json::LineDelimitedWriter::new(out)),
            OutputFormat::Csv | OutputFormat::Table => Rows::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(out),
            )),
        };
        RowWriter {
            format,
            schema,
            started: false,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        self.started = true;
        match &mut self.format {
            Rows::Csv(writer) => writer.write(batch).map_err(std::io::Error::other),
            Rows::Json(writer) => writer.write(batch).map_err(std::io::Error::other),
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        if !self.started {
            // The CSV header, from the result's schema.
            self.write(&RecordBatch::new_empty(Arc::clone(&self.schema)))?;
        }
        match self.format {
            Rows::Csv(_) => Ok(()),
            Rows::Json(mut writer) => writer.finish().map_err(std::io::Error::other),
        }
    }
}

/// Writes `batch` (a command's own result: a schema, a status) in `format`.
pub fn print(
    out: &mut impl Write,
    batch: &RecordBatch,
    format: OutputFormat,
    truncate: usize,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => {
            out.write_all(show(std::slice::from_ref(batch), truncate).as_bytes())
        }
        format => {
            let mut writer = RowWriter::new(out, format, batch.schema());
            writer.write(batch)?;
            writer.finish()
        }
    }
}

/// Whether `frame` is an `EXPLAIN` (or `EXPLAIN ANALYZE`): its result is plans, one a row.
fn is_explain(frame: &DataFrame) -> bool {
    matches!(
        frame.logical_plan(),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
    )
}

/// An `EXPLAIN`'s result as spark-sql prints one: each plan whole, under its name
/// (`== physical_plan ==`), a blank line between two. Anything but the two columns of a
/// plan's name and text is shown as a table.
fn plans_text(batches: &[RecordBatch], truncate: usize) -> String {
    if batches.iter().any(|b| b.num_columns() != 2) {
        return show(batches, truncate);
    }
    let options = FormatOptions::default().with_null("");
    let mut blocks = Vec::new();
    for batch in batches {
        let formatted: std::result::Result<Vec<_>, _> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect();
        let Ok(columns) = formatted else {
            return show(batches, truncate);
        };
        for row in 0..batch.num_rows() {
            blocks.push(format!(
                "== {} ==\n{}\n",
                columns[0].value(row),
                columns[1].value(row).to_string().trim_end()
            ));
        }
    }
    blocks.join("\n")
}

/// How `show()` prints the values of `column`, by row: binary as Spark prints it (`[6E 6F]`,
/// each byte in hex), anything else as Arrow formats it (a type Arrow cannot format as its
/// type's name, never a failure).
fn shown_cell<'a>(
    column: &'a dyn arrow::array::Array,
    options: &'a FormatOptions<'a>,
) -> Box<dyn Fn(usize) -> String + 'a> {
    if let Some(values) = binary_values(column) {
        return Box::new(move |row| match values[row] {
            None => "null".to_owned(),
            Some(bytes) => {
                let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
                format!("[{}]", hex.join(" "))
            }
        });
    }
    match ArrayFormatter::try_new(column, options) {
        Ok(formatter) => Box::new(move |row| formatter.value(row).to_string()),
        Err(_) => {
            let shown = format!("<{}>", column.data_type());
            Box::new(move |_| shown.clone())
        }
    }
}

/// Renders batches as Spark's `DataFrame.show(truncate)` does: values longer than `truncate`
/// characters are cut to `truncate - 3` plus `...`, and cells are right-aligned (left-aligned
/// when `truncate` is 0), with `null` for nulls and binary in hex bytes (`[6E 6F]`).
pub fn show(batches: &[RecordBatch], truncate: usize) -> String {
    let Some(first) = batches.first() else {
        return String::new();
    };
    let schema = first.schema();
    let options = FormatOptions::default()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let cut = |text: String| -> String {
        let chars = text.chars().count();
        if truncate == 0 || chars <= truncate {
            text
        } else if truncate < 4 {
            text.chars().take(truncate).collect()
        } else {
            text.chars().take(truncate - 3).collect::<String>() + "..."
        }
    };
    let mut rows: Vec<Vec<String>> = vec![
        schema
            .fields()
            .iter()
            .map(|f| cut(f.name().clone()))
            .collect(),
    ];
    for batch in batches {
        let cells: Vec<Box<dyn Fn(usize) -> String + '_>> = batch
            .columns()
            .iter()
            .map(|c| shown_cell(c.as_ref(), &options))
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(cells.iter().map(|cell| cut(cell(row))).collect());
        }
    }
    // Columns are as wide as their values are on screen: a CJK character takes two places,
    // as Spark's show() counts it.
    let widths: Vec<usize> = (0..schema.fields().len())
        .map(|i| rows.iter().map(|r| r[i].width()).max().unwrap_or(0).max(3))
        .collect();
    let separator: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(*w)))
        .collect::<String>()
        + "+\n";
    let line = |row: &[String]| -> String {
        let cells: String = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| {
                let pad = " ".repeat(w.saturating_sub(cell.width()));
                if truncate > 0 {
                    format!("|{pad}{cell}")
                } else {
                    format!("|{cell}{pad}")
                }
            })
            .collect();
        cells + "|\n"
    };
    let mut text = separator.clone();
    text.push_str(&line(&rows[0]));
    text.push_str(&separator);
    for row in &rows[1..] {
        text.push_str(&line(row));
    }
    text.push_str(&separator);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("event_type", DataType::Utf8, true),
            Field::new("event_count", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("default"),
                    Some("purchase_shield"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![37, 29, 1])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn table_output_matches_sparks_show() {
        let expected = "\
+---------------+-----------+
|     event_type|event_count|
+---------------+-----------+
|        default|         37|
|purchase_shield|         29|
|           null|          1|
+---------------+-----------+
";
        assert_eq!(show(&[batch()], 20), expected);
    }

    #[test]
    fn binary_shows_as_sparks_hex_bytes() {
        let values: Vec<Option<&[u8]>> = vec![Some(b"no"), None, Some(&[0xff, 0x0a])];
        let batch = RecordBatch::try_from_iter([(
            "value",
            Arc::new(arrow::array::BinaryArray::from(values)) as arrow::array::ArrayRef,
        )])
        .unwrap();
        assert_eq!(
            show(&[batch], 20),
            "+-------+\n|  value|\n+-------+\n|[6E 6F]|\n|   null|\n|[FF 0A]|\n+-------+\n"
        );
    }

    #[test]
    fn wide_characters_take_two_places_as_show_counts_them() {
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Utf8, true)]));
        let column = Arc::new(StringArray::from(vec!["日本語", "ab"]));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        assert_eq!(
            show(&[batch], 20),
            "+------+\n|     u|\n+------+\n|日本語|\n|    ab|\n+------+\n"
        );
    }

    #[test]
    fn long_values_are_truncated_like_show() {
        let text = show(&[batch()], 10);
        assert!(text.contains("|purchas...|"), "{text}");
        let untruncated = show(&[batch()], 0);
        assert!(
            untruncated.contains("|default        |37         |"),
            "{untruncated}"
        );
    }

    #[test]
    fn csv_has_a_header_row_also_without_rows_and_json_lines_nothing() {
        let csv = |batches: &[RecordBatch], format| {
            let mut out = Vec::new();
            let mut writer = RowWriter::new(&mut out, format, batch().schema());
            for batch in batches {
                writer.write(batch).unwrap();
            }
            writer.finish().unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            csv(&[batch()], OutputFormat::Csv),
            "event_type,event_count\ndefault,37\npurchase_shield,29\n,1\n"
        );
        assert_eq!(csv(&[], OutputFormat::Csv), "event_type,event_count\n");
        assert_eq!(csv(&[], OutputFormat::Json), "");
        let empty = RecordBatch::new_empty(batch().schema());
        assert_eq!(
            show(&[empty], 20),
            "+----------+-----------+\n|event_type|event_count|\n+----------+-----------+\n+----------+-----------+\n"
        );
    }

    /// Each case: the statement, the tables it names, whether it needs them all, and whether
    /// it needs the warehouse to exist.
    #[test]
    fn queries_need_only_the_tables_they_name_and_catalog_statements_need_all() {
        let ctx = session::new_context();
        let cases: [(&str, &[&str], bool, bool); 13] = [
            ("SELECT 1", &[], false, false),
            ("VALUES (1), (2)", &[], false, false),
            ("SELECT COUNT(*) FROM Sales", &["Sales"], false, true),
            (
                "WITH p AS (SELECT * FROM purchases) SELECT * FROM p JOIN events e ON p.Host = e.Host",
                &["events", "purchases"],
                false,
                true,
            ),
            (
                "SELECT * FROM _bad_records WHERE table_name IN (SELECT 'x' FROM public.transformed_events)",
                &["_bad_records", "transformed_events"],
                false,
                true,
            ),
            (
                "EXPLAIN SELECT * FROM purchases",
                &["purchases"],
                false,
                true,
            ),
            ("SHOW TABLES", &[], true, true),
            ("DESCRIBE purchases", &["purchases"], false, true),
            (
                "DESCRIBE TABLE EXTENDED purchases",
                &["purchases"],
                false,
                true,
            ),
            ("SHOW PARTITIONS purchases", &["purchases"], false, true),
            ("DESCRIBE events", &["events"], false, false),
            ("SELECT * FROM information_schema.columns", &[], true, true),
            ("SELEKT nonsense", &[], true, true),
        ];
        for (sql, named, all, warehouse) in cases {
            let needed = needed_tables(&ctx, sql);
            let expected: BTreeSet<String> = named.iter().map(|t| t.to_string()).collect();
            assert_eq!(needs_warehouse(&needed), warehouse, "{sql}");
            assert_eq!((needed.named, needed.all), (expected, all), "{sql}");
        }
    }
}
