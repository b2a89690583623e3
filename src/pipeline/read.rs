//! Source and decode stages: a bounded read of the topic on a reader thread, parsed on
//! another ([`read_pipelined`]); the first pass that infers the schema and keeps bad records
//! aside, decoding as it goes ([`scan_topic`], rules in [`super::speculate`]) or spilling every
//! message for a second pass ([`read_spilled`], [`decode_spill`]); and the `events` table of
//! `bnetl sql` ([`read_events`]).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tempfile::NamedTempFile;
use tokio_util::sync::CancellationToken;

use super::fanout::until_complete;
use super::speculate::{Decoded, Decoding, Speculation, decoding_step, finish_decoding};
use super::{BATCH_ROWS, blocking};
use crate::decode::schema::EventSchema;
use crate::decode::{Conformance, EventDecoder, Quarantine, Quarantined, SchemaInference};
use crate::error::{Error, Result};
use crate::progress::{Progress, ReadProgress};
use crate::settings::Settings;
use crate::source::spill::{Spill, SpillWriter};
use crate::source::{Message, OffsetRange, SourceError, offsets};
use crate::temp_ipc;
use crate::transform::session::OpenStream;

/// What the first pass learned, and the messages it read.
#[derive(Debug)]
pub(super) struct Scan {
    pub inference: SchemaInference,
    pub bad: Quarantined,
    pub messages: u64,
    pub bytes: u64,
    /// Every message read, for a replay (a read that decoded as it went keeps none).
    pub spill: Option<Spill>,
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
        // Without a speculation nothing is decoded on the way: one thread passes batches on.
        let decode_threads = speculation.as_ref().map_or(1, Speculation::decode_threads);
        let mut decoding = speculation.map_or(Decoding::Off, Decoding::Waiting);
        // Once the first batch gave the schema, the batches are decoded on the prepare threads
        // and only checked here, in order.
        let decoder = OnceLock::<EventDecoder>::new();
        read_pipelined(
            decode_threads,
            |on_batch| log.read(&topic, &ranges, BATCH_ROWS, on_batch),
            &bars,
            |batch| {
                let decoded = decoder.get().map(|decoder| {
                    let mut seen = Conformance::new(decoder.schema());
                    (decoder.decode_checked(&batch, &mut seen), seen)
                });
                (batch, decoded)
            },
            |(batch, decoded)| {
                if thread_cancel.is_cancelled() {
                    return ControlFlow::Break(());
                }
                messages += batch.len() as u64;
                bytes += batch
                    .iter()
                    .map(|m| m.value.as_ref().map_or(0, Bytes::len) as u64)
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
                    decoded,
                    &topic,
                    include_headers,
                    &mut inference,
                    &mut found,
                );
                if let Decoding::Running {
                    decoder: running, ..
                } = &decoding
                {
                    decoder.get_or_init(|| running.clone());
                }
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

/// Threads that decode batches between the reader and the consumer where nothing else needs
/// the cores (`sql`'s events): one per core.
pub(super) fn per_core() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Runs `read` (a source handing batches to its callback) on a reader thread, `prepare` on each
/// batch on `threads` threads, and `consume` on the prepared batches, in the order read, on
/// this thread: reading, parsing and what follows run at the same time.
pub fn read_pipelined<T: Send>(
    threads: usize,
    read: impl FnOnce(&mut dyn FnMut(Vec<Message>) -> ControlFlow<()>) -> Result<(), SourceError> + Send,
    bars: &ReadProgress,
    prepare: impl Fn(Vec<Message>) -> T + Sync,
    mut consume: impl FnMut(T) -> ControlFlow<()>,
) -> Result<(), SourceError> {
    let threads = threads.max(1);
    std::thread::scope(|scope| {
        // Batch k goes to thread k % threads and comes back from it: the order is kept without
        // a reordering buffer, and the first thread that ends marks the end of the read.
        let mut inputs = Vec::with_capacity(threads);
        let mut outputs = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (in_tx, in_rx) = std::sync::mpsc::sync_channel::<Vec<Message>>(1);
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<T>(1);
            let prepare = &prepare;
            scope.spawn(move || {
                for batch in in_rx {
                    if out_tx.send(prepare(batch)).is_err() {
                        break;
                    }
                }
            });
            inputs.push(in_tx);
            outputs.push(out_rx);
        }
        let reader = scope.spawn(move || {
            let mut next = 0;
            read(&mut |batch| {
                bars.advance_batch(&batch);
                let sent = inputs[next % inputs.len()].send(batch);
                next += 1;
                match sent {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            })
        });
        for next in 0.. {
            let Ok(prepared) = outputs[next % threads].recv() else {
                break;
            };
            if consume(prepared).is_break() {
                break;
            }
        }
        drop(outputs);
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
    /// Opens a scan of them (each scan replays the decoded events file, or the read's spill).
    pub open: OpenStream,
    /// Messages read.
    pub messages: u64,
    /// Messages that are not JSON objects (not in the events).
    pub bad_records: u64,
}

/// One bounded read of the topic: what it reads, with which options, and on how many threads
/// it decodes. A run (and `sql`'s `events`) builds one and hands it to
/// [`super::speculate::speculate`] and, when a second pass is needed, to [`read_spilled`].
#[derive(Clone, Copy)]
pub(super) struct TopicRead<'a> {
    pub settings: &'a Settings,
    pub read: &'a crate::settings::ReadSettings,
    pub ranges: &'a [OffsetRange],
    pub progress: &'a Progress,
    pub cancel: &'a CancellationToken,
    pub decode_threads: usize,
}

impl TopicRead<'_> {
    /// A pass over the read ([`scan_topic`]), its bars labelled `label`: with `speculation`,
    /// decoding as it goes; without, spilling every message for a decode after it.
    pub(super) fn scan(
        &self,
        label: &str,
        cancel: CancellationToken,
        speculation: Option<Speculation>,
    ) -> impl Future<Output = Result<Scan>> + Send + use<> {
        scan_topic(
            self.settings.clone(),
            self.ranges.to_vec(),
            self.progress
                .reading(label, &self.settings.topic, self.ranges),
            cancel,
            self.read.include_headers,
            self.read.schema.clone(),
            speculation,
        )
    }
}

/// Reads `ranges` (again), spilling every message, inferring the schema over all of them (or
/// taking `read.schema`) and keeping the bad records aside; returns what it learned, the
/// schema, and the events decoded from the spill with it (each scan decodes the spill again).
pub(super) async fn read_spilled(topic: TopicRead<'_>) -> Result<(Scan, SchemaRef, OpenStream)> {
    let mut scan = topic.scan("read again", topic.cancel.clone(), None).await?;
    let spill = scan
        .spill
        .take()
        .expect("a read without a decode while reading spills");
    tracing::debug!(messages = spill.messages(), "decoding the spill");
    let schema = Arc::new(scan.inference.finish(topic.read.include_headers));
    let open = decode_spill(
        spill,
        EventDecoder::new(Arc::clone(&schema), &topic.settings.topic),
        topic
            .progress
            .reading("decode", &topic.settings.topic, topic.ranges),
        topic.decode_threads,
    );
    Ok((scan, schema.arrow(), open))
}

/// Reads `ranges` of the topic once and returns its events for a query, decoded once into a
/// temp Arrow IPC file that every scan replays: while reading, with the first batch's schema
/// (or the declared one); when a later batch would change that schema, read again, spilling,
/// and decoded with the whole read's schema on each scan. With `columns` (those a statement's
/// plan scans), the events keep only those: the others are decoded (a message is checked
/// whole) but not written to the file. Writes nothing but temp files.
pub async fn read_events(
    settings: &Settings,
    read: &crate::settings::ReadSettings,
    ranges: &[OffsetRange],
    columns: Option<&BTreeSet<String>>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<TopicEvents> {
    let decoded: Arc<std::sync::Mutex<Option<(SchemaRef, NamedTempFile)>>> = Arc::default();
    let slot = Arc::clone(&decoded);
    let topic = TopicRead {
        settings,
        read,
        ranges,
        progress,
        cancel,
        decode_threads: per_core(),
    };
    let kept = columns.cloned();
    let (scan, outcome) = super::speculate::speculate(topic, move |schema, open| async move {
        let schema = schema.arrow();
        let projection = Projection::of(&schema, kept.as_ref());
        let kept_schema = projection.schema(&schema)?;
        let (file, mut writer) =
            temp_ipc::create("bnetl-events-", "the decoded events file", &kept_schema)
                .map_err(from_temp_ipc)?;
        let mut stream = open();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|source| Error::Events {
                action: "decode".into(),
                source,
            })?;
            writer
                .write(&projection.batch(batch)?)
                .map_err(Error::arrow("write the decoded events file"))?;
        }
        writer
            .finish()
            .map_err(Error::arrow("finish the decoded events file"))?;
        if let Ok(mut slot) = slot.lock() {
            *slot = Some((kept_schema, file));
        }
        Ok(())
    })
    .await?;
    let file = decoded.lock().ok().and_then(|mut slot| slot.take());
    if let (Decoded::Served, Some((schema, file))) = (outcome, file) {
        return Ok(TopicEvents {
            open: replay_file(Arc::clone(&schema), Arc::new(file)),
            schema,
            messages: scan.messages,
            bad_records: scan.bad.count(),
        });
    }
    tracing::info!(
        "the decode while reading is not usable (a batch changed the inferred schema): reading again to decode with the whole schema"
    );
    let (scan, schema, open) = read_spilled(topic).await?;
    let projection = Projection::of(&schema, columns);
    let kept_schema = projection.schema(&schema)?;
    let open: OpenStream = if projection.0.is_none() {
        open
    } else {
        let (projection, stream_schema) = (Arc::new(projection), Arc::clone(&kept_schema));
        Arc::new(move || {
            let projection = Arc::clone(&projection);
            let batches = open().map(move |batch| {
                batch.and_then(|b| {
                    projection
                        .batch(b)
                        .map_err(|e| DataFusionError::External(Box::new(e)))
                })
            });
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&stream_schema),
                batches,
            ))
        })
    };
    Ok(TopicEvents {
        schema: kept_schema,
        open,
        messages: scan.messages,
        bad_records: scan.bad.count(),
    })
}

/// The positions of the decoded columns a statement reads (None: all of them).
struct Projection(Option<Vec<usize>>);

impl Projection {
    /// The columns of `schema` named in `columns`, in the schema's order; `partition` alone
    /// when the statement reads none (`COUNT(*)`: the rows still count).
    fn of(schema: &arrow::datatypes::Schema, columns: Option<&BTreeSet<String>>) -> Self {
        let Some(columns) = columns else {
            return Projection(None);
        };
        let mut kept: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| columns.contains(schema.field(i).name()))
            .collect();
        if kept.is_empty()
            && let Ok(partition) = schema.index_of("partition")
        {
            kept.push(partition);
        }
        if kept.is_empty() || kept.len() == schema.fields().len() {
            return Projection(None);
        }
        Projection(Some(kept))
    }

    fn schema(&self, schema: &SchemaRef) -> Result<SchemaRef> {
        match &self.0 {
            None => Ok(Arc::clone(schema)),
            Some(kept) => Ok(Arc::new(
                schema
                    .project(kept)
                    .map_err(Error::arrow("keep the statement's columns"))?,
            )),
        }
    }

    fn batch(&self, batch: RecordBatch) -> Result<RecordBatch> {
        match &self.0 {
            None => Ok(batch),
            Some(kept) => batch
                .project(kept)
                .map_err(Error::arrow("keep the statement's columns")),
        }
    }
}

fn from_temp_ipc(e: temp_ipc::TempIpcError) -> Error {
    Error::Io {
        action: e.action,
        source: std::io::Error::other(e.source),
    }
}

/// The batches of a decoded events file, from the first, on every call.
fn replay_file(schema: SchemaRef, file: Arc<NamedTempFile>) -> OpenStream {
    Arc::new(move || {
        let batches = temp_ipc::read(&file, "the decoded events file")
            .map_err(|e| DataFusionError::External(e.source));
        let stream: futures::stream::BoxStream<'static, _> = match batches {
            Ok(reader) => {
                futures::stream::iter(reader.map(|b| b.map_err(DataFusionError::from))).boxed()
            }
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream))
    })
}

/// The decoded events of the run, replayed from its spill on every scan of the table.
fn decode_spill(
    spill: Spill,
    decoder: EventDecoder,
    bars: ReadProgress,
    threads: usize,
) -> OpenStream {
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
                    threads,
                    |on_batch| spill.read(on_batch),
                    &bars,
                    |batch| {
                        decoder
                            .decode(&batch)
                            .map_err(|e| DataFusionError::External(Box::new(e)))
                    },
                    |decoded| match tx.blocking_send(decoded) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(_) => ControlFlow::Break(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i64, len: i64) -> Vec<Message> {
        (first..first + len)
            .map(|offset| Message {
                partition: 0,
                offset,
                timestamp_ms: 0,
                timestamp_type: 0,
                key: None,
                value: Some(offset.to_string().into_bytes().into()),
                headers: Vec::new(),
            })
            .collect()
    }

    /// A source of `batches` batches of 3 messages; returns how many it handed over.
    fn source(
        batches: i64,
        handed: &std::sync::atomic::AtomicI64,
    ) -> impl FnOnce(&mut dyn FnMut(Vec<Message>) -> ControlFlow<()>) -> Result<(), SourceError> + Send
    {
        move |on_batch| {
            for k in 0..batches {
                handed.fetch_add(1, Ordering::SeqCst);
                if on_batch(batch(k * 3, 3)).is_break() {
                    break;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn prepared_batches_come_back_in_the_order_read() {
        let handed = std::sync::atomic::AtomicI64::new(0);
        let mut seen = Vec::new();
        read_pipelined(
            2,
            source(50, &handed),
            &ReadProgress::default(),
            |messages| {
                // Uneven work, so that the threads finish out of order.
                if messages[0].offset % 2 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                messages.iter().map(|m| m.offset).collect::<Vec<_>>()
            },
            |offsets| {
                seen.extend(offsets);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..150).collect::<Vec<_>>());
    }

    #[test]
    fn a_consumer_that_stops_stops_the_reader() {
        let handed = std::sync::atomic::AtomicI64::new(0);
        let mut consumed = 0;
        read_pipelined(
            2,
            source(10_000, &handed),
            &ReadProgress::default(),
            |messages| messages.len(),
            |_| {
                consumed += 1;
                if consumed == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!(consumed, 3);
        // What was in flight (two queued per thread, one being prepared), not the whole source.
        assert!(handed.load(Ordering::SeqCst) < 100, "{handed:?}");
    }
}
