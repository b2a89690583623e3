//! Failover on a real three-node Kafka cluster (KRaft, replication factor 3,
//! `min.insync.replicas=2`): a partition leader killed with SIGKILL while `bnetl serve` is
//! under load, and a broker killed while `bnetl extract` reads.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::Bnetl;
use support::kafka::KafkaCluster;

/// One three-node cluster at a time: two (six JVMs) on a two-core machine starved the nodes'
/// heartbeats, and a partition once had no new leader 60 s after its leader was killed.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request of the load: its id, when it was sent, and the status it got (0: no answer).
#[derive(Debug, Clone)]
struct Sent {
    id: String,
    at: Instant,
    status: u16,
}

/// `GET path` with an `X-Request-Id` header, over a connection of its own.
fn get(addr: &str, path: &str, id: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: user1.comcast.com\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn killing_a_partition_leader_under_load_loses_and_duplicates_no_acknowledged_event() {
    let _turn = one_cluster_at_a_time();
    let cluster = KafkaCluster::start(3);
    let topic = cluster.topic_with("failover", 1, &[("min.insync.replicas", "2")]);
    let bnetl = Bnetl::on_topic(&cluster.brokers(), &topic);
    let server = bnetl.serve_with(&["--ack-timeout-ms", "5000"]);
    let addr = server.addr.clone();

    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (addr, sent, stop) = (addr.clone(), Arc::clone(&sent), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0;
                // Bounded: at most 60 s of requests.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let id = format!("c{client}-{n}");
                    let at = Instant::now();
                    let status = get(&addr, "/purchase_a_sword", &id);
                    sent.lock().unwrap().push(Sent { id, at, status });
                    n += 1;
                }
            })
        })
        .collect();

    let answered = |since: Instant| {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|s| s.at >= since && s.status == 200)
            .count()
    };
    let started = Instant::now();
    while answered(started) < 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "no load");
        std::thread::sleep(Duration::from_millis(10));
    }
    let leader = cluster.leader(&topic, 0).expect("a leader");
    let killed_at = Instant::now();
    cluster.kill(leader);
    // When a new leader is elected, as the cluster's metadata says.
    let elected_at = loop {
        if cluster.leader(&topic, 0).is_some_and(|l| l != leader) {
            break Instant::now();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no new leader"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Recovery by itself: 200s again after the election, for a while.
    let recovered_from = Instant::now();
    while answered(recovered_from) < 200 {
        assert!(
            recovered_from.elapsed() < Duration::from_secs(30),
            "serve did not recover after the failover"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    server.stop();
    let sent = sent.lock().unwrap().clone();
    eprintln!(
        "failover: {} requests, {} 200s, {} 503s, new leader after {:?}",
        sent.len(),
        sent.iter().filter(|s| s.status == 200).count(),
        sent.iter().filter(|s| s.status == 503).count(),
        elected_at - killed_at
    );
    // Answers are 200 or 503 only, and 503 only for requests sent while the partition had
    // no leader (killed_at .. elected_at, plus the time librdkafka takes to learn of it).
    for s in &sent {
        assert!(matches!(s.status, 200 | 503), "{s:?}");
        if s.status == 503 {
            assert!(
                s.at + Duration::from_secs(1) >= killed_at
                    && s.at <= elected_at + Duration::from_secs(2),
                "503 for a request sent {:?} after the kill (leader back after {:?})",
                s.at.saturating_duration_since(killed_at),
                elected_at - killed_at
            );
        }
    }

    bnetl.ok(&["--kafka-timeout-ms", "60000", "extract"]);
    let rows = bnetl
        .sql_csv(r#"SELECT "X-Request-Id" AS id, COUNT(*) AS n FROM extracted_events GROUP BY 1"#);
    let mut in_topic = std::collections::HashMap::new();
    for line in rows.lines().skip(1) {
        let (id, n) = line.rsplit_once(',').unwrap();
        in_topic.insert(id.to_owned(), n.parse::<u32>().unwrap());
    }
    // No event twice (the idempotent producer), and every 200 in the topic.
    let twice: Vec<&String> = in_topic
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    if !twice.is_empty() {
        // Where the copies are: two offsets (the topic holds it twice) or one (read twice).
        let ids: Vec<String> = twice.iter().map(|id| format!("'{id}'")).collect();
        let copies = bnetl.sql_csv(&format!(
            r#"SELECT "X-Request-Id", "partition", "offset", timestamp FROM extracted_events WHERE "X-Request-Id" IN ({}) ORDER BY 1, 3"#,
            ids.join(", ")
        ));
        let in_log = bnetl.sql_csv(&format!(
            r#"SELECT "X-Request-Id", "partition", "offset" FROM events WHERE "X-Request-Id" IN ({}) ORDER BY 1, 3"#,
            ids.join(", ")
        ));
        panic!("duplicated events:\n{copies}\nthe same ids read again from the topic:\n{in_log}");
    }
    for s in sent.iter().filter(|s| s.status == 200) {
        assert!(
            in_topic.contains_key(&s.id),
            "200 for {} but not in the topic",
            s.id
        );
    }
}

#[test]
fn a_broker_killed_during_extract_yields_exactly_the_topic_or_a_clear_failure() {
    let _turn = one_cluster_at_a_time();
    let cluster = KafkaCluster::start(3);
    let topic = cluster.topic_with("extract-failover", 3, &[("min.insync.replicas", "2")]);
    const EVENTS: usize = 150_000;
    let records: Vec<(i32, Vec<u8>)> = (0..EVENTS)
        .map(|n| {
            (
                (n % 3) as i32,
                format!(r#"{{"event_type":"default","Host":"h{}","n":{n}}}"#, n % 7).into_bytes(),
            )
        })
        .collect();
    cluster.produce_with(&topic, &records, &[("compression.type", "lz4")]);
    let bnetl = Bnetl::on_topic(&cluster.brokers(), &topic);
    // Small fetches, so the read is still going when the broker dies.
    let (succeeded, log) = bnetl.during_run(
        &[
            "--kafka-timeout-ms",
            "30000",
            "-X",
            "max.partition.fetch.bytes=2048",
            "extract",
        ],
        "snapshotted offsets",
        || cluster.kill(cluster.leader(&topic, 0).expect("a leader")),
    );
    if succeeded {
        assert_eq!(
            bnetl.sql_numbers(r#"SELECT COUNT(*), COUNT(DISTINCT n), COUNT(DISTINCT CAST("partition" AS BIGINT) * 1000000 + "offset") FROM extracted_events"#),
            [EVENTS as i64; 3],
            "{log}"
        );
    } else {
        assert!(log.contains(&format!("bnetl: {topic}")), "{log}");
        assert!(!bnetl.warehouse().join("extracted_events").exists());
        assert_eq!(bnetl.staged_runs(), 0);
    }
    eprintln!("extract during failover: succeeded {succeeded}; {log}");
}
