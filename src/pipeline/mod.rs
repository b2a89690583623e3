//! The pipeline: source → decode → fan-out → sinks. One bounded read of the topic, decoded
//! once, feeds every output of a run (`bnetl run`'s files; each of `extract`, `transform` and
//! `filtered-writes` is a run of one output), each output's query and Parquet encoder running
//! side by side, each table committed as its next version.
//!
//! - [`read`]: the topic read on a reader thread and parsed on another; the first pass infers
//!   the schema and keeps bad records aside.
//! - [`speculate`]: decoding while reading with the first batch's schema; when a later batch
//!   would change it, every output's staged files are discarded and the run reads again,
//!   spilling, and decodes with the whole read's schema (the table a two-pass read gives).
//! - [`fanout`]: one decoded stream into a bounded channel per output.
//! - here: the outputs (their tables, what each already holds, its query and its commit). The
//!   unpartitioned tables of a run share the column chunks they encode from the same arrays
//!   (`sink::shared`); their queries then run as one stream each, in the read's order.
//!
//! Exactly-once per output: with `--incremental`, the read starts at the smallest offset any
//! output has not committed ([`read_start`]), and each output takes only the offsets above
//! its own (events and bad records alike, [`above`]) and commits exactly that range. Once all
//! are staged, the outputs close their files side by side (if one cannot, or on Ctrl-C, none is
//! committed), then claim their versions one after another; a run killed between two claims
//! leaves the later outputs behind, and the next `--incremental` run gives them what they lack
//! and the others nothing twice.

pub mod fanout;
pub mod pushdown;
pub mod read;
pub mod speculate;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int32Type, Int64Type, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

pub use read::read_events;

use crate::decode::BAD_RECORDS_TABLE;
use crate::error::{Error, Result};
use crate::progress::{Progress, Spinner};
use crate::settings::{JobSettings, Settings};
use crate::sink::{self, CommittedRange, SaveMode, WriteSummary};
use crate::source::offsets::OffsetSpec;
use crate::source::{self, OffsetRange};
use crate::transform::QueryError;
use crate::transform::session::{self, OpenStream};
use read::Scan;
use speculate::{Decoded, speculate};

/// Messages per batch read from the log, and rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// Threads decoding the events of a run with outputs: one. The outputs' queries and Parquet
/// writers keep the other cores busy; a decode thread per core took no less time (10M events:
/// 5.4 s either way) and 25 MB more peak memory.
const OUTPUT_DECODE_THREADS: usize = 1;

/// What a job run did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The job's name.
    pub job: String,
    /// The topic read.
    pub topic: String,
    /// The offset ranges read.
    pub ranges: Vec<OffsetRange>,
    /// Messages read.
    pub messages: u64,
    /// Bytes of message values read.
    pub bytes: u64,
    /// Messages quarantined in `_bad_records`.
    pub bad_records: u64,
    /// Offsets skipped as data loss (`--fail-on-data-loss false`).
    pub lost_offsets: u64,
    /// The table written.
    pub written: WriteSummary,
    /// How the run's files were committed.
    pub mode: SaveMode,
    /// The table version committed, or the table's latest when nothing was (`committed`).
    pub version: u64,
    /// False when the run had nothing to add to the table and committed no version.
    pub committed: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl JobSummary {
    /// One line for the operator.
    pub fn line(&self) -> String {
        let ranges: Vec<String> = self.ranges.iter().map(ToString::to_string).collect();
        let secs = self.elapsed.as_secs_f64();
        if !self.committed {
            return format!(
                "{}: no new events in {} {} for {}: it stays at version {}, nothing committed; {:.2} s",
                self.job,
                self.topic,
                ranges.join(" "),
                self.written.table,
                self.version,
                secs,
            );
        }
        format!(
            "{}: {} events ({} bytes) from {} {} -> {}: {} rows in {} file(s); {} bad record(s) in {}; committed as version {} ({}); {:.2} s, {:.0} events/s",
            self.job,
            self.messages,
            self.bytes,
            self.topic,
            ranges.join(" "),
            self.written.table,
            self.written.rows,
            self.written.files,
            self.bad_records,
            BAD_RECORDS_TABLE,
            self.version,
            self.mode,
            secs,
            self.messages as f64 / secs.max(1e-9),
        ) + &if self.lost_offsets > 0 {
            format!("; {} offset(s) lost below the log start", self.lost_offsets)
        } else {
            String::new()
        } + &if self.written.schema_changes.is_empty() {
            String::new()
        } else {
            format!("; schema: {}", self.written.schema_changes.join(", "))
        }
    }
}

/// The ranges a commit records for the offsets read.
pub(crate) fn committed(ranges: &[OffsetRange]) -> Vec<CommittedRange> {
    ranges
        .iter()
        .map(|r| CommittedRange {
            partition: r.partition,
            start: r.start,
            end: r.end,
        })
        .collect()
}

/// With `--incremental`, the offsets `table` holds per partition (where the run resumes);
/// `None` without it or for a table with no commit yet. A table whose offsets are unknown, or
/// that holds another topic, cannot be continued.
pub fn resume_offsets(
    job: &JobSettings,
    table: &sink::TableRun,
    topic: &str,
) -> Result<Option<std::collections::BTreeMap<i32, i64>>> {
    if !job.incremental {
        return Ok(None);
    }
    let name = &job.table.name;
    if table.untracked() {
        return Err(Error::Usage(format!(
            "table {name} has no commit log (written by another tool or an older bnetl), so the offsets it holds are unknown; rewrite it once without --incremental (--mode overwrite), then run --incremental"
        )));
    }
    let Some(base) = table.base() else {
        return Ok(None);
    };
    if base.topic != topic {
        return Err(Error::Usage(format!(
            "table {name} holds topic {}; --incremental cannot continue it from topic {topic}",
            base.topic
        )));
    }
    Ok(Some(base.offsets.clone()))
}

/// One output of a run: its job (query and table), the table's run, and the offsets it
/// already holds (with `--incremental`).
struct Output {
    /// Its place among the run's jobs.
    at: usize,
    job: JobSettings,
    table: sink::TableRun,
    holds: Option<BTreeMap<i32, i64>>,
    spinner: Spinner,
}

/// Runs the outputs `jobs` over one read of the topic (their read options are the first's:
/// the callers build them from one set of options) and commits each. One entry per job, in
/// order: `None` when `--mode ignore` found its table (nothing written to it).
/// Ctrl-C (`cancel`) stops the read and the writes; what is not committed is left nowhere.
pub async fn run(
    settings: &Settings,
    jobs: &[JobSettings],
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Vec<Option<JobSummary>>> {
    let started = Instant::now();
    let Some(first) = jobs.first() else {
        return Ok(Vec::new());
    };
    let mut outputs = Vec::new();
    for (at, job) in jobs.iter().enumerate() {
        // A run id (and staging folder) per output: a table's commit or abort clears its own
        // staging folder while the other outputs' files may still be open in theirs.
        let run_id = uuid::Uuid::now_v7().to_string();
        let Some(table) =
            sink::TableRun::begin(&settings.warehouse, &job.table, job.mode, &run_id).await?
        else {
            continue;
        };
        let holds = resume_offsets(job, &table, &settings.topic)?;
        outputs.push(Output {
            at,
            job: job.clone(),
            table,
            holds,
            spinner: progress.spinner(format!("rows written to {}", job.table.name)),
        });
    }
    if outputs.is_empty() {
        return Ok(jobs.iter().map(|_| None).collect());
    }
    let mut bounds = first.bounds.clone();
    if outputs.iter().any(|o| o.job.incremental) {
        bounds.starting = read_start(outputs.iter().map(|o| o.holds.as_ref()));
    }
    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let read_bounds = bounds.clone();
    let snapshot = match blocking(move || source::snapshot(&log, &topic, &read_bounds)).await {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(e)) => return Err(abort_all(outputs, e.into()).await),
        Err(e) => return Err(abort_all(outputs, e).await),
    };
    tracing::info!(topic = settings.topic, ranges = ?snapshot.ranges, "snapshotted offsets");
    let read = crate::settings::ReadSettings {
        bounds,
        include_headers: first.include_headers,
        schema: first.schema.clone(),
    };
    let (outputs, staged) =
        stage(settings, outputs, &read, &snapshot.ranges, progress, cancel).await;
    let scan = match staged {
        Ok(scan) if !cancel.is_cancelled() => scan,
        Ok(_) => return Err(abort_all(outputs, Error::Interrupted).await),
        Err(e) => return Err(abort_all(outputs, e).await),
    };
    if scan.bad.count() > 0 {
        tracing::warn!(
            topic = settings.topic,
            bad_records = scan.bad.count(),
            "messages that are not JSON objects were quarantined"
        );
    }
    // The slow half of every commit side by side (closing files: on HDFS each output's closes
    // wait for the NameNode), then the claims one after another.
    let prepared = futures::future::join_all(outputs.into_iter().map(|output| {
        let ranges = output_ranges(&snapshot.ranges, output.holds.as_ref());
        async move {
            let prepared = output
                .table
                .prepare(&output.job.name, &settings.topic, committed(&ranges))
                .await;
            (output.at, output.job.name, ranges, prepared)
        }
    }))
    .await;
    let mut ready = Vec::new();
    let mut failed: Option<Error> = None;
    for (at, job, ranges, prepared) in prepared {
        match prepared {
            Ok(prepared) => ready.push((at, job, ranges, prepared)),
            // A failed output removed its own staged files.
            Err(e) if failed.is_some() => {
                tracing::warn!(job, error = %crate::error::chain(&e), "this output failed too");
            }
            Err(e) => failed = Some(e.into()),
        }
    }
    // No output is committed when one failed to close its files, or on Ctrl-C meanwhile.
    if failed.is_none() && cancel.is_cancelled() {
        failed = Some(Error::Interrupted);
    }
    if let Some(e) = failed {
        for (.., prepared) in ready {
            prepared.abort().await;
        }
        return Err(e);
    }
    let mut summaries: Vec<Option<JobSummary>> = jobs.iter().map(|_| None).collect();
    let mut ready = ready.into_iter();
    while let Some((at, job, ranges, prepared)) = ready.next() {
        // An --incremental run that finds nothing new commits no version, as Spark's
        // `Trigger.AvailableNow` runs no batch when nothing arrived: a run scheduled every few
        // minutes does not fill the table's log with empty versions.
        if let Some(version) = prepared.adds_nothing_to().filter(|_| jobs[at].incremental) {
            let written = prepared.leave().await;
            summaries[at] = Some(JobSummary {
                job,
                topic: settings.topic.clone(),
                messages: 0,
                bytes: scan.bytes,
                bad_records: 0,
                lost_offsets: snapshot.lost.iter().map(|l| l.skipped()).sum(),
                ranges,
                written,
                mode: jobs[at].mode,
                version,
                committed: false,
                elapsed: started.elapsed(),
            });
            continue;
        }
        let (commit, written) = match prepared.commit().await {
            Ok(done) => done,
            Err(e) => {
                // The outputs committed before stay (each table holds its own offsets); the
                // failed one and those after it commit nothing, and the next --incremental
                // run reads what they lack.
                let table = |at: usize| jobs[at].table.name.as_str();
                let committed: Vec<&str> = (0..jobs.len())
                    .filter(|&i| summaries[i].is_some())
                    .map(table)
                    .collect();
                let mut not_committed = vec![table(at)];
                for (later, .., prepared) in ready {
                    prepared.abort().await;
                    not_committed.push(table(later));
                }
                if !committed.is_empty() {
                    tracing::warn!(
                        committed = committed.join(", "),
                        not_committed = not_committed.join(", "),
                        "the run failed after committing some of its outputs' tables"
                    );
                }
                return Err(e.into());
            }
        };
        let messages = if ranges == snapshot.ranges {
            scan.messages
        } else {
            ranges.iter().map(|r| (r.end - r.start) as u64).sum()
        };
        summaries[at] = Some(JobSummary {
            job,
            topic: settings.topic.clone(),
            messages,
            // The one read's, shared by every output.
            bytes: scan.bytes,
            bad_records: commit.bad_records,
            lost_offsets: snapshot.lost.iter().map(|l| l.skipped()).sum(),
            ranges,
            written,
            mode: commit.mode,
            version: commit.version,
            committed: true,
            elapsed: started.elapsed(),
        });
    }
    tracing::info!(
        committed = summaries.iter().flatten().count(),
        ignored = summaries.iter().filter(|s| s.is_none()).count(),
        seconds = started.elapsed().as_secs_f64(),
        "pipeline run done"
    );
    Ok(summaries)
}

/// Discards what `outputs` staged; returns `error`, the reason.
async fn abort_all(outputs: Vec<Output>, error: Error) -> Error {
    for output in outputs {
        output.spinner.finish();
        output.table.abort().await;
    }
    error
}

/// Reads `ranges` once and stages every output's table and bad records: decoded while reading
/// and fanned out to the outputs; read again and decoded with the whole read's schema when the
/// decode while reading was discarded (see [`speculate`]). The outputs come back whatever
/// happened, for their commit or abort.
async fn stage(
    settings: &Settings,
    outputs: Vec<Output>,
    read: &crate::settings::ReadSettings,
    ranges: &[OffsetRange],
    progress: &Progress,
    cancel: &CancellationToken,
) -> (Vec<Output>, Result<Scan>) {
    // The outputs go to the speculative write through `held` and come back there; if the read
    // ends before its first batch, that write never runs and they are still there.
    let held = Arc::new(Mutex::new(outputs));
    let slot = Arc::clone(&held);
    let write_cancel = cancel.clone();
    let topic = read::TopicRead {
        settings,
        read,
        ranges,
        progress,
        cancel,
        decode_threads: OUTPUT_DECODE_THREADS,
    };
    let speculated = speculate(topic, move |schema, open| async move {
        let (back, written) = write_all(take(&slot), schema.arrow(), open, write_cancel).await;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = back;
        written
    })
    .await;
    let mut outputs = take(&held);
    let scan = match speculated {
        Ok((scan, Decoded::Served)) => scan,
        Ok((_, decoded)) => {
            if matches!(decoded, Decoded::Discarded) {
                tracing::info!(
                    "the decode while reading is not usable (a batch changed the inferred schema, or a query reads events twice): reading again to decode with the whole schema"
                );
                for output in &mut outputs {
                    output.table.discard_staged_table().await;
                }
            }
            // The second pass: read again, spilling, and fan the spill out, decoded with the
            // whole read's schema.
            let (scan, schema, open) = match read::read_spilled(topic).await {
                Ok(read) => read,
                Err(e) => return (outputs, Err(e)),
            };
            let (back, written) = write_all(outputs, schema, open, cancel.clone()).await;
            outputs = back;
            if let Err(e) = written {
                return (outputs, Err(e));
            }
            scan
        }
        Err(e) => return (outputs, Err(e)),
    };
    for output in &mut outputs {
        output.spinner.finish();
        let holds = output.holds.clone();
        let bad = match scan.bad.batches() {
            Ok(batches) => batches.map(move |batch| {
                batch.and_then(|b| {
                    above(&b, 1, 2, holds.as_ref()).map_err(crate::decode::DecodeError::Arrow)
                })
            }),
            Err(e) => return (outputs, Err(e.into())),
        };
        if let Err(e) = output.table.write_bad_records(bad, cancel).await {
            return (outputs, Err(e.into()));
        }
    }
    (outputs, Ok(scan))
}

fn take(held: &Mutex<Vec<Output>>) -> Vec<Output> {
    match held.lock() {
        Ok(mut outputs) => std::mem::take(&mut *outputs),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

/// Fans the stream `open` gives out to every output and writes each output's query result to
/// its table, the outputs in parallel tasks; the outputs come back, with the first output
/// error (it stops the others) or success.
async fn write_all(
    mut outputs: Vec<Output>,
    schema: SchemaRef,
    open: OpenStream,
    cancel: CancellationToken,
) -> (Vec<Output>, Result<()>) {
    let (partition_at, offset_at) = match (schema.index_of("partition"), schema.index_of("offset"))
    {
        (Ok(p), Ok(o)) => (p, o),
        (Err(e), _) | (_, Err(e)) => {
            let error = Error::arrow("find the events' partition and offset columns")(e);
            return (outputs, Err(error));
        }
    };
    // The unpartitioned tables encode each column they write alike once (`sink::shared`); their
    // queries run as one stream each, so every table sees the batches in the read's order.
    let shared =
        sink::shared::SharedChunks::new(outputs.iter().filter(|o| !o.table.partitioned()).count());
    for output in outputs.iter_mut().filter(|o| !o.table.partitioned()) {
        output.table.share_columns(shared.clone());
    }
    let one_stream = shared.is_some();
    let (opens, pump) = fanout::fan_out(open, Arc::clone(&schema), outputs.len());
    let pump = tokio::spawn(pump);
    let stop = cancel.child_token();
    let tasks: Vec<_> = outputs
        .into_iter()
        .zip(opens)
        .map(|(mut output, open)| {
            let (schema, stop) = (Arc::clone(&schema), stop.clone());
            tokio::spawn(async move {
                let open = keep_above(
                    open,
                    Arc::clone(&schema),
                    output.holds.clone(),
                    partition_at,
                    offset_at,
                );
                let written = write_events(
                    &output.job,
                    &mut output.table,
                    schema,
                    open,
                    one_stream,
                    &output.spinner,
                    &stop,
                )
                .await;
                if written.is_err() {
                    stop.cancel();
                }
                (output, written)
            })
        })
        .collect();
    let mut errors = Vec::new();
    let mut back = Vec::new();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok((output, written)) => {
                back.push(output);
                errors.extend(written.err());
            }
            Err(source) => errors.push(Error::Task {
                task: "output".into(),
                source,
            }),
        }
    }
    stop.cancel();
    if let Some(shared) = &shared {
        tracing::info!(
            chunks = shared.taken(),
            "column chunks copied from another table instead of encoded again"
        );
    }
    if let Err(source) = pump.await {
        errors.push(Error::Task {
            task: "fan-out".into(),
            source,
        });
    }
    // The failure itself, not the outputs stopped because of it.
    let stopped = |e: &Error| matches!(e, Error::Sink(sink::SinkError::Cancelled { .. }));
    let result = match errors.iter().position(|e| !stopped(e)) {
        Some(at) => Err(errors.swap_remove(at)),
        None => errors.into_iter().next().map_or(Ok(()), Err),
    };
    (back, result)
}

/// The stream `open` gives, without the rows of offsets the output already holds.
fn keep_above(
    open: OpenStream,
    schema: SchemaRef,
    holds: Option<BTreeMap<i32, i64>>,
    partition_at: usize,
    offset_at: usize,
) -> OpenStream {
    let Some(holds) = holds.filter(|h| !h.is_empty()) else {
        return open;
    };
    Arc::new(move || {
        let holds = holds.clone();
        let stream = open().map(move |batch| {
            batch.and_then(|b| {
                above(&b, partition_at, offset_at, Some(&holds)).map_err(DataFusionError::from)
            })
        });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream))
    })
}

/// Where the one read starts: each partition at the smallest offset an output has not
/// committed; the earliest offset as soon as one output holds nothing of the topic.
fn read_start<'a>(holds: impl Iterator<Item = Option<&'a BTreeMap<i32, i64>>>) -> OffsetSpec {
    let mut start: Option<BTreeMap<i32, i64>> = None;
    for held in holds {
        let Some(held) = held else {
            return OffsetSpec::Earliest;
        };
        start = Some(match start {
            None => held.clone(),
            // A partition one output does not name starts at the earliest offset for it.
            Some(so_far) => so_far
                .into_iter()
                .filter_map(|(p, o)| held.get(&p).map(|&h| (p, o.min(h))))
                .collect(),
        });
    }
    start.map_or(OffsetSpec::Earliest, OffsetSpec::Resume)
}

/// The offsets of the read an output takes: above what it holds.
fn output_ranges(read: &[OffsetRange], holds: Option<&BTreeMap<i32, i64>>) -> Vec<OffsetRange> {
    read.iter()
        .map(|r| {
            let held = holds.and_then(|h| h.get(&r.partition)).copied();
            let start = held.map_or(r.start, |h| h.clamp(r.start, r.end));
            OffsetRange { start, ..*r }
        })
        .collect()
}

/// The rows of `batch` whose offset (column `offset_at`, partition in `partition_at`) is at or
/// above what the output holds in that partition.
fn above(
    batch: &RecordBatch,
    partition_at: usize,
    offset_at: usize,
    holds: Option<&BTreeMap<i32, i64>>,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let Some(holds) = holds.filter(|h| !h.is_empty()) else {
        return Ok(batch.clone());
    };
    let partitions = batch.column(partition_at).as_primitive::<Int32Type>();
    let offsets = batch.column(offset_at).as_primitive::<Int64Type>();
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let held = holds
                .get(&partitions.value(row))
                .copied()
                .unwrap_or(i64::MIN);
            Some(offsets.value(row) >= held)
        })
        .collect();
    // Kept whole, the batch keeps its arrays: the tables of a run share what they encode of
    // the same arrays (`sink::shared`).
    if keep.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    filter_record_batch(batch, &keep)
}

/// Runs the job's query over `events` (opened by `open`) and stages its result.
async fn write_events(
    job: &JobSettings,
    table: &mut sink::TableRun,
    schema: arrow::datatypes::SchemaRef,
    open: OpenStream,
    one_stream: bool,
    spinner: &Spinner,
    cancel: &CancellationToken,
) -> Result<()> {
    let ctx = if one_stream {
        session::new_context_with_partitions(1)
    } else {
        session::new_context()
    };
    session::register_stream(&ctx, session::EVENTS_TABLE, schema, open)?;
    let frame = job.query.plan(&ctx).await?;
    let stream = frame
        .execute_stream()
        .await
        .map_err(|source| QueryError::Execute {
            name: job.query.name.clone(),
            source,
        })?;
    let out_schema = stream.schema();
    let written = table
        .write(&out_schema, stream, |rows| spinner.add_rows(rows), cancel)
        .await;
    spinner.finish();
    written?;
    Ok(())
}

/// Runs blocking work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| Error::Task {
            task: "background".into(),
            source,
        })
}

/// A job (`extract`, `transform`, `filtered-writes`): a run of one output. `None` when
/// `--mode ignore` found its table.
pub async fn run_job(
    settings: &Settings,
    job: &JobSettings,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Option<JobSummary>> {
    let mut summaries = run(settings, std::slice::from_ref(job), progress, cancel).await?;
    Ok(summaries.pop().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_starts_where_the_most_behind_output_is() {
        let a: BTreeMap<i32, i64> = [(0, 10), (1, 5)].into();
        let b: BTreeMap<i32, i64> = [(0, 4), (1, 9)].into();
        assert_eq!(
            read_start([Some(&a), Some(&b)].into_iter()),
            OffsetSpec::Resume([(0, 4), (1, 5)].into())
        );
        assert_eq!(
            read_start([Some(&a), None].into_iter()),
            OffsetSpec::Earliest
        );
        let only_0: BTreeMap<i32, i64> = [(0, 7)].into();
        assert_eq!(
            read_start([Some(&a), Some(&only_0)].into_iter()),
            OffsetSpec::Resume([(0, 7)].into())
        );
    }

    #[test]
    fn each_output_takes_the_offsets_above_what_it_holds() {
        let read = [OffsetRange {
            partition: 0,
            start: 4,
            end: 20,
        }];
        let holds: BTreeMap<i32, i64> = [(0, 10)].into();
        assert_eq!(output_ranges(&read, Some(&holds))[0].start, 10);
        assert_eq!(output_ranges(&read, None)[0].start, 4);
        let ahead: BTreeMap<i32, i64> = [(0, 30)].into();
        assert_eq!(output_ranges(&read, Some(&ahead))[0].start, 20);
    }

    #[test]
    fn an_output_keeps_the_rows_above_what_it_holds_per_partition() {
        use arrow::array::{Int32Array, Int64Array, StringArray};
        let batch = RecordBatch::try_from_iter([
            (
                "event_type",
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])) as _,
            ),
            (
                "partition",
                Arc::new(Int32Array::from(vec![0, 0, 1, 2])) as _,
            ),
            ("offset", Arc::new(Int64Array::from(vec![4, 5, 9, 0])) as _),
        ])
        .expect("valid batch");
        let holds: BTreeMap<i32, i64> = [(0, 5), (1, 10)].into();
        let kept = above(&batch, 1, 2, Some(&holds)).expect("filter");
        let offsets = kept.column(2).as_primitive::<Int64Type>();
        // Partition 0 from 5, nothing of partition 1 (holds up to 10), all of partition 2.
        assert_eq!(offsets.values().to_vec(), vec![5, 0]);
        assert_eq!(above(&batch, 1, 2, None).expect("all").num_rows(), 4);
    }
}
