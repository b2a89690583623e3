//! The speculative decode: the rules for decoding while the topic is read, before the whole
//! read's schema is known.
//!
//! The first batch's schema (or the declared one) is inferred and sent out once, and every
//! batch is decoded with it as it is read ([`decoding_step`]). Each later batch is checked
//! against it: one that would change the schema inferred over the whole read (a new field, a
//! wider type) breaks the speculation, and so does an output that scans `events` twice. A
//! broken speculation's output is discarded ([`Decoded::Discarded`]) and the caller reads again,
//! spilling, and decodes with the whole read's schema: either way the table is the one a
//! two-pass read gives. An output that stops reading early (a `LIMIT`) detaches the decode,
//! which goes on inferring, so a later schema change still breaks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::fanout::until_complete;
use super::read::{Scan, TopicRead};
use crate::decode::schema::EventSchema;
use crate::decode::{self, BadRecord, Conformance, EventDecoder, SchemaInference};
use crate::error::{Error, Result};
use crate::source::Message;
use crate::transform::session::OpenStream;

/// The reading side of a speculative decode: the schema from the first batch goes out once,
/// then decoded batches, until the read ends (`complete`) or a batch would change the schema
/// (`broken`).
pub(super) struct Speculation {
    schema: Option<tokio::sync::oneshot::Sender<Arc<EventSchema>>>,
    batches: tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
    complete: Arc<AtomicBool>,
    broken: Arc<AtomicBool>,
    decode_threads: usize,
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
    /// A speculation whose batches are decoded on `decode_threads` threads.
    fn new(decode_threads: usize) -> (Speculation, Speculated) {
        // One decoded batch waits here: the fan-out queues more per output, and with a reader
        // faster than the outputs every queue is full (10M events: 15 MB less peak with 1 than 4).
        Speculation::with_queue(decode_threads, 1)
    }

    /// A speculation that holds up to `queued` decoded batches for the query.
    fn with_queue(decode_threads: usize, queued: usize) -> (Speculation, Speculated) {
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(queued);
        let complete = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        (
            Speculation {
                schema: Some(schema_tx),
                batches: tx,
                complete: Arc::clone(&complete),
                broken: Arc::clone(&broken),
                decode_threads,
            },
            Speculated {
                schema: schema_rx,
                batches: rx,
                complete,
                broken,
            },
        )
    }

    /// How many threads decode its batches.
    pub(super) fn decode_threads(&self) -> usize {
        self.decode_threads
    }

    /// Hands a decoded batch to the query; false once the query stopped reading.
    fn send(&self, decoded: Result<RecordBatch, crate::decode::DecodeError>) -> bool {
        let item = decoded.map_err(|e| DataFusionError::External(Box::new(e)));
        self.batches.blocking_send(item).is_ok()
    }
}

/// What the first pass does with each batch.
pub(super) enum Decoding {
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

/// A batch decoded ahead, off the first pass's thread, by the decoder of [`Decoding::Running`]:
/// [`EventDecoder::decode_checked`]'s answer and what it saw in that batch alone.
pub(super) type Predecoded = (Result<RecordBatch, crate::decode::DecodeError>, Conformance);

/// One batch of the first pass: infer, keep bad records, and decode while the first batch's
/// schema holds (or take the batch `predecoded` by the running decoder).
pub(super) fn decoding_step(
    decoding: Decoding,
    batch: &[Message],
    predecoded: Option<Predecoded>,
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
            let decoded = match predecoded {
                Some((decoded, batch_seen)) => {
                    seen.absorb(batch_seen);
                    decoded
                }
                None => decoder.decode_checked(batch, &mut seen),
            };
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
pub(super) fn finish_decoding(
    decoding: Decoding,
    inference: &mut SchemaInference,
    include_headers: bool,
) {
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

/// How a decode while reading ended.
#[derive(Debug, Clone)]
pub(super) enum Decoded {
    /// Every event was decoded with this schema, the whole read's.
    Served,
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
pub(super) async fn speculate<F, Fut>(topic: TopicRead<'_>, consume: F) -> Result<(Scan, Decoded)>
where
    F: FnOnce(Arc<EventSchema>, OpenStream) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (speculation, decoded) = Speculation::new(topic.decode_threads);
    let read_cancel = topic.cancel.child_token();
    let reading = tokio::spawn(topic.scan("read", read_cancel.clone(), Some(speculation)));
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
                    return match reading.await {
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
    let scan = reading.await.map_err(|source| Error::Task {
        task: "topic read".into(),
        source,
    })??;
    let decoded = match served {
        None => Decoded::Nothing,
        Some(_) if broken.load(Ordering::Acquire) => Decoded::Discarded,
        Some(_) => Decoded::Served,
    };
    Ok((scan, decoded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn messages(start: i64, values: &[&str]) -> Vec<Message> {
        values
            .iter()
            .zip(start..)
            .map(|(value, offset)| Message {
                partition: 0,
                offset,
                timestamp_ms: 1_700_000_000_000 + offset,
                timestamp_type: 0,
                key: None,
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
                headers: Vec::new(),
            })
            .collect()
    }

    /// Runs `batches` through the decode's steps as the reader does; returns the state, the
    /// batches the query side got, and the bad records. Nothing reads while it feeds: the
    /// speculation must hold every batch (`with_queue`).
    fn feed(
        batches: &[Vec<Message>],
        speculation: Speculation,
        inference: &mut SchemaInference,
    ) -> (Decoding, Vec<BadRecord>) {
        let mut decoding = Decoding::Waiting(speculation);
        let mut bad = Vec::new();
        for batch in batches {
            decoding = decoding_step(decoding, batch, None, "events", false, inference, &mut bad);
        }
        (decoding, bad)
    }

    fn received(rx: &mut tokio::sync::mpsc::Receiver<BatchItem>) -> Vec<Result<usize, String>> {
        let mut got = Vec::new();
        while let Ok(item) = rx.try_recv() {
            got.push(item.map(|b| b.num_rows()).map_err(|e| e.to_string()));
        }
        got
    }

    type BatchItem = Result<RecordBatch, DataFusionError>;

    #[test]
    fn a_read_whose_first_schema_holds_decodes_every_batch_and_completes() {
        let (speculation, mut side) = Speculation::with_queue(1, 4);
        let mut inference = SchemaInference::new(None);
        let batches = [
            messages(0, &[r#"{"event_type":"a","Host":"h"}"#, "not json"]),
            messages(2, &[r#"{"Host":"h2","event_type":"b"}"#]),
        ];
        let (decoding, bad) = feed(&batches, speculation, &mut inference);
        assert_eq!(bad.len(), 1, "the malformed message is kept aside");
        assert!(matches!(decoding, Decoding::Running { .. }));
        finish_decoding(decoding, &mut inference, false);
        assert!(side.complete.load(Ordering::Acquire));
        assert!(!side.broken.load(Ordering::Acquire));
        let schema = side.schema.try_recv().expect("the schema is sent once");
        let before = SchemaInference::new(None).finish(false).json_columns.len();
        assert_eq!(
            schema.json_columns.len(),
            before,
            "the seed's columns, no other"
        );
        assert_eq!(received(&mut side.batches), [Ok(1), Ok(1)]);
    }

    #[test]
    fn a_batch_with_a_new_field_breaks_the_speculation() {
        let (speculation, mut side) = Speculation::with_queue(1, 4);
        let mut inference = SchemaInference::new(None);
        let batches = [
            messages(0, &[r#"{"event_type":"a"}"#]),
            messages(1, &[r#"{"event_type":"b","level":3}"#]),
            messages(2, &[r#"{"event_type":"c"}"#]),
        ];
        let (decoding, _) = feed(&batches, speculation, &mut inference);
        assert!(matches!(decoding, Decoding::Off));
        assert!(side.broken.load(Ordering::Acquire));
        let got = received(&mut side.batches);
        assert_eq!(got[0], Ok(1));
        assert!(got[1].is_err(), "the query side is told: {got:?}");
        // Inference still saw every field, for the read again.
        let names: Vec<_> = inference
            .finish(false)
            .json_columns
            .iter()
            .map(|c| c.column.clone())
            .collect();
        assert!(names.iter().any(|n| n == "level"), "{names:?}");
    }

    #[test]
    fn a_wider_type_breaks_the_speculation() {
        let (speculation, side) = Speculation::with_queue(1, 4);
        let mut inference = SchemaInference::new(None);
        let batches = [messages(0, &[r#"{"n":1}"#]), messages(1, &[r#"{"n":1.5}"#])];
        let (decoding, _) = feed(&batches, speculation, &mut inference);
        assert!(matches!(decoding, Decoding::Off));
        assert!(side.broken.load(Ordering::Acquire));
    }

    #[test]
    fn a_query_that_stops_reading_detaches_and_a_later_change_still_breaks() {
        let (speculation, side) = Speculation::with_queue(1, 4);
        drop(side.batches);
        let mut inference = SchemaInference::new(None);
        let batches = [
            messages(0, &[r#"{"event_type":"a"}"#]),
            messages(1, &[r#"{"event_type":"b","extra":1}"#]),
        ];
        let (decoding, _) = feed(&batches, speculation, &mut inference);
        assert!(matches!(decoding, Decoding::Detached { .. }));
        assert!(!side.broken.load(Ordering::Acquire));
        finish_decoding(decoding, &mut inference, false);
        assert!(
            side.broken.load(Ordering::Acquire),
            "the schema changed after all"
        );
    }

    #[tokio::test]
    async fn the_events_stream_is_read_once() {
        let (_speculation, side) = Speculation::with_queue(1, 4);
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        let open = Speculated::open(
            side.batches,
            schema,
            side.complete,
            Arc::clone(&side.broken),
        );
        let _first = open();
        let mut second = open();
        use futures::StreamExt;
        assert!(matches!(second.next().await, Some(Err(_))));
        assert!(side.broken.load(Ordering::Acquire));
    }
}
