//! Fan-out stage: one stream of decoded batches feeds several outputs at once, each through a
//! bounded channel, so the outputs' queries and Parquet encoders run side by side on the
//! runtime's threads while memory stays a few batches per output.
//!
//! A stream handed out here ends cleanly only when its source did ([`until_complete`]): a
//! pump that stops early is an error for every output, never a short table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::transform::session::OpenStream;

/// Batches queued per output before the pump waits for the slowest one.
const QUEUED_BATCHES: usize = 2;

/// A decoded batch or why there is none.
pub type BatchResult = Result<RecordBatch, DataFusionError>;

/// The batches of `rx`, ending cleanly only if the sender set `complete` before closing: a
/// stream that ends without the sender saying it finished is an error, never a short table.
pub fn until_complete(
    rx: mpsc::Receiver<BatchResult>,
    complete: Arc<AtomicBool>,
) -> futures::stream::BoxStream<'static, BatchResult> {
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

/// Splits the stream `source` opens (of `schema`) into `outputs` streams of the same batches.
/// Each returned [`OpenStream`] gives the shared batches on its first call; a second call (a
/// query that scans `events` twice) calls `source` again, whose answer decides (a replayable
/// source replays, a read-once source refuses). The returned future pumps the batches: run it
/// alongside the outputs. An output that stops reading (a `LIMIT`) is let go; the pump stops
/// when every output has. A source error reaches every output.
pub fn fan_out(
    source: OpenStream,
    schema: SchemaRef,
    outputs: usize,
) -> (Vec<OpenStream>, BoxFuture<'static, ()>) {
    let complete = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::with_capacity(outputs);
    let mut opens: Vec<OpenStream> = Vec::with_capacity(outputs);
    for _ in 0..outputs {
        let (tx, rx) = mpsc::channel::<BatchResult>(QUEUED_BATCHES);
        senders.push(Some(tx));
        let receiver = std::sync::Mutex::new(Some(rx));
        let (again, complete, schema) = (
            Arc::clone(&source),
            Arc::clone(&complete),
            Arc::clone(&schema),
        );
        opens.push(Arc::new(move || {
            let taken = receiver.lock().ok().and_then(|mut r| r.take());
            match taken {
                Some(rx) => Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&schema),
                    until_complete(rx, Arc::clone(&complete)),
                )),
                None => again(),
            }
        }));
    }
    let pump = async move {
        let mut stream = source();
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            let item = item.map_err(Arc::new);
            for slot in &mut senders {
                let Some(tx) = slot else { continue };
                let copy = match &item {
                    Ok(batch) => Ok(batch.clone()),
                    Err(e) => Err(DataFusionError::Shared(Arc::clone(e))),
                };
                if tx.send(copy).await.is_err() {
                    *slot = None;
                }
            }
            if failed || senders.iter().all(Option::is_none) {
                return;
            }
        }
        complete.store(true, Ordering::Release);
    };
    (opens, Box::pin(pump))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "offset",
            DataType::Int64,
            false,
        )]))
    }

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("valid batch")
    }

    /// A source of `items`, counting how often it is opened.
    fn source(
        items: Vec<Result<Vec<i64>, String>>,
        opened: Arc<std::sync::atomic::AtomicUsize>,
    ) -> OpenStream {
        Arc::new(move || {
            opened.fetch_add(1, Ordering::SeqCst);
            let items: Vec<BatchResult> = items
                .iter()
                .map(|item| match item {
                    Ok(values) => Ok(batch(values)),
                    Err(e) => Err(DataFusionError::Execution(e.clone())),
                })
                .collect();
            Box::pin(RecordBatchStreamAdapter::new(
                schema(),
                futures::stream::iter(items),
            ))
        })
    }

    async fn rows(open: &OpenStream) -> Result<Vec<i64>, String> {
        let mut stream = open();
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            let b = item.map_err(|e| e.to_string())?;
            let column = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64");
            got.extend(column.values().iter());
        }
        Ok(got)
    }

    #[tokio::test]
    async fn every_output_gets_every_batch_from_one_read() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let items = (0..10).map(|i| Ok(vec![i * 2, i * 2 + 1])).collect();
        let (opens, pump) = fan_out(source(items, Arc::clone(&opened)), schema(), 3);
        let pump = tokio::spawn(pump);
        let all = futures::future::join_all(opens.iter().map(rows)).await;
        pump.await.expect("pump");
        for got in all {
            assert_eq!(got, Ok((0..20).collect::<Vec<_>>()));
        }
        assert_eq!(opened.load(Ordering::SeqCst), 1, "read once");
    }

    #[tokio::test]
    async fn an_output_that_stops_reading_does_not_stop_the_others() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let items = (0..10).map(|i| Ok(vec![i])).collect();
        let (opens, pump) = fan_out(source(items, opened), schema(), 2);
        let pump = tokio::spawn(pump);
        drop(opens[0]());
        assert_eq!(rows(&opens[1]).await, Ok((0..10).collect::<Vec<_>>()));
        pump.await.expect("pump");
    }

    #[tokio::test]
    async fn a_source_error_reaches_every_output() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let items = vec![
            Ok(vec![1]),
            Err("bad message at offset 7".into()),
            Ok(vec![2]),
        ];
        let (opens, pump) = fan_out(source(items, opened), schema(), 2);
        let pump = tokio::spawn(pump);
        for open in &opens {
            let got = rows(open).await;
            assert!(
                got.as_ref().is_err_and(|e| e.contains("offset 7")),
                "{got:?}"
            );
        }
        pump.await.expect("pump");
    }

    #[tokio::test]
    async fn a_pump_that_stops_early_is_an_error_not_a_short_table() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (opens, pump) = fan_out(source(vec![Ok(vec![1])], opened), schema(), 1);
        drop(pump);
        let got = rows(&opens[0]).await;
        assert!(got.is_err(), "{got:?}");
    }

    #[tokio::test]
    async fn a_second_scan_of_an_output_opens_the_source_again() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (opens, pump) = fan_out(source(vec![Ok(vec![4])], Arc::clone(&opened)), schema(), 1);
        let pump = tokio::spawn(pump);
        assert_eq!(rows(&opens[0]).await, Ok(vec![4]));
        pump.await.expect("pump");
        assert_eq!(rows(&opens[0]).await, Ok(vec![4]));
        assert_eq!(opened.load(Ordering::SeqCst), 2);
    }
}
