//! The game API's producer: [`Producer::send`] returns only once the record is stored, so a
//! caller that answers its client after `send` never acknowledges an event that could be lost.
//!
//! On the embedded log, many concurrent senders feed one writer thread, which drains whatever
//! is queued into one transaction: the per-commit `fsync` is shared under load (group commit)
//! without delaying a lone request. On Kafka, an idempotent `acks=all` producer waits for the
//! broker's acknowledgement, bounded by the ack timeout.

use std::fmt;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer as _};
use tokio::sync::{mpsc, oneshot};

use super::{EmbeddedLog, Record, SourceError, TopicLog, kafka};

/// Most records committed in one transaction.
const MAX_GROUP: usize = 4096;
/// Queue depth between request handlers and the writer thread.
const QUEUE: usize = 16 * 1024;

type Ack = oneshot::Sender<Result<(i32, i64), String>>;

/// Cloneable handle that appends records to one topic.
#[derive(Clone)]
pub struct Producer {
    topic: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Embedded(mpsc::Sender<(Record, Ack)>),
    Kafka(FutureProducer<kafka::KafkaContext>),
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Kafka(_) => "kafka",
        };
        f.debug_struct("Producer")
            .field("topic", &self.topic)
            .field("backend", &backend)
            .finish()
    }
}

/// What [`ProducerThread::finish`] waits for: the embedded writer thread to commit everything
/// queued, or Kafka's in-flight records to be acknowledged.
pub enum ProducerThread {
    /// The embedded log's writer thread.
    Embedded(JoinHandle<()>),
    /// Kafka's producer, flushed on finish.
    Kafka(FutureProducer<kafka::KafkaContext>),
}

impl Producer {
    /// Starts a producer for `topic` on `log`; Kafka deliveries time out after `ack_timeout`.
    pub fn start(
        log: &TopicLog,
        topic: &str,
        ack_timeout: Duration,
    ) -> Result<(Producer, ProducerThread), SourceError> {
        match log {
            TopicLog::Embedded(log) => Self::start_embedded(log, topic),
            TopicLog::Kafka(log) => {
                let producer = log.future_producer(ack_timeout)?;
                Ok((
                    Producer {
                        topic: topic.to_owned(),
                        backend: Backend::Kafka(producer.clone()),
                    },
                    ProducerThread::Kafka(producer),
                ))
            }
        }
    }

    fn start_embedded(
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
                backend: Backend::Embedded(tx),
            },
            ProducerThread::Embedded(handle),
        ))
    }

    /// Appends one record and waits until it is stored. Returns its `(partition, offset)`.
    pub async fn send(&self, record: Record) -> Result<(i32, i64), SourceError> {
        let tx = match &self.backend {
            Backend::Embedded(tx) => tx,
            Backend::Kafka(producer) => return kafka::send(producer, &self.topic, record).await,
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        let gone = || SourceError::WriterGone {
            topic: self.topic.clone(),
        };
        tx.send((record, ack_tx)).await.map_err(|_| gone())?;
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
    /// Blocks until every queued record is stored: for the embedded log, once every `Producer`
    /// clone is dropped and the writer has committed; for Kafka, once in-flight records are
    /// acknowledged (or failed, and their requests were answered 503).
    pub fn finish(self) {
        match self {
            ProducerThread::Embedded(handle) => {
                if handle.join().is_err() {
                    tracing::error!("the log writer thread panicked");
                }
            }
            ProducerThread::Kafka(producer) => {
                if let Err(e) = producer.flush(Duration::from_secs(30)) {
                    tracing::error!(error = %e, "in-flight events were not acknowledged before shutdown");
                }
            }
        }
    }
}
