//! Real Apache Kafka for the tests: KRaft nodes (`testinfra/bin/kafka-node`, the jars Maven
//! fetched from `testinfra/pom.xml`) started on loopback ports. One single-node cluster is
//! shared by the tests of a test binary, each test on topics of its own; failover tests start
//! a three-node cluster of their own. Readiness is a metadata request that sees every node.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::infra::{Guarded, ensure_jars, free_port, testinfra};

/// The SASL/PLAIN user of the clusters' SASL_PLAINTEXT listener.
pub const SASL_USER: &str = "alice";
pub const SASL_PASSWORD: &str = "alice-secret";

/// One KRaft node (broker and controller in one process).
struct Node {
    id: i32,
    server: Guarded,
}

/// A running Kafka cluster.
pub struct KafkaCluster {
    nodes: Mutex<Vec<Node>>,
    /// `host:port,...` of the PLAINTEXT listeners.
    brokers: String,
    /// `host:port,...` of the SASL_PLAINTEXT listeners.
    sasl_brokers: String,
    _dir: tempfile::TempDir,
}

impl KafkaCluster {
    /// The single-node cluster shared by the tests of this test binary.
    pub fn shared() -> &'static KafkaCluster {
        static SHARED: OnceLock<KafkaCluster> = OnceLock::new();
        SHARED.get_or_init(|| KafkaCluster::start(1))
    }

    /// Starts a cluster of `count` nodes; internal topics get replication factor `count`.
    pub fn start(count: usize) -> KafkaCluster {
        ensure_jars();
        let dir = tempfile::tempdir().expect("temp dir");
        let ids: Vec<i32> = (1..=count as i32).collect();
        let ports: Vec<(u16, u16, u16)> = ids
            .iter()
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let voters = ids
            .iter()
            .zip(&ports)
            .map(|(id, (_, controller, _))| format!("{id}@127.0.0.1:{controller}"))
            .collect::<Vec<_>>()
            .join(",");
        let started = Instant::now();
        let nodes: Vec<Node> = ids
            .iter()
            .zip(&ports)
            .map(|(&id, &(port, controller, sasl))| {
                let node_dir = dir.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&node_dir).expect("node dir");
                let args: Vec<String> = [
                    "--dir",
                    node_dir.to_str().expect("utf-8 temp dir"),
                    "--node-id",
                    &id.to_string(),
                    "--port",
                    &port.to_string(),
                    "--controller-port",
                    &controller.to_string(),
                    "--sasl-port",
                    &sasl.to_string(),
                    "--voters",
                    &voters,
                    "--replication-factor",
                    &count.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let server = Guarded::spawn(
                    &testinfra().join("bin/kafka-node"),
                    &args,
                    &node_dir.join("server.log"),
                );
                Node { id, server }
            })
            .collect();
        let join = |ports: &mut dyn Iterator<Item = u16>| {
            ports
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let cluster = KafkaCluster {
            brokers: join(&mut ports.iter().map(|p| p.0)),
            sasl_brokers: join(&mut ports.iter().map(|p| p.2)),
            nodes: Mutex::new(nodes),
            _dir: dir,
        };
        cluster.wait_until_ready(count);
        eprintln!(
            "kafka: {count} node(s) ready at {} in {:.1} s",
            cluster.brokers,
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    /// Waits until a metadata request lists `count` brokers.
    fn wait_until_ready(&self, count: usize) {
        let consumer: BaseConsumer = self.client_config().create().expect("probe consumer");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(metadata) = consumer.fetch_metadata(None, Duration::from_secs(1))
                && metadata.brokers().len() == count
            {
                return;
            }
            for node in self.nodes.lock().expect("nodes").iter() {
                assert!(
                    node.server.is_running(),
                    "Kafka node {} exited; its log:\n{}",
                    node.id,
                    node.server.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Kafka did not become ready at {}",
                self.brokers
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `host:port,...` of the PLAINTEXT listeners.
    pub fn brokers(&self) -> String {
        self.brokers.clone()
    }

    /// `host:port,...` of the SASL_PLAINTEXT (PLAIN) listeners.
    pub fn sasl_brokers(&self) -> String {
        self.sasl_brokers.clone()
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config
    }

    /// Creates a topic named after `name` and made unique; returns its name.
    pub fn topic(&self, name: &str, partitions: i32) -> String {
        self.topic_with(name, partitions, &[])
    }

    /// Creates a unique topic with replication factor as large as the cluster, and `configs`.
    pub fn topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> String {
        let topic = format!("test-{name}-{}", uuid::Uuid::now_v7().simple());
        let replication = self.nodes.lock().expect("nodes").len() as i32;
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let mut new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(replication));
        for (key, value) in configs {
            new = new.set(key, value);
        }
        let results = futures::executor::block_on(admin.create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create topics");
        for result in results {
            result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
        self.wait_for_leaders(&topic, partitions);
        topic
    }

    /// Waits until every partition of `topic` has a leader.
    fn wait_for_leaders(&self, topic: &str, partitions: i32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while (0..partitions).any(|p| self.leader(topic, p).is_none()) {
            assert!(Instant::now() < deadline, "{topic} has no leaders");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node leading `topic`/`partition`, if it has a leader.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let consumer: BaseConsumer = self.client_config().create().expect("probe consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()?;
        let found = metadata.topics().iter().find(|t| t.name() == topic)?;
        let leader = found
            .partitions()
            .iter()
            .find(|p| p.id() == partition)?
            .leader();
        (leader >= 0 && found.error().is_none()).then_some(leader)
    }

    /// kill -9 of node `id`.
    pub fn kill(&self, id: i32) {
        let nodes = self.nodes.lock().expect("nodes");
        let node = nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a node of this id");
        node.server.kill9();
    }

    fn producer(&self, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
        let mut config = self.client_config();
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().expect("test producer")
    }

    /// Produces each `(partition, value)` and waits for every acknowledgement.
    pub fn produce(&self, topic: &str, records: &[(i32, Vec<u8>)]) {
        self.produce_with(topic, records, &[]);
    }

    /// [`produce`](Self::produce) with extra producer properties (e.g. `compression.type`).
    pub fn produce_with(&self, topic: &str, records: &[(i32, Vec<u8>)], extra: &[(&str, &str)]) {
        let mut config = vec![("acks", "all"), ("linger.ms", "5")];
        config.extend_from_slice(extra);
        let producer = self.producer(&config);
        for (partition, value) in records {
            send(
                &producer,
                BaseRecord::<(), Vec<u8>>::to(topic)
                    .partition(*partition)
                    .payload(value),
            );
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }

    /// Produces one record with a key, headers (`None` values are null headers) and, if given,
    /// an explicit CreateTime timestamp.
    pub fn produce_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(&str, Option<&[u8]>)],
        timestamp_ms: Option<i64>,
    ) {
        let producer = self.producer(&[("acks", "all")]);
        let mut owned = rdkafka::message::OwnedHeaders::new();
        for (name, header_value) in headers {
            owned = owned.insert(rdkafka::message::Header {
                key: name,
                value: *header_value,
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .payload(value)
            .headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(ts) = timestamp_ms {
            record = record.timestamp(ts);
        }
        send(&producer, record);
        producer.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Produces `batches` to partition 0 in transactions: `(values, commit)`. Each transaction
    /// ends with a control record (commit or abort marker) in the log.
    pub fn produce_transactions(&self, topic: &str, batches: &[(Vec<Vec<u8>>, bool)]) {
        let id = format!("bnetl-test-{}", uuid::Uuid::now_v7().simple());
        let producer = self.producer(&[("transactional.id", &id), ("acks", "all")]);
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init transactions");
        for (values, commit) in batches {
            producer.begin_transaction().expect("begin");
            for value in values {
                send(
                    &producer,
                    BaseRecord::<(), Vec<u8>>::to(topic)
                        .partition(0)
                        .payload(value),
                );
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

    /// Deletes the records of `topic`/`partition` below `offset` (DeleteRecords).
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().expect("admin client");
        let mut below = TopicPartitionList::new();
        below
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("offset");
        let deleted =
            futures::executor::block_on(admin.delete_records(&below, &AdminOptions::new()))
                .expect("delete records");
        for element in deleted.elements() {
            element.error().expect("records deleted");
        }
    }

    /// `(low, high)` watermarks of `topic`/`partition`.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        let consumer: BaseConsumer = self.client_config().create().expect("probe consumer");
        consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks")
    }
}

/// Queues `record`, waiting while the producer's queue is full.
fn send<K, P>(producer: &ThreadedProducer<DefaultProducerContext>, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("cannot queue a record: {e}"),
        }
    }
}
