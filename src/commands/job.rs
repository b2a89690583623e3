//! The batch job pipeline shared by extract, transform and filtered-writes (and the reading
//! half of `bnetl run` and of `sql` over the topic): snapshot the topic → read (infer the
//! schema, quarantine bad records) → SQL over the decoded `events` → Parquet files staged →
//! committed with the bad records.
//!
//! The decode runs while the topic is read, with the schema inferred from the first batch (or
//! the declared one), so reading, decoding and encoding overlap; nothing is spilled
//! ([`speculate`] holds the rules). Every later batch is checked against it: if one would
//! change the schema inferred over the whole read (a new field, a wider type), or the query
//! reads `events` twice, that output is discarded and the run reads the same offsets again,
//! spilling them ([`crate::source::spill`]), and decodes the spill with the whole read's
//! schema. Either way the table is the one a two-pass read gives.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::decode::schema::EventSchema;
use crate::decode::{
    self, BAD_RECORDS_TABLE, BadRecord, Conformance, EventDecoder, Quarantine, Quarantined,
    SchemaInference,
};
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
    if let Some(holds) = resume_offsets(job, &table, &settings.topic)? {
        bounds.starting = OffsetSpec::Resume(holds);
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
    let (commit, written) = table
        .commit(&job.name, &settings.topic, committed(&snapshot.ranges))
        .await?;
    if scan.bad.count() > 0 {
        tracing::warn!(
            topic = settings.topic,
            bad_records = scan.bad.count(),
            "messages that are not JSON objects were quarantined"
        );
    }
    Ok(Some(JobSummary {
        job: job.name.clone(),
        topic: settings.topic.clone(),
        ranges: snapshot.ranges,
        messages: scan.messages,
        bytes: scan.bytes,
        bad_records: scan.bad.count(),
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

    // Decode and write while reading, with the schema inferred from the first batch; if a later
    // batch would change the inferred schema, that output is discarded and the run reads again,
    // spilling, then decodes the spill with the schema of the whole read (the same result).
    let staging = &mut *table;
    let (scan, decoded) = speculate(
        settings,
        ranges,
        job.include_headers,
        job.schema.clone(),
        progress.reading("scan", &settings.topic, ranges),
        cancel,
        move |schema, open| write_events(job, staging, schema.arrow(), open, progress, cancel),
    )
    .await?;
    let replay = !matches!(decoded, Decoded::Served(_));
    let scan = if replay {
        if matches!(decoded, Decoded::Discarded) {
            tracing::info!(
                "the decode while reading is not usable (a batch changed the inferred schema, or the query reads events twice): reading again to decode with the whole schema"
            );
            table.discard_staged_table().await;
        }
        // The first read decoded as it went and kept nothing: read again, spilling.
        let scan = scan_topic(
            settings.clone(),
            ranges.clone(),
            progress.reading("read again", &settings.topic, ranges),
            cancel.clone(),
            job.include_headers,
            job.schema.clone(),
            None,
        )
        .await?;
        let spill = scan
            .spill
            .clone()
            .expect("a read without a decode while reading spills");
        tracing::debug!(messages = spill.messages(), "decoding the spill");
        let schema = Arc::new(scan.inference.finish(job.include_headers));
        let open = decode_spill(
            spill,
            EventDecoder::new(Arc::clone(&schema), &settings.topic),
            progress.reading("decode", &settings.topic, ranges),
        );
        write_events(job, table, schema.arrow(), open, progress, cancel).await?;
        scan
    } else {
        scan
    };
    table.write_bad_records(scan.bad.batches()?, cancel).await?;
    Ok((snapshot, scan))
}

/// Runs the job's query over `events` (opened by `open`) and stages its result.
pub(crate) async fn write_events(
    job: &JobSettings,
    table: &mut sink::TableRun,
    schema: arrow::datatypes::SchemaRef,
    open: OpenStream,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<()> {
    let ctx = session::new_context();
    session::register_stream(&ctx, "events", schema, open)?;
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
    Ok(())
}

/// The reading side of a speculative decode: the schema from the first batch goes out once,
/// then decoded batches, until the read ends (`complete`) or a batch would change the schema
/// (`broken`).
struct Speculation {
    schema: Option<tokio::sync::oneshot::Sender<Arc<EventSchema>>>,
    batches: tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    complete: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
}

/// The query side of a speculative decode.
struct Speculated {
    schema: tokio::sync::oneshot::Receiver<Arc<EventSchema>>,
    batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    complete: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
}

impl Speculated {
    /// The `events` stream of the decoded batches. It can be read once: a query that scans
    /// `events` twice marks the speculation broken, and the run replays the spill.
    fn open(
        batches: tokio::sync::mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
        schema: arrow::datatypes::SchemaRef,
        complete: Arc<AtomicBool>,
        broken: Arc<AtomicBool>,
    ) -> OpenStream {
        let receiver = std::sync::Mutex::new(Some(batches));
        Arc::new(move || {
            let taken = receiver.lock().ok().and_then(|mut r| r.take());
            let stream = match taken {
                Some(rx) => until_complete(rx, Arc::clone(&complete)),
                None => {
                    broken.store(true, Ordering::Release);
                    Box::pin(futures::stream::once(async {
                        Err(DataFusionError::Execution(
                            "the query reads events twice: replaying the spill".into(),
                        ))
                    }))
                }
            };
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream))
        })
    }
}

impl Speculation {
    fn new() -> (Speculation, Speculated) {
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let complete = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        (
            Speculation {
                schema: Some(schema_tx),
                batches: tx,
                complete: Arc::clone(&complete),
                broken: Arc::clone(&broken),
            },
            Speculated {
                schema: schema_rx,
                batches: rx,
                complete,
                broken,
            },
        )
    }

    /// Hands a decoded batch to the query; false once the query stopped reading.
    fn send(&self, decoded: Result<RecordBatch, crate::decode::DecodeError>) -> bool {
        let item = decoded.map_err(|e| DataFusionError::External(Box::new(e)));
        self.batches.blocking_send(item).is_ok()
    }
}

/// What the first pass does with each batch.
enum Decoding {
    /// No batch yet.
    Waiting(Speculation),
    /// Decoding with the first batch's schema and checking that it still holds.
    Running {
        speculation: Speculation,
        decoder: EventDecoder,
        seen: Conformance,
    },
    /// The schema held so far but the query stopped reading (e.g. a LIMIT); only inferring,
    /// and `broken` if the schema changes after all.
    Detached {
        schema: Arc<EventSchema>,
        broken: Arc<AtomicBool>,
    },
    /// Only inferring, for the replay.
    Off,
}

/// The batches of `rx`, ending cleanly only if the sender set `complete` before closing: a
/// stream that ends without the reader saying it finished is an error, never a short table.
fn until_complete(
    rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    complete: Arc<AtomicBool>,
) -> futures::stream::BoxStream<'static, Result<RecordBatch, DataFusionError>> {
    Box::pin(futures::stream::unfold(
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
    ))
}

/// What the first pass learned, and the messages it read.
#[derive(Debug)]
struct Scan {
    inference: SchemaInference,
    bad: Quarantined,
    messages: u64,
    bytes: u64,
    /// Every message read, for a replay (a read that decoded as it went keeps none).
    spill: Option<Spill>,
}

/// Reads the ranges once, infers the schema and keeps bad records aside. With a `speculation`,
/// it also decodes for the query as it reads (see [`Decoding`]) and stops as soon as that is
/// of no use; without one, it spills every message for the decode that follows.
async fn scan_topic(
    settings: Settings,
    ranges: Vec<OffsetRange>,
    bars: ReadProgress,
    cancel: CancellationToken,
    include_headers: bool,
    declared: Option<Arc<EventSchema>>,
    speculation: Option<Speculation>,
) -> Result<Scan> {
    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let expected = offsets::total_len(&ranges);
    let thread_cancel = cancel.clone();
    let scan = blocking(move || {
        let mut inference = SchemaInference::new(declared);
        let mut bad = Quarantine::new(&topic);
        let mut found = Vec::new();
        let (mut bytes, mut messages) = (0u64, 0u64);
        let mut spill = match speculation {
            Some(_) => None,
            None => Some(SpillWriter::create()?),
        };
        let mut spill_error: Option<Error> = None;
        let mut decoding = speculation.map_or(Decoding::Off, Decoding::Waiting);
        read_pipelined(
            |on_batch| log.read(&topic, &ranges, BATCH_ROWS, on_batch),
            &bars,
            |batch| {
                if thread_cancel.is_cancelled() {
                    return ControlFlow::Break(());
                }
                messages += batch.len() as u64;
                bytes += batch
                    .iter()
                    .map(|m| m.value.as_ref().map_or(0, Vec::len) as u64)
                    .sum::<u64>();
                if let Some(spill) = spill.as_mut() {
                    if let Err(e) = spill.write(&batch) {
                        spill_error = Some(e.into());
                        return ControlFlow::Break(());
                    }
                } else if matches!(decoding, Decoding::Off) {
                    // The decode while reading broke: the run reads again, spilling.
                    return ControlFlow::Break(());
                }
                decoding = decoding_step(
                    std::mem::replace(&mut decoding, Decoding::Off),
                    &batch,
                    &topic,
                    include_headers,
                    &mut inference,
                    &mut found,
                );
                if let Err(e) = bad.extend(found.drain(..)) {
                    spill_error = Some(e.into());
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )?;
        bars.finish();
        if let Some(e) = spill_error {
            return Err(e);
        }
        finish_decoding(decoding, &mut inference, include_headers);
        let spill = spill.map(SpillWriter::finish).transpose()?;
        Ok::<_, Error>(Scan {
            inference,
            bad: bad.finish()?,
            messages,
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
        bad = scan.bad.count(),
        "scan done"
    );
    Ok(scan)
}

/// One batch of the first pass: infer, keep bad records, and decode while the first batch's
/// schema holds.
fn decoding_step(
    decoding: Decoding,
    batch: &[Message],
    topic: &str,
    include_headers: bool,
    inference: &mut SchemaInference,
    bad: &mut Vec<BadRecord>,
) -> Decoding {
    match decoding {
        Decoding::Waiting(mut speculation) => {
            bad.extend(decode::scan(batch, inference));
            let schema = Arc::new(inference.finish(include_headers));
            let decoder = EventDecoder::new(Arc::clone(&schema), topic);
            let sent = speculation
                .schema
                .take()
                .is_some_and(|tx| tx.send(Arc::clone(&schema)).is_ok());
            if !sent {
                return Decoding::Off;
            }
            tracing::info!(
                columns = schema.json_columns.len(),
                "decoding while reading, with the first batch's schema"
            );
            if !speculation.send(decoder.decode(batch)) {
                return Decoding::Detached {
                    schema,
                    broken: speculation.broken,
                };
            }
            Decoding::Running {
                seen: Conformance::new(&schema),
                speculation,
                decoder,
            }
        }
        Decoding::Running {
            speculation,
            decoder,
            mut seen,
        } => {
            let decoded = decoder.decode_checked(batch, &mut seen);
            let schema = decoder.schema();
            if !seen.holds(schema, inference, include_headers) {
                // This batch names a new field or widens a type: infer it in full, and let
                // the query side replay the spill.
                seen.merge_into(schema, inference);
                bad.extend(decode::scan(batch, inference));
                speculation.broken.store(true, Ordering::Release);
                let _ = speculation.send(Err(crate::decode::DecodeError::SchemaChanged));
                return Decoding::Off;
            }
            bad.append(&mut seen.bad);
            if speculation.send(decoded) {
                return Decoding::Running {
                    speculation,
                    decoder,
                    seen,
                };
            }
            seen.merge_into(schema, inference);
            Decoding::Detached {
                schema: Arc::new(schema.clone()),
                broken: speculation.broken,
            }
        }
        Decoding::Detached { schema, broken } => {
            bad.extend(decode::scan(batch, inference));
            Decoding::Detached { schema, broken }
        }
        Decoding::Off => {
            bad.extend(decode::scan(batch, inference));
            Decoding::Off
        }
    }
}

/// The end of the first pass: a speculation whose schema held over the whole read completes
/// the query's stream; one whose schema changed after the query stopped reading is broken.
fn finish_decoding(decoding: Decoding, inference: &mut SchemaInference, include_headers: bool) {
    match decoding {
        Decoding::Running {
            speculation,
            decoder,
            seen,
        } => {
            seen.merge_into(decoder.schema(), inference);
            speculation.complete.store(true, Ordering::Release);
        }
        Decoding::Detached { schema, broken } => {
            if inference.finish(include_headers).json_columns != schema.json_columns {
                broken.store(true, Ordering::Release);
            }
        }
        Decoding::Waiting(_) | Decoding::Off => {}
    }
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

/// The decoded events of a bounded read of the topic, for `bnetl sql`'s `events` table.
pub struct TopicEvents {
    /// Their schema.
    pub schema: arrow::datatypes::SchemaRef,
    /// Opens a scan of them (each scan replays the read's spill).
    pub open: OpenStream,
    /// Messages read.
    pub messages: u64,
    /// Messages that are not JSON objects (not in the events).
    pub bad_records: u64,
}

/// A read of some ranges that kept every message (spilled) and what it learned.
pub(crate) struct Spilled {
    /// The schema inferred over the read (or the declared one).
    pub inference: SchemaInference,
    /// Its bad records.
    pub bad: Quarantined,
    /// Messages read.
    pub messages: u64,
    /// Bytes of message values read.
    pub bytes: u64,
    /// Every message read.
    pub spill: Spill,
}

/// Reads `ranges` once, spilling every message, inferring the schema over all of them (or
/// taking `read.schema`) and keeping the bad records aside.
pub(crate) async fn scan_once(
    settings: &Settings,
    read: &crate::settings::ReadSettings,
    ranges: &[OffsetRange],
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Spilled> {
    let scan = scan_topic(
        settings.clone(),
        ranges.to_vec(),
        progress.reading("read", &settings.topic, ranges),
        cancel.clone(),
        read.include_headers,
        read.schema.clone(),
        None,
    )
    .await?;
    let spill = scan
        .spill
        .expect("a read without a decode while reading spills");
    Ok(Spilled {
        inference: scan.inference,
        bad: scan.bad,
        messages: scan.messages,
        bytes: scan.bytes,
        spill,
    })
}

/// What [`decode_while_reading`] read, when the first batch's schema held over the whole read.
pub(crate) struct DecodedRead {
    /// The schema of every batch handed out (the whole read's, as inference gives it).
    pub schema: Arc<EventSchema>,
    /// The read's bad records.
    pub bad: Quarantined,
    /// Bytes of message values read.
    pub bytes: u64,
}

/// Reads `ranges` once and decodes while reading, with the first batch's schema (or the
/// declared one), handing each decoded batch to `on_batch` in order, without spilling. `None`
/// when a later batch would change the schema: what `on_batch` got is then to be discarded,
/// and the caller reads again ([`scan_once`]).
pub(crate) async fn decode_while_reading(
    settings: &Settings,
    read: &crate::settings::ReadSettings,
    ranges: &[OffsetRange],
    progress: &Progress,
    cancel: &CancellationToken,
    mut on_batch: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<Option<DecodedRead>> {
    let (scan, decoded) = speculate(
        settings,
        ranges,
        read.include_headers,
        read.schema.clone(),
        progress.reading("read", &settings.topic, ranges),
        cancel,
        move |_, open| async move {
            let mut stream = open();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| Error::Io {
                    action: "decode the events".into(),
                    source: std::io::Error::other(e),
                })?;
                on_batch(&batch)?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(match decoded {
        Decoded::Served(schema) => Some(DecodedRead {
            schema,
            bad: scan.bad,
            bytes: scan.bytes,
        }),
        Decoded::Discarded | Decoded::Nothing => None,
    })
}

/// How a decode while reading ended.
#[derive(Debug, Clone)]
enum Decoded {
    /// Every event was decoded with this schema, the whole read's.
    Served(Arc<EventSchema>),
    /// A batch would have changed the schema (or the consumer read the events twice): what was
    /// consumed is to be discarded.
    Discarded,
    /// The read ended before its first batch.
    Nothing,
}

/// Reads `ranges` once and decodes while reading, with the first batch's schema (or
/// `declared`), handing the decoded events to `consume` as a stream that can be opened once.
/// The speculative-decode rules live here: a later batch that would change the schema breaks
/// the decode ([`Decoded::Discarded`]); a `consume` error while the decode still holds is the
/// run's error, unless the read failed first (its error is the cause).
async fn speculate<F, Fut>(
    settings: &Settings,
    ranges: &[OffsetRange],
    include_headers: bool,
    declared: Option<Arc<EventSchema>>,
    bars: ReadProgress,
    cancel: &CancellationToken,
    consume: F,
) -> Result<(Scan, Decoded)>
where
    F: FnOnce(Arc<EventSchema>, OpenStream) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (speculation, decoded) = Speculation::new();
    let read_cancel = cancel.child_token();
    let read = tokio::spawn(scan_topic(
        settings.clone(),
        ranges.to_vec(),
        bars,
        read_cancel.clone(),
        include_headers,
        declared,
        Some(speculation),
    ));
    let Speculated {
        schema,
        batches,
        complete,
        broken,
    } = decoded;
    let served = match schema.await {
        Ok(schema) => {
            let open = Speculated::open(batches, schema.arrow(), complete, Arc::clone(&broken));
            match consume(Arc::clone(&schema), open).await {
                Ok(()) => Some(schema),
                Err(e) if broken.load(Ordering::Acquire) => {
                    tracing::debug!(error = %crate::error::chain(&e), "speculative decode discarded");
                    Some(schema)
                }
                Err(e) => {
                    // A read that failed ends the decoded stream early: its error is the cause.
                    read_cancel.cancel();
                    return match read.await {
                        Ok(Err(read_error)) if !matches!(read_error, Error::Interrupted) => {
                            Err(read_error)
                        }
                        _ => Err(e),
                    };
                }
            }
        }
        // The read ended before its first batch: nothing was speculated.
        Err(_) => None,
    };
    let scan = read.await.map_err(|e| Error::Io {
        action: "finish reading the topic".into(),
        source: std::io::Error::other(e),
    })??;
    let decoded = match served {
        None => Decoded::Nothing,
        Some(_) if broken.load(Ordering::Acquire) => Decoded::Discarded,
        Some(schema) => Decoded::Served(schema),
    };
    Ok((scan, decoded))
}

/// Reads `read.bounds` of the topic once, spilling, with the schema inferred over the whole
/// read (or declared), and returns its events for a query. Writes nothing but the spill.
pub async fn read_events(
    settings: &Settings,
    read: &crate::settings::ReadSettings,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<TopicEvents> {
    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let bounds = read.bounds.clone();
    let snapshot = blocking(move || source::snapshot(&log, &topic, &bounds)).await??;
    let ranges = &snapshot.ranges;
    let scan = scan_once(settings, read, ranges, progress, cancel).await?;
    let schema = Arc::new(scan.inference.finish(read.include_headers));
    let open = decode_spill(
        scan.spill,
        EventDecoder::new(Arc::clone(&schema), &settings.topic),
        progress.reading("decode", &settings.topic, ranges),
    );
    Ok(TopicEvents {
        schema: schema.arrow(),
        open,
        messages: scan.messages,
        bad_records: scan.bad.count(),
    })
}

/// The decoded events of the run, replayed from its spill on every scan of the table.
pub(crate) fn decode_spill(spill: Spill, decoder: EventDecoder, bars: ReadProgress) -> OpenStream {
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
        let stream = until_complete(rx, complete);
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
