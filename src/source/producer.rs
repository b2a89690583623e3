//! Group-committing producer for the embedded log: many concurrent senders, one writer thread.
//!
//! Each [`Producer::send`] waits until its record's transaction has committed, so a caller that
//! answers its client after `send` returns never acknowledges an event that could be lost. The
//! writer drains whatever is queued into one transaction, which makes the per-commit `fsync`
//! cheap under load (group commit) without delaying a lone request.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::{EmbeddedLog, Record, SourceError};

/// Most records committed in one transaction.
const MAX_GROUP: usize = 4096;
/// Queue depth between request handlers and the writer thread.
const QUEUE: usize = 16 * 1024;

type Ack = oneshot::Sender<Result<(i32, i64), String>>;

/// Cloneable handle that appends records to one topic.
#[derive(Debug, Clone)]
pub struct Producer {
    topic: String,
    tx: mpsc::Sender<(Record, Ack)>,
}

/// The writer thread; [`ProducerThread::finish`] waits until every queued record is committed.
#[derive(Debug)]
pub struct ProducerThread(JoinHandle<()>);

impl Producer {
    /// Opens the log for writing and starts the writer thread for `topic`.
    pub fn start(
        log: &EmbeddedLog,
        topic: &str,
    ) -> Result<(Producer, ProducerThread), SourceError> {
        let mut writer = log.writer()?;
        writer.ensure_topic(topic, 1)?;
        let (tx, mut rx) = mpsc::channel::<(Record, Ack)>(QUEUE);
        let thread_topic = topic.to_owned();
        let handle = std::thread::Builder::new()
            .name("bnetl-log-writer".into())
            .spawn(move || {
                let mut records = Vec::with_capacity(MAX_GROUP);
                let mut acks = Vec::with_capacity(MAX_GROUP);
                while let Some((record, ack)) = rx.blocking_recv() {
                    records.push(record);
                    acks.push(ack);
                    while records.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok((record, ack)) => {
                                records.push(record);
                                acks.push(ack);
                            }
                            Err(_) => break,
                        }
                    }
                    match writer.append(&thread_topic, &records) {
                        Ok(positions) => {
                            for (ack, position) in acks.drain(..).zip(positions) {
                                // A handler that gave up (client gone) no longer listens.
                                let _ = ack.send(Ok(position));
                            }
                        }
                        Err(e) => {
                            tracing::error!(topic = thread_topic, records = records.len(), error = %crate::error::chain(&e), "append failed");
                            let message = e.to_string();
                            for ack in acks.drain(..) {
                                let _ = ack.send(Err(message.clone()));
                            }
                        }
                    }
                    records.clear();
                }
            })
            .map_err(|e| SourceError::Open {
                path: log.path().to_owned(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok((
            Producer {
                topic: topic.to_owned(),
                tx,
            },
            ProducerThread(handle),
        ))
    }

    /// Appends one record and waits for its commit. Returns its `(partition, offset)`.
    pub async fn send(&self, record: Record) -> Result<(i32, i64), SourceError> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let gone = || SourceError::WriterGone {
            topic: self.topic.clone(),
        };
        self.tx.send((record, ack_tx)).await.map_err(|_| gone())?;
        match ack_rx.await.map_err(|_| gone())? {
            Ok(position) => Ok(position),
            Err(message) => {
                tracing::warn!(topic = self.topic, error = message, "record not stored");
                Err(gone())
            }
        }
    }
}

impl ProducerThread {
    /// Blocks until every `Producer` clone is dropped and all queued records are committed.
    pub fn finish(self) {
        if self.0.join().is_err() {
            tracing::error!("the log writer thread panicked");
        }
    }
}
