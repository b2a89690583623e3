//! A real Kafka-protocol broker for the tests: librdkafka's mock cluster, listening on a
//! loopback port for as long as the test holds it, so `bnetl` child processes connect to it
//! like to any Kafka cluster.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

pub struct Kafka {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Kafka {
    /// A one-broker cluster with `topic` of `partitions` partitions.
    pub fn with_topic(topic: &str, partitions: i32) -> Self {
        let cluster = MockCluster::new(1).expect("start librdkafka's mock cluster");
        cluster
            .create_topic(topic, partitions, 1)
            .expect("create topic");
        Kafka { cluster }
    }

    pub fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    fn producer(&self, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers());
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().expect("test producer")
    }

    /// Produces each `(partition, value)` and waits for every acknowledgement. Record batches
    /// hold at most 100 records, so reads that fetch little at a time take many fetches.
    pub fn produce(&self, topic: &str, records: &[(i32, Vec<u8>)]) {
        let producer = self.producer(&[("acks", "all"), ("batch.num.messages", "100")]);
        for (partition, value) in records {
            producer
                .send(
                    BaseRecord::<(), Vec<u8>>::to(topic)
                        .partition(*partition)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .expect("queue record");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Produces one record with a key and headers (`None` values are null headers).
    pub fn produce_keyed(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let producer = self.producer(&[("acks", "all")]);
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (name, header_value) in headers {
            owned = owned.insert(rdkafka::message::Header {
                key: name,
                value: *header_value,
            });
        }
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(0)
                    .key(key)
                    .payload(value)
                    .headers(owned),
            )
            .map_err(|(e, _)| e)
            .expect("queue record");
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Produces `batches` in transactions: `(values, commit)`; aborted ones stay in the log as
    /// records that read_committed consumers skip, each followed by a control record.
    pub fn produce_transactions(&self, topic: &str, batches: &[(Vec<Vec<u8>>, bool)]) {
        let producer = self.producer(&[("transactional.id", "bnetl-test"), ("acks", "all")]);
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init transactions");
        for (values, commit) in batches {
            producer.begin_transaction().expect("begin");
            for value in values {
                producer
                    .send(
                        BaseRecord::<(), Vec<u8>>::to(topic)
                            .partition(0)
                            .payload(value),
                    )
                    .map_err(|(e, _)| e)
                    .expect("queue record");
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
            if *commit {
                producer
                    .commit_transaction(Duration::from_secs(30))
                    .expect("commit");
            } else {
                producer
                    .abort_transaction(Duration::from_secs(30))
                    .expect("abort");
            }
        }
    }
}
