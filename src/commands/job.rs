//! The batch job pipeline shared by extract, transform and filtered-writes:
//! snapshot the topic → scan (infer the schema, quarantine bad records) → SQL over the decoded
//! `events` → Parquet table, then the `_bad_records` table.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tokio_util::sync::CancellationToken;

use crate::decode::{self, BAD_RECORDS_TABLE, BadRecord, EventDecoder, SchemaInference};
use crate::error::{Error, Result};
use crate::progress::{Progress, ReadProgress};
use crate::settings::{JobSettings, Settings};
use crate::sink::{self, CommittedRange, SaveMode, WriteSummary};
use crate::source::offsets::OffsetSpec;
use crate::source::spill::{Spill, SpillWriter};
use crate::source::{self, Message, OffsetRange, ReadBounds, SourceError, offsets};
use crate::transform::QueryError;
use crate::transform::session::{self, OpenStream};

/// Messages per batch read from the log, and rows per decoded batch.
pub const BATCH_ROWS: usize = 8192;

/// What a job run did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The job's name.
    pub job: &'static str,
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
    /// The table version committed.
    pub version: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl JobSummary {
    /// One line for the operator.
    pub fn line(&self) -> String {
        let ranges: Vec<String> = self.ranges.iter().map(ToString::to_string).collect();
        let secs = self.elapsed.as_secs_f64();
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
        }
    }
}

/// Runs one job over the topic's current contents (or, with `--incremental`, over what the
/// table has not read yet) and commits its output as the table's next version.
/// `None`: `--mode ignore` found the table and nothing was read.
/// Ctrl-C (`cancel`) stops the read and the write; the run then leaves nothing behind.
pub async fn run(
    settings: &Settings,
    job: &JobSettings,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Option<JobSummary>> {
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
    let Some(mut table) =
        sink::TableRun::begin(&settings.warehouse, &job.table, job.mode, &run_id).await?
    else {
        return Ok(None);
    };
    let mut bounds = job.bounds.clone();
    if job.incremental
        && let Some(base) = table.base()
    {
        if base.topic != settings.topic {
            let table_name = &job.table.name;
            return Err(Error::Usage(format!(
                "table {table_name} holds topic {}; --incremental cannot continue it from topic {}",
                base.topic, settings.topic
            )));
        }
        bounds.starting = OffsetSpec::Resume(base.offsets.clone());
    }
    let staged = stage_run(settings, job, &bounds, &mut table, progress, cancel).await;
    let (snapshot, scan) = match staged {
        Ok(staged) => staged,
        Err(e) => {
            table.abort().await;
            return Err(e);
        }
    };
    if cancel.is_cancelled() {
        table.abort().await;
        return Err(Error::Interrupted);
    }
    let ranges = snapshot
        .ranges
        .iter()
        .map(|r| CommittedRange {
            partition: r.partition,
            start: r.start,
            end: r.end,
        })
        .collect();
    let (commit, written) = table.commit(job.name, &settings.topic, ranges).await?;
    if !scan.bad.is_empty() {
        tracing::warn!(
            topic = settings.topic,
            bad_records = scan.bad.len(),
            "messages that are not JSON objects were quarantined"
        );
    }
    Ok(Some(JobSummary {
        job: job.name,
        topic: settings.topic.clone(),
        ranges: snapshot.ranges,
        messages: scan.messages,
        bytes: scan.bytes,
        bad_records: scan.bad.len() as u64,
        lost_offsets: snapshot.lost.iter().map(|l| l.skipped()).sum(),
        written,
        mode: commit.mode,
        version: commit.version,
        elapsed: started.elapsed(),
    }))
}

/// Reads the topic and stages the table's and the bad records' files.
async fn stage_run(
    settings: &Settings,
    job: &JobSettings,
    bounds: &ReadBounds,
    table: &mut sink::TableRun,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(source::Snapshot, Scan)> {
    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let read_bounds = bounds.clone();
    let snapshot = blocking(move || source::snapshot(&log, &topic, &read_bounds)).await??;
    let ranges = &snapshot.ranges;
    tracing::info!(topic = settings.topic, ranges = ?ranges, "snapshotted offsets");

    let scan = scan_topic(
        settings,
        ranges,
        progress.reading("scan", &settings.topic, ranges),
        cancel,
    )
    .await?;
    let schema = Arc::new(scan.inference.finish(job.include_headers));

    let ctx = session::new_context();
    let open = events_stream(
        scan.spill.clone(),
        EventDecoder::new(Arc::clone(&schema), &settings.topic),
        progress.reading("decode", &settings.topic, ranges),
    );
    session::register_stream(&ctx, "events", schema.arrow(), open)?;
    let frame = job.query.plan(&ctx).await?;
    let stream = frame
        .execute_stream()
        .await
        .map_err(|source| QueryError::Execute {
            name: job.query.name.clone(),
            source,
        })?;
    let out_schema = stream.schema();

    let spinner = progress.spinner(format!("rows written to {}", job.table.name));
    let written = table
        .write(&out_schema, stream, |rows| spinner.add_rows(rows), cancel)
        .await;
    spinner.finish();
    written?;
    let bad = decode::bad_records_batch(&settings.topic, &scan.bad)?;
    table.write_bad_records(bad, cancel).await?;
    Ok((snapshot, scan))
}

/// What the first pass learned, and the messages it read.
#[derive(Debug)]
struct Scan {
    inference: SchemaInference,
    bad: Vec<BadRecord>,
    messages: u64,
    bytes: u64,
    spill: Spill,
}

/// The first pass: reads the ranges once, infers the schema, keeps bad records aside and
/// spills every message for the second pass.
async fn scan_topic(
    settings: &Settings,
    ranges: &[OffsetRange],
    bars: ReadProgress,
    cancel: &CancellationToken,
) -> Result<Scan> {
    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let ranges = ranges.to_vec();
    let expected = offsets::total_len(&ranges);
    let thread_cancel = cancel.clone();
    let scan = blocking(move || {
        let mut inference = SchemaInference::default();
        let mut bad = Vec::new();
        let mut bytes = 0u64;
        let mut spill = SpillWriter::create()?;
        let mut spill_error = None;
        read_pipelined(
            |on_batch| log.read(&topic, &ranges, BATCH_ROWS, on_batch),
            &bars,
            |batch| {
                if thread_cancel.is_cancelled() {
                    return ControlFlow::Break(());
                }
                bytes += batch
                    .iter()
                    .map(|m| m.value.as_ref().map_or(0, Vec::len) as u64)
                    .sum::<u64>();
                bad.extend(decode::scan(&batch, &mut inference));
                if let Err(e) = spill.write(&batch) {
                    spill_error = Some(e);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )?;
        bars.finish();
        if let Some(e) = spill_error {
            return Err(e);
        }
        let spill = spill.finish()?;
        Ok::<_, SourceError>(Scan {
            inference,
            bad,
            messages: spill.messages(),
            bytes,
            spill,
        })
    })
    .await??;
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    tracing::info!(
        messages = scan.messages,
        expected,
        bad = scan.bad.len(),
        "scan done"
    );
    Ok(scan)
}

/// Runs `read` (a source handing batches to its callback) on a reader thread while `consume`
/// handles the batches on this one, so reading and parsing use both cores.
pub fn read_pipelined(
    read: impl FnOnce(&mut dyn FnMut(Vec<Message>) -> ControlFlow<()>) -> Result<(), SourceError> + Send,
    bars: &ReadProgress,
    mut consume: impl FnMut(Vec<Message>) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Message>>(4);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            read(&mut |batch| {
                bars.advance_batch(&batch);
                match tx.send(batch) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
        });
        for batch in rx.iter() {
            if consume(batch).is_break() {
                break;
            }
        }
        drop(rx);
        reader.join().unwrap_or_else(|_| {
            Err(SourceError::Spill {
                action: "read the topic (the reader thread panicked)".into(),
                source: "reader panicked".into(),
            })
        })
    })
}

/// The decoded events of the run, replayed from its spill on every scan of the table.
fn events_stream(spill: Spill, decoder: EventDecoder, bars: ReadProgress) -> OpenStream {
    let schema = decoder.schema().arrow();
    Arc::new(move || {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(4);
        let complete = Arc::new(AtomicBool::new(false));
        let (spill, decoder, bars) = (spill.clone(), decoder.clone(), bars.clone());
        let thread_complete = Arc::clone(&complete);
        let spawned = std::thread::Builder::new()
            .name("bnetl-decode".into())
            .spawn(move || {
                let result = read_pipelined(
                    |on_batch| spill.read(on_batch),
                    &bars,
                    |batch| {
                        let decoded = decoder
                            .decode(&batch)
                            .map_err(|e| DataFusionError::External(Box::new(e)));
                        match tx.blocking_send(decoded) {
                            Ok(()) => ControlFlow::Continue(()),
                            Err(_) => ControlFlow::Break(()),
                        }
                    },
                );
                bars.finish();
                match result {
                    Ok(()) => thread_complete.store(true, Ordering::Release),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the decode thread");
        }
        // A stream that ends without the reader saying it finished is an error, never a short
        // table: the sink must not commit it.
        let stream = futures::stream::unfold(
            (rx, complete, false),
            |(mut rx, complete, ended)| async move {
                if ended {
                    return None;
                }
                match rx.recv().await {
                    Some(item) => Some((item, (rx, complete, false))),
                    None if complete.load(Ordering::Acquire) => None,
                    None => Some((
                        Err(DataFusionError::Execution(
                            "the event decoder stopped before the end of the read".into(),
                        )),
                        (rx, complete, true),
                    )),
                }
            },
        );
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream))
    })
}

/// Runs blocking work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Io {
        action: "finish a background task".into(),
        source: std::io::Error::other(e),
    })
}
