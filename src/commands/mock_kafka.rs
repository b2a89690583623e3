//! `bnetl mock-kafka`: librdkafka's in-memory mock Kafka cluster on a loopback port, to try the
//! Kafka path (`--brokers`) or run the Kafka benchmarks on a machine without a broker. It speaks
//! the real Kafka protocol, but keeps at most 5 MiB per partition and is not for production.

use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use crate::cli::MockKafkaArgs;
use crate::error::{Error, Result};

/// Runs the mock cluster until `shutdown`; prints its bootstrap servers on stdout.
pub async fn run(topic: &str, args: &MockKafkaArgs, shutdown: CancellationToken) -> Result<()> {
    let failed = |what: &str, e: rdkafka::error::KafkaError| {
        Error::io(format!("{what} in librdkafka's mock cluster"))(std::io::Error::other(e))
    };
    let cluster = MockCluster::new(args.broker_count).map_err(|e| failed("start", e))?;
    cluster
        .create_topic(topic, args.partitions, 1)
        .map_err(|e| failed(&format!("create topic {topic}"), e))?;
    println!("{}", cluster.bootstrap_servers());
    eprintln!(
        "bnetl: mock Kafka cluster at {} with topic {topic} ({} partitions); not for production: it keeps at most 5 MiB per partition. Ctrl-C stops it.",
        cluster.bootstrap_servers(),
        args.partitions
    );
    shutdown.cancelled().await;
    drop(cluster);
    Ok(())
}
