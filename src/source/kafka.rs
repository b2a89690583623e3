//! The Kafka backend: bounded reads and producing through librdkafka (rdkafka).
//!
//! Reads follow the rules of a Spark batch read: `assign` every partition at its start offset
//! (no consumer group, no rebalances, no commits), stop each partition once a message at or
//! beyond its end offset has been read or the consumer position has reached the end (offsets
//! have gaps: transaction markers, aborted records under `read_committed`, compaction), and
//! never take a quiet poll for the end of the data: a partition that makes no progress before
//! the deadline is an error that names it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders, Timestamp};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer as _, ProducerContext,
    ThreadedProducer,
};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::{Drain, Watermark};
use super::{Message, OffsetRange, Record, SourceError};

/// Connection settings of a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaLog {
    brokers: String,
    /// librdkafka properties given with `-X key=value`; they override bnetl's defaults.
    properties: Vec<(String, String)>,
    /// Deadline for metadata calls, and for a partition to make progress while reading.
    timeout: Duration,
}

/// bnetl's consumer defaults, tuned for bounded batch reads.
const CONSUMER_DEFAULTS: [(&str, &str); 9] = [
    // librdkafka refuses `assign` without a group id; with assign and no commits the group is
    // never joined and no group's offsets ever move.
    ("group.id", "bnetl"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "false"),
    // A bounded read wants whatever is there now, not to wait for a full fetch.
    ("fetch.wait.max.ms", "10"),
    // librdkafka pauses fetching a partition for fetch.queue.backoff.ms (default 1 s) whenever
    // its local queue holds queued.min.messages (default 100k) or queued.max.messages.kbytes:
    // a bounded read then stalls a second at a time. Measured on 1M events (bench/run.sh):
    // these settings read in ~1.2 s at ~107 MB peak RSS, where the defaults took 2.5 s per
    // 150k events and a 64 MiB queue cost 290 MB of RSS.
    ("fetch.max.bytes", "16777216"),
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "16384"),
    ("fetch.queue.backoff.ms", "1"),
];

impl KafkaLog {
    /// A cluster reached through `brokers` (`host:port,...`).
    pub fn new(brokers: &str, properties: Vec<(String, String)>, timeout: Duration) -> Self {
        KafkaLog {
            brokers: brokers.to_owned(),
            properties,
            timeout,
        }
    }

    /// The bootstrap servers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("client.id", "bnetl");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    fn consumer(&self, topic: &str) -> Result<BaseConsumer, SourceError> {
        self.config(&CONSUMER_DEFAULTS)
            .create()
            .map_err(|source| kafka_error(format!("create a consumer for {topic}"), source))
    }

    /// The `[low, high)` watermarks of every partition of `topic`.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermark>, SourceError> {
        let consumer = self.consumer(topic)?;
        let watermarks = self.watermarks_with(&consumer, topic);
        release(consumer);
        watermarks
    }

    fn watermarks_with(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
    ) -> Result<Vec<Watermark>, SourceError> {
        let partitions = self.partitions(consumer, topic)?;
        let mut watermarks = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, self.timeout)
                .map_err(|source| {
                    kafka_error(format!("read watermarks of {topic}/{partition}"), source)
                })?;
            watermarks.push(Watermark {
                partition,
                low,
                high,
            });
        }
        Ok(watermarks)
    }

    fn partitions(&self, consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, SourceError> {
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|source| {
                kafka_error(
                    format!("read metadata of {topic} from {}", self.brokers),
                    source,
                )
            })?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(self.unknown(topic));
        };
        if found.error().is_some() || found.partitions().is_empty() {
            return Err(self.unknown(topic));
        }
        let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    fn unknown(&self, topic: &str) -> SourceError {
        SourceError::UnknownTopic {
            topic: topic.to_owned(),
            log: format!("Kafka at {}", self.brokers),
        }
    }

    /// Per partition, the first offset whose timestamp is at least `timestamp_ms`.
    pub fn offsets_for_times(
        &self,
        topic: &str,
        timestamp_ms: i64,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, SourceError> {
        let consumer = self.consumer(topic)?;
        let mut query = TopicPartitionList::new();
        for &partition in partitions {
            query
                .add_partition_offset(topic, partition, Offset::Offset(timestamp_ms))
                .map_err(|source| {
                    kafka_error(format!("look up {topic}/{partition} by timestamp"), source)
                })?;
        }
        let answer = consumer
            .offsets_for_times(query, self.timeout)
            .map_err(|source| {
                kafka_error(
                    format!("look up offsets of {topic} by timestamp {timestamp_ms}"),
                    source,
                )
            })?;
        Ok(answer
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    }

    /// Reads `ranges` of `topic`, all partitions at once; see [`super::TopicLog::read`].
    pub fn read(
        &self,
        topic: &str,
        ranges: &[OffsetRange],
        batch_rows: usize,
        on_batch: &mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let mut drain = Drain::new(ranges);
        if drain.is_done() {
            return Ok(());
        }
        let consumer = self.consumer(topic)?;
        let read = self.read_with(&consumer, topic, &mut drain, batch_rows, on_batch);
        release(consumer);
        read
    }

    fn read_with(
        &self,
        consumer: &BaseConsumer,
        topic: &str,
        drain: &mut Drain,
        batch_rows: usize,
        on_batch: &mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let mut assignment = TopicPartitionList::new();
        for range in drain.remaining() {
            assignment
                .add_partition_offset(topic, range.partition, Offset::Offset(range.start))
                .map_err(|source| {
                    kafka_error(format!("assign {topic}/{}", range.partition), source)
                })?;
        }
        consumer
            .assign(&assignment)
            .map_err(|source| kafka_error(format!("assign the partitions of {topic}"), source))?;

        let batch_rows = batch_rows.max(1);
        let mut batch = Vec::with_capacity(batch_rows);
        // The clock is read only on an idle poll or every CLOCK_EVERY polls: reading it per
        // message cost 11% of a 1M-event read (perf).
        const CLOCK_EVERY: u32 = 1024;
        let mut progress_at = Instant::now();
        let mut positions_checked = progress_at;
        let (mut kept, mut kept_at_check) = (0u64, 0u64);
        let mut polls = 0u32;
        while !drain.is_done() {
            let mut drained = Vec::new();
            let polled = consumer.poll(Duration::from_millis(50));
            let idle = polled.is_none();
            match polled {
                Some(Ok(m)) => {
                    let delivered = drain.on_message(m.partition(), m.offset());
                    if delivered.keep {
                        batch.push(owned_message(&m));
                        kept += 1;
                    }
                    if delivered.drained {
                        drained.push(m.partition());
                    }
                }
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange))) => {
                    return Err(SourceError::DataLossDuringRead {
                        topic: topic.to_owned(),
                        partitions: drain.remaining().map(|r| r.partition).collect(),
                    });
                }
                Some(Err(e)) => {
                    // Transport errors are retried by librdkafka; the deadline below decides.
                    tracing::warn!(topic, error = %e, "consumer error while reading");
                }
                None => {}
            }
            polls = polls.wrapping_add(1);
            let mut now = None;
            if idle || polls.is_multiple_of(CLOCK_EVERY) {
                let t = Instant::now();
                now = Some(t);
                if kept != kept_at_check {
                    kept_at_check = kept;
                    progress_at = t;
                }
                if t.duration_since(positions_checked) >= Duration::from_millis(100) {
                    positions_checked = t;
                    // The position passes offsets that are never delivered (transaction
                    // markers, aborted records): a partition whose position reached its end
                    // is drained.
                    if let Ok(positions) = consumer.position() {
                        for element in positions.elements_for_topic(topic) {
                            if let Offset::Offset(position) = element.offset()
                                && drain.on_position(element.partition(), position)
                            {
                                drained.push(element.partition());
                                progress_at = t;
                            }
                        }
                    }
                }
            }
            if !drained.is_empty() {
                let mut paused = TopicPartitionList::new();
                for partition in drained {
                    paused.add_partition(topic, partition);
                    tracing::debug!(topic, partition, "range drained");
                }
                // Stop fetching beyond the snapshot; failing to pause only costs bandwidth.
                let _ = consumer.pause(&paused);
            }
            if batch.len() >= batch_rows || (drain.is_done() && !batch.is_empty()) {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows));
                if on_batch(full).is_break() {
                    return Ok(());
                }
            }
            if let Some(t) = now
                && !drain.is_done()
                && t.duration_since(progress_at) > self.timeout
            {
                return Err(stalled(consumer, topic, drain));
            }
        }
        Ok(())
    }

    /// Starts the producer the game API uses: idempotent, `acks=all`, and a delivery timeout
    /// of `ack_timeout`, so a request is acknowledged only once the broker stored its event.
    pub fn future_producer(&self, ack_timeout: Duration) -> Result<FutureProducer, SourceError> {
        let timeout_ms = ack_timeout.as_millis().max(1).to_string();
        let defaults = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Each request waits for its acknowledgement, so lingering only adds latency;
            // records queued while a produce request is in flight still go out together.
            // Measured with wrk -c 50: 52k req/s at 0 ms, 18.6k at 2 ms.
            ("linger.ms", "0"),
            ("message.timeout.ms", timeout_ms.as_str()),
        ];
        self.config(&defaults).create().map_err(|source| {
            kafka_error(format!("create a producer for {}", self.brokers), source)
        })
    }

    /// Appends `records` to `topic` as fast as the broker takes them (for backfills), and
    /// waits until every one is acknowledged. Returns how many were stored.
    pub fn produce_all(
        &self,
        topic: &str,
        records: impl Iterator<Item = Record>,
    ) -> Result<u64, SourceError> {
        let context = CountingContext::default();
        let failed = Arc::clone(&context.failed);
        let defaults = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("compression.type", "lz4"),
            ("queue.buffering.max.messages", "1000000"),
        ];
        let producer: ThreadedProducer<CountingContext> = self
            .config(&defaults)
            .create_with_context(context)
            .map_err(|source| {
                kafka_error(format!("create a producer for {}", self.brokers), source)
            })?;
        let mut sent = 0u64;
        for record in records {
            let headers = to_kafka_headers(&record.headers);
            let mut base = BaseRecord::<Vec<u8>, Vec<u8>>::to(topic)
                .payload(&record.value)
                .timestamp(record.timestamp_ms);
            if let Some(key) = &record.key {
                base = base.key(key);
            }
            if let Some(partition) = record.partition {
                base = base.partition(partition);
            }
            if let Some(headers) = headers {
                base = base.headers(headers);
            }
            loop {
                match producer.send(base) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        base = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((source, _)) => {
                        return Err(kafka_error(format!("produce to {topic}"), source));
                    }
                }
            }
            sent += 1;
        }
        producer
            .flush(Timeout::After(Duration::from_secs(120)))
            .map_err(|source| kafka_error(format!("flush the records sent to {topic}"), source))?;
        let failed = failed.load(Ordering::SeqCst);
        if failed > 0 {
            return Err(SourceError::NotAcknowledged {
                topic: topic.to_owned(),
                failed,
                sent,
            });
        }
        Ok(sent)
    }
}

/// Sends `record` through the game API's producer and waits for the broker's acknowledgement.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    record: Record,
) -> Result<(i32, i64), SourceError> {
    let mut future = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
        .payload(&record.value)
        .timestamp(record.timestamp_ms);
    if let Some(key) = &record.key {
        future = future.key(key);
    }
    if let Some(headers) = to_kafka_headers(&record.headers) {
        future = future.headers(headers);
    }
    // The queue wait is bounded by message.timeout.ms, set to the request's ack timeout.
    producer
        .send(future, Timeout::Never)
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(source, _)| kafka_error(format!("produce to {topic}"), source))
}

fn to_kafka_headers(headers: &[(String, Option<Vec<u8>>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (key, value) in headers {
        owned = owned.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    Some(owned)
}

fn owned_message(m: &rdkafka::message::BorrowedMessage<'_>) -> Message {
    let (timestamp_ms, timestamp_type) = match m.timestamp() {
        Timestamp::CreateTime(t) => (t, 0),
        Timestamp::LogAppendTime(t) => (t, 1),
        Timestamp::NotAvailable => (-1, -1),
    };
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    Message {
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms,
        timestamp_type,
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// The error for a read that stopped making progress, naming the first stuck partition.
/// Closes a consumer on a thread of its own: librdkafka's close waits for its threads to stop
/// (about 100 ms here, a tenth of a 1M-event read), and nothing waits for it.
fn release(consumer: BaseConsumer) {
    let spawned = std::thread::Builder::new()
        .name("bnetl-kafka-close".into())
        .spawn(move || drop(consumer));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "closing the consumer on this thread");
    }
}

fn stalled(consumer: &BaseConsumer, topic: &str, drain: &Drain) -> SourceError {
    let positions = consumer.position().ok();
    let range = drain
        .remaining()
        .next()
        .expect("stalled() is called only while ranges remain");
    let reached = positions
        .as_ref()
        .and_then(|p| p.find_partition(topic, range.partition))
        .and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .unwrap_or(range.start);
    SourceError::Incomplete {
        topic: topic.to_owned(),
        partition: range.partition,
        reached,
        end: range.end,
    }
}

fn kafka_error(action: String, source: KafkaError) -> SourceError {
    SourceError::Kafka { action, source }
}

/// Counts records the broker did not acknowledge.
#[derive(Default)]
struct CountingContext {
    failed: Arc<AtomicU64>,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::SeqCst) == 0
        {
            tracing::error!(error = %e, "a record was not acknowledged");
        }
    }
}
