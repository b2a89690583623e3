//! The Kafka backend: bounded reads and producing through librdkafka (rdkafka).
//!
//! Reads follow the rules of a Spark batch read: `assign` every partition at its start offset
//! (no consumer group, no rebalances, no commits), stop each partition once a message at or
//! beyond its end offset has been read or the consumer position has reached the end (offsets
//! have gaps: transaction markers, aborted records under `read_committed`, compaction), and
//! never take a quiet poll for the end of the data: a partition that makes no progress before
//! the deadline is an error that names it.
//!
//! Every client carries a [`KafkaContext`]: librdkafka's log lines go to bnetl's log (target
//! `librdkafka`, e.g. `BNETL_LOG=librdkafka=debug`), and a broker that refuses the client
//! (authentication or TLS failure) stops a metadata call or a read at once with librdkafka's
//! own reason instead of running into the no-progress deadline.
//!
//! Reads use librdkafka's default `isolation.level=read_committed`: the end offsets are then the
//! last stable offsets, records of aborted transactions are skipped and an open transaction's
//! records wait for the next run. `-X isolation.level=read_uncommitted` reads as Spark's Kafka
//! source does by default.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
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

/// The client context of every consumer and producer bnetl creates: it sends librdkafka's log
/// lines and error events to bnetl's log.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaContext;

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_line(level as i32, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Transport errors (a broker going away) are retried by librdkafka.
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

/// One librdkafka log line (syslog level) in bnetl's log, target `librdkafka`.
fn log_line(level: i32, facility: &str, message: &str) {
    match level {
        ..=3 => tracing::error!(target: "librdkafka", facility, "{message}"),
        4 => tracing::warn!(target: "librdkafka", facility, "{message}"),
        5 | 6 => tracing::info!(target: "librdkafka", facility, "{message}"),
        _ => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Whether an error means the cluster refused this client (credentials, TLS): retrying cannot
/// help, so a read stops at once with librdkafka's reason.
fn is_refusal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::SSL
    )
}

impl rdkafka::consumer::ConsumerContext for KafkaContext {}

/// How often a call that waits on the cluster checks whether a broker refused the client.
const REFUSAL_CHECK: Duration = Duration::from_millis(250);

/// How long the game API's producer keeps delivering an event (librdkafka's
/// `message.timeout.ms`) at least: longer than a leader election.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// bnetl's consumer defaults, tuned for bounded batch reads.
const CONSUMER_DEFAULTS: [(&str, &str); 10] = [
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
    // a bounded read then stalls a second at a time (the defaults took 2.5 s per 150k events).
    // The queue's bound counts messages once decompressed, but it is checked before a fetch,
    // and a fetch is sized in compressed bytes: the seed's events compress 18x with lz4, so a
    // 16 MiB fetch brought the whole 1M-event test topic at once and a run's peak RSS grew
    // with the topic (real Kafka 4, 4 partitions: 377-397 MiB at 1M events, 536 MiB at 10M).
    // Fetches of 64 KiB per partition and 1 MB in all (the least librdkafka takes:
    // message.max.bytes; a larger record batch still comes whole) and a 1 MiB queue:
    // 218-241 MiB at 1M, 276-295 MiB at 10M, as on the embedded log, and no slower (1M:
    // 1.12 vs 1.38 s, medians of 11 runs each in one hyperfine run).
    ("max.partition.fetch.bytes", "65536"),
    ("fetch.max.bytes", "1000000"),
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "1024"),
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
        // librdkafka writes debug lines only for the contexts named in `debug`.
        if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
            config.set("debug", "generic,broker,topic,consumer,security");
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    fn consumer(
        &self,
        topic: &str,
    ) -> Result<(BaseConsumer<KafkaContext>, ClientEvents), SourceError> {
        let consumer: BaseConsumer<KafkaContext> = self
            .config(&CONSUMER_DEFAULTS)
            .create_with_context(KafkaContext)
            .map_err(|source| kafka_error(format!("create a consumer for {topic}"), source))?;
        let events = ClientEvents::new(&consumer);
        Ok((consumer, events))
    }

    /// Serves `events`; the error for a client that a broker refused, if one did.
    fn refused(&self, events: &ClientEvents) -> Option<SourceError> {
        events.serve().map(|reason| self.refusal(reason))
    }

    fn refusal(&self, reason: String) -> SourceError {
        SourceError::Refused {
            brokers: self.brokers.clone(),
            reason,
        }
    }

    /// The `[low, high)` watermarks of every partition of `topic`.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermark>, SourceError> {
        let (consumer, events) = self.consumer(topic)?;
        let watermarks = self.watermarks_with(&consumer, &events, topic);
        release(consumer, events);
        watermarks
    }

    fn watermarks_with(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        events: &ClientEvents,
        topic: &str,
    ) -> Result<Vec<Watermark>, SourceError> {
        let partitions = self.partitions(consumer, events, topic)?;
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

    fn partitions(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        events: &ClientEvents,
        topic: &str,
    ) -> Result<Vec<i32>, SourceError> {
        // Asked in short rounds, so that a broker refusing the client ends the wait at once.
        let deadline = Instant::now() + self.timeout;
        let metadata = loop {
            let round = deadline
                .saturating_duration_since(Instant::now())
                .min(REFUSAL_CHECK);
            match consumer.fetch_metadata(Some(topic), round) {
                Ok(metadata) => break metadata,
                Err(source) => {
                    if let Some(refused) = self.refused(events) {
                        return Err(refused);
                    }
                    if Instant::now() >= deadline {
                        return Err(kafka_error(
                            format!("read metadata of {topic} from {}", self.brokers),
                            source,
                        ));
                    }
                }
            }
        };
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
        let (consumer, events) = self.consumer(topic)?;
        let answer = self.offsets_for_times_with(&consumer, topic, timestamp_ms, partitions);
        release(consumer, events);
        answer
    }

    fn offsets_for_times_with(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        topic: &str,
        timestamp_ms: i64,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, SourceError> {
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
        let (consumer, events) = self.consumer(topic)?;
        let read = self.read_with(&consumer, &events, topic, &mut drain, batch_rows, on_batch);
        release(consumer, events);
        read
    }

    fn read_with(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        events: &ClientEvents,
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
        let mut queue = MessageQueue::new(consumer, topic, POLL_BATCH)?;
        let mut progress_at = Instant::now();
        let mut positions_checked = progress_at;
        while !drain.is_done() {
            let mut drained = Vec::new();
            let mut lost = false;
            let mut kept = 0usize;
            queue.poll(Duration::from_millis(50), |polled| match polled {
                Polled::Message(m) => {
                    let delivered = drain.on_message(m.partition, m.offset);
                    if delivered.drained {
                        drained.push(m.partition);
                    }
                    if delivered.keep {
                        batch.push(m);
                        kept += 1;
                    }
                }
                Polled::Error {
                    code: RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
                    ..
                } => lost = true,
                // Transport errors are retried by librdkafka; the deadline below decides.
                Polled::Error { code, message } => {
                    tracing::warn!(topic, error = %code, "consumer error while reading: {message}");
                }
            });
            if lost {
                return Err(SourceError::DataLossDuringRead {
                    topic: topic.to_owned(),
                    partitions: drain.remaining().map(|r| r.partition).collect(),
                });
            }
            // Progress is a message inside the ranges; consumer errors (a broker that is down)
            // and records past a drained range do not count.
            let now = Instant::now();
            if kept > 0 {
                progress_at = now;
            }
            if now.duration_since(positions_checked) >= Duration::from_millis(100) {
                positions_checked = now;
                // The position passes offsets that are never delivered (transaction markers,
                // aborted records): a partition whose position reached its end is drained.
                if let Ok(positions) = consumer.position() {
                    for element in positions.elements_for_topic(topic) {
                        if let Offset::Offset(position) = element.offset()
                            && drain.on_position(element.partition(), position)
                        {
                            drained.push(element.partition());
                            progress_at = now;
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
            if let Some(refused) = self.refused(events) {
                return Err(refused);
            }
            if !drain.is_done() && now.duration_since(progress_at) > self.timeout {
                return Err(stalled(consumer, topic, drain));
            }
        }
        Ok(())
    }

    /// Starts the producer the game API uses: idempotent and `acks=all`, so a request is
    /// acknowledged only once the broker stored its event. The request waits `ack_timeout`
    /// (then 503); librdkafka goes on delivering for at least [`DELIVERY_TIMEOUT`]: a message
    /// that times out in an idempotent producer makes it bump its epoch and send the batches
    /// still in flight again under new sequence numbers, so one already stored by a leader
    /// that then died was stored twice (seen once in `tests/cli_kafka_failover.rs` with an
    /// 8 s election and a 5 s delivery timeout). A 503 means "not confirmed": the event may
    /// still be stored.
    pub fn future_producer(
        &self,
        ack_timeout: Duration,
    ) -> Result<FutureProducer<KafkaContext>, SourceError> {
        let timeout_ms = ack_timeout.max(DELIVERY_TIMEOUT).as_millis().to_string();
        let defaults = [
            ("enable.idempotence", "true"),
            ("acks", "all"),
            // Each request waits for its acknowledgement, so lingering only adds latency;
            // records queued while a produce request is in flight still go out together.
            // Measured with wrk -c 50: 52k req/s at 0 ms, 18.6k at 2 ms.
            ("linger.ms", "0"),
            ("message.timeout.ms", timeout_ms.as_str()),
        ];
        self.config(&defaults)
            .create_with_context(KafkaContext)
            .map_err(|source| {
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
    producer: &FutureProducer<KafkaContext>,
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

/// A client's main queue, which carries librdkafka's log lines and error events. rdkafka
/// forwards it to the consumer's queue, where `rd_kafka_consume_batch_queue` would print them
/// on stderr itself; this takes it back so that [`ClientEvents::serve`] hands them to bnetl's
/// log and sees a refusal (authentication, TLS) with librdkafka's reason.
struct ClientEvents {
    queue: *mut rdsys::rd_kafka_queue_t,
}

impl ClientEvents {
    fn new(consumer: &BaseConsumer<KafkaContext>) -> Self {
        // SAFETY: `native_ptr` is the consumer's live handle; the queue reference taken here is
        // released in `drop`, before the consumer is released (see `release`).
        let queue = unsafe { rdsys::rd_kafka_queue_get_main(consumer.client().native_ptr()) };
        if !queue.is_null() {
            // SAFETY: a valid queue; forwarding to null stops the forwarding.
            unsafe { rdsys::rd_kafka_queue_forward(queue, std::ptr::null_mut()) };
        }
        ClientEvents { queue }
    }

    /// Logs every queued event; returns librdkafka's reason if one says the cluster refused
    /// this client.
    fn serve(&self) -> Option<String> {
        if self.queue.is_null() {
            return None;
        }
        let text = |p: *const std::ffi::c_char| {
            if p.is_null() {
                String::new()
            } else {
                // SAFETY: librdkafka's NUL-terminated strings, valid until the event is destroyed.
                unsafe { std::ffi::CStr::from_ptr(p) }
                    .to_string_lossy()
                    .into_owned()
            }
        };
        let mut refused = None;
        loop {
            // SAFETY: a valid queue; a null event means it is empty.
            let event = unsafe { rdsys::rd_kafka_queue_poll(self.queue, 0) };
            if event.is_null() {
                return refused;
            }
            // SAFETY: `event` is valid until `rd_kafka_event_destroy` below.
            match unsafe { rdsys::rd_kafka_event_type(event) } {
                rdsys::RD_KAFKA_EVENT_LOG => {
                    let (mut facility, mut message, mut level) =
                        (std::ptr::null(), std::ptr::null(), 0);
                    // SAFETY: a log event; the out-pointers are written.
                    unsafe {
                        rdsys::rd_kafka_event_log(event, &mut facility, &mut message, &mut level)
                    };
                    log_line(level, &text(facility), &text(message));
                }
                rdsys::RD_KAFKA_EVENT_ERROR => {
                    // SAFETY: an error event.
                    let code =
                        RDKafkaErrorCode::from(unsafe { rdsys::rd_kafka_event_error(event) });
                    let reason = text(unsafe { rdsys::rd_kafka_event_error_string(event) });
                    if is_refusal(code) {
                        refused.get_or_insert(reason);
                    } else {
                        // Transport errors (a broker going away) are retried by librdkafka.
                        tracing::warn!(target: "librdkafka", error = %code, "{reason}");
                    }
                }
                _ => {}
            }
            // SAFETY: destroys the event polled above.
            unsafe { rdsys::rd_kafka_event_destroy(event) };
        }
    }
}

impl Drop for ClientEvents {
    fn drop(&mut self) {
        if !self.queue.is_null() {
            // SAFETY: releases the reference taken in `new`.
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}

/// Messages taken from the consumer's queue per call.
const POLL_BATCH: usize = 1024;

/// What one entry of the consumer's queue holds.
enum Polled {
    Message(Message),
    Error {
        code: RDKafkaErrorCode,
        message: String,
    },
}

/// The consumer's queue read through librdkafka's batch call (`rd_kafka_consume_batch_queue`),
/// as kcat reads: one call hands over up to [`POLL_BATCH`] messages, where
/// `BaseConsumer::poll` takes one message per call and reads the clock several times for it
/// (7% of a 1M-event read in perf).
struct MessageQueue {
    queue: *mut rdsys::rd_kafka_queue_t,
    taken: Vec<*mut rdsys::rd_kafka_message_t>,
}

impl MessageQueue {
    fn new(
        consumer: &BaseConsumer<KafkaContext>,
        topic: &str,
        capacity: usize,
    ) -> Result<Self, SourceError> {
        // SAFETY: `native_ptr` is the consumer's live handle; the queue reference taken here is
        // released in `drop`, which runs before the consumer is dropped (it borrows it).
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if queue.is_null() {
            return Err(kafka_error(
                format!("read the consumer queue of {topic}"),
                KafkaError::ClientCreation("no consumer queue".into()),
            ));
        }
        Ok(MessageQueue {
            queue,
            taken: vec![std::ptr::null_mut(); capacity.max(1)],
        })
    }

    /// Waits up to `timeout` for messages and hands each to `each`.
    fn poll(&mut self, timeout: Duration, mut each: impl FnMut(Polled)) {
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `taken` has room for `taken.len()` pointers; librdkafka fills the first `n`.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue,
                timeout_ms,
                self.taken.as_mut_ptr(),
                self.taken.len(),
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(self.taken.len());
        for &message in &self.taken[..n] {
            // SAFETY: each pointer is a message librdkafka handed over and owns until
            // `rd_kafka_message_destroy`, called right after it is copied.
            let polled = unsafe { polled(message) };
            unsafe { rdsys::rd_kafka_message_destroy(message) };
            each(polled);
        }
    }
}

impl Drop for MessageQueue {
    fn drop(&mut self) {
        // SAFETY: releases the reference taken in `new`.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
    }
}

/// Copies one message out of librdkafka.
///
/// # Safety
/// `message` must be a valid message from `rd_kafka_consume_batch_queue`, not yet destroyed.
unsafe fn polled(message: *mut rdsys::rd_kafka_message_t) -> Polled {
    // SAFETY: valid per the caller.
    let m = unsafe { &*message };
    if m.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // An error's payload is librdkafka's description of it.
        let message = if m.payload.is_null() {
            String::new()
        } else {
            // SAFETY: librdkafka's pointer/length pair of the error text.
            String::from_utf8_lossy(unsafe {
                std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len)
            })
            .into_owned()
        };
        return Polled::Error {
            code: RDKafkaErrorCode::from(m.err),
            message,
        };
    }
    // SAFETY: librdkafka's pointer/length pairs; null means absent.
    let bytes = |data: *mut std::ffi::c_void, len: usize| {
        (!data.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec())
    };
    let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    // SAFETY: `message` is valid; `kind` is written.
    let timestamp = unsafe { rdsys::rd_kafka_message_timestamp(message, &mut kind) };
    let (timestamp_ms, timestamp_type) = match kind {
        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => (timestamp, 0),
        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => (timestamp, 1),
        _ => (-1, -1),
    };
    let mut headers = Vec::new();
    let mut native: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message` is valid; `native` stays owned by the message.
    let found = unsafe { rdsys::rd_kafka_message_headers(message, &mut native) };
    if found == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && !native.is_null() {
        for index in 0.. {
            let mut name: *const std::ffi::c_char = std::ptr::null();
            let mut value: *const std::ffi::c_void = std::ptr::null();
            let mut size = 0usize;
            // SAFETY: `native` is the message's header list; out-pointers are written.
            let got = unsafe {
                rdsys::rd_kafka_header_get_all(native, index, &mut name, &mut value, &mut size)
            };
            if got != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            // SAFETY: librdkafka's NUL-terminated header name.
            let name = unsafe { std::ffi::CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            headers.push((name, bytes(value.cast_mut(), size)));
        }
    }
    Polled::Message(Message {
        partition: m.partition,
        offset: m.offset,
        timestamp_ms,
        timestamp_type,
        key: bytes(m.key, m.key_len).map(Bytes::from),
        value: bytes(m.payload, m.len).map(Bytes::from),
        headers,
    })
}

/// The error for a read that stopped making progress, naming the first stuck partition.
/// Closes a consumer on a thread of its own: librdkafka's close waits for its threads to stop
/// (about 100 ms here, a tenth of a 1M-event read), and nothing waits for it.
fn release(consumer: BaseConsumer<KafkaContext>, events: ClientEvents) {
    events.serve();
    drop(events);
    let spawned = std::thread::Builder::new()
        .name("bnetl-kafka-close".into())
        .spawn(move || drop(consumer));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "closing the consumer on this thread");
    }
}

fn stalled(consumer: &BaseConsumer<KafkaContext>, topic: &str, drain: &Drain) -> SourceError {
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

/// Counts records the broker did not acknowledge; logs as [`KafkaContext`] does.
#[derive(Default)]
struct CountingContext {
    failed: Arc<AtomicU64>,
}

impl ClientContext for CountingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        KafkaContext.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        KafkaContext.error(error, reason);
    }
}

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
