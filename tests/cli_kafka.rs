//! Kafka: the same pipeline through librdkafka against a real Apache Kafka 4 broker (KRaft,
//! one node shared by this binary's tests, a topic per test): serve, produce, bounded reads
//! with Spark's options, transactions, compaction, retention, timestamps, compression from
//! another client, SASL, and the log lines of librdkafka and DataFusion.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::infra::testinfra;
use support::kafka::{KafkaCluster, SASL_PASSWORD, SASL_USER};
use support::{Bnetl, describe, fixture};

fn event(n: usize) -> Vec<u8> {
    format!(r#"{{"event_type": "purchase_sword", "Host": "user{n}.example.com", "n": {n}}}"#)
        .into_bytes()
}

/// `(partition, event(n))` for `n` in `ns`, spread over `partitions`.
fn events(ns: std::ops::Range<usize>, partitions: i32) -> Vec<(i32, Vec<u8>)> {
    ns.map(|n| ((n as i32) % partitions, event(n))).collect()
}

fn kafka() -> &'static KafkaCluster {
    KafkaCluster::shared()
}

#[test]
fn seed_ab_traffic_through_serve_on_kafka_gives_the_seed_tables() {
    let topic = kafka().topic("seed", 3);
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.replay_seed();
    assert_eq!(
        bnetl.sql_csv(r#"SELECT DISTINCT topic, "timestampType" FROM extracted_events"#),
        format!("topic,timestampType\n{topic},0\n")
    );
    bnetl.ok(&["transform"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM transformed_events"),
        [128]
    );
}

#[test]
fn produce_then_extract_reads_every_partition_of_the_topic() {
    let topic = kafka().topic("partitions", 4);
    kafka().produce(&topic, &events(0..40, 4));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    // bnetl's own producer adds the seed on top, wherever librdkafka puts it.
    let output = bnetl.ok(&["produce", fixture("events/seed.jsonl").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("produce: 128 messages"));

    let output = bnetl.ok(&["extract"]);
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(summary.contains("extract: 168 events"), "{summary}");
    assert_eq!(
        bnetl.sql_csv(r#"SELECT "partition", COUNT(*) AS n FROM extracted_events WHERE "Host" LIKE '%example.com' GROUP BY 1 ORDER BY 1"#),
        "partition,n\n0,10\n1,10\n2,10\n3,10\n"
    );
    assert_eq!(
        bnetl.sql_csv(r#"SELECT COUNT(*) AS n FROM (SELECT DISTINCT "partition", "offset" FROM extracted_events)"#),
        "n\n168\n"
    );
}

#[test]
fn explicit_offsets_read_exactly_their_range_even_mid_topic() {
    let topic = kafka().topic("ranges", 2);
    kafka().produce(&topic, &events(0..20, 2));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.ok(&[
        "extract",
        "--starting-offsets",
        &format!(r#"{{"{topic}":{{"0":2,"1":-2}}}}"#),
        "--ending-offsets",
        &format!(r#"{{"{topic}":{{"0":5,"1":-1}}}}"#),
    ]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT "partition", MIN("offset") AS first, MAX("offset") AS last, COUNT(*) AS n FROM extracted_events GROUP BY 1 ORDER BY 1"#),
        "partition,first,last,n\n0,2,4,3\n1,0,9,10\n"
    );
    let stderr = bnetl.fails(
        &[
            "extract",
            "--ending-offsets",
            &format!(r#"{{"{topic}":{{"0":50,"1":-1}}}}"#),
        ],
        1,
    );
    assert!(
        stderr.contains(&format!(
            "{topic}/0: ending offset 50 is beyond the high watermark 10"
        )),
        "{stderr}"
    );
}

/// Runs `extract` with a generous no-progress deadline and returns how long it took: reads
/// that end at the end offsets finish in a fraction of it.
fn timed_extract(bnetl: &Bnetl, extra: &[&str]) -> (Duration, String) {
    let mut args = vec!["--kafka-timeout-ms", "60000"];
    args.extend_from_slice(extra);
    args.push("extract");
    let started = Instant::now();
    let output = bnetl.ok(&args);
    (
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn aborted_transactions_are_skipped_by_default_and_read_when_uncommitted_is_asked_for() {
    let topic = kafka().topic("transactions", 1);
    // Committed and aborted transactions interleaved; the last one aborted, so the partition
    // ends with an abort marker (a control record) at its very last offset.
    kafka().produce_transactions(
        &topic,
        &[
            (vec![event(0), event(1), event(2)], true),
            (vec![event(3), event(4)], false),
            (vec![event(5)], true),
            (vec![event(6), event(7)], false),
        ],
    );
    // 8 records and 4 markers.
    assert_eq!(kafka().watermarks(&topic, 0), (0, 12));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);

    let (took, summary) = timed_extract(&bnetl, &[]);
    assert!(
        took < Duration::from_secs(20),
        "read_committed took {took:?}"
    );
    assert!(summary.contains("extract: 4 events"), "{summary}");
    assert_eq!(
        bnetl.sql_csv(r#"SELECT n, "offset" FROM extracted_events ORDER BY n"#),
        "n,offset\n0,0\n1,1\n2,2\n5,7\n"
    );

    let (took, summary) = timed_extract(&bnetl, &["-X", "isolation.level=read_uncommitted"]);
    assert!(
        took < Duration::from_secs(20),
        "read_uncommitted took {took:?}"
    );
    assert!(summary.contains("extract: 8 events"), "{summary}");
    assert_eq!(
        bnetl.sql_csv("SELECT COUNT(*) AS n, MIN(n) AS lo, MAX(n) AS hi FROM extracted_events"),
        "n,lo,hi\n8,0,7\n"
    );
}

/// Reads `topic` from the beginning to its high watermark with a plain librdkafka consumer:
/// `(offset, key, value)` of every record, the oracle for compaction.
fn read_all(topic: &str) -> Vec<(i64, String, String)> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let (_, high) = kafka().watermarks(topic, 0);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka().brokers())
        .set("group.id", "oracle")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while records.last().is_none_or(|(o, _, _)| o + 1 < high) {
        assert!(Instant::now() < deadline, "oracle read stalled");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            records.push((m.offset(), text(m.key()), text(m.payload())));
        }
    }
    records
}

#[test]
fn a_compacted_topic_is_read_exactly_its_surviving_records() {
    let topic = kafka().topic_with(
        "compacted",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "0"),
            ("delete.retention.ms", "100"),
        ],
    );
    let keyed = |round: usize, key: usize| {
        format!(r#"{{"event_type": "default", "Host": "k{key}", "round": {round}}}"#)
    };
    let mut produced = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    // Segments roll on the first append 100 ms after they opened; the active segment is never
    // cleaned, so keep appending rounds until the cleaner has removed overwritten records.
    loop {
        for key in 0..10 {
            kafka().produce_record(
                &topic,
                Some(format!("k{key}").as_bytes()),
                keyed(produced, key).as_bytes(),
                &[],
                None,
            );
        }
        produced += 1;
        let surviving = read_all(&topic).len();
        if produced >= 3 && surviving < produced * 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the log cleaner never ran");
        std::thread::sleep(Duration::from_millis(300));
    }
    let oracle = read_all(&topic);
    assert!(oracle.len() < produced * 10, "compaction left gaps");

    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    let (took, summary) = timed_extract(&bnetl, &[]);
    assert!(
        took < Duration::from_secs(20),
        "compacted read took {took:?}"
    );
    assert!(
        summary.contains(&format!("extract: {} events", oracle.len())),
        "{summary}"
    );
    let expected: String = oracle
        .iter()
        .map(|(offset, key, _)| format!("{offset},{key}\n"))
        .collect();
    assert_eq!(
        bnetl.sql_csv(r#"SELECT "offset", CAST(key AS VARCHAR) AS key FROM extracted_events ORDER BY "offset""#),
        format!("offset,key\n{expected}")
    );
    // Every key's latest value survived.
    assert_eq!(
        bnetl.sql_numbers(r#"SELECT COUNT(DISTINCT "Host"), MIN(latest) FROM (SELECT "Host", MAX(round) AS latest FROM extracted_events GROUP BY 1)"#),
        [10, produced as i64 - 1]
    );
}

#[test]
fn records_deleted_below_an_offset_are_data_loss_unless_allowed() {
    let topic = kafka().topic("retention", 2);
    kafka().produce(&topic, &events(0..40, 2));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.ok(&["extract", "--incremental", "--table", "inc"]);
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM inc"), [40]);

    kafka().produce(&topic, &events(40..60, 2));
    kafka().delete_records(&topic, 0, 25);
    assert_eq!(kafka().watermarks(&topic, 0).0, 25);

    // A full read from the earliest offset starts at the log start: nothing requested is lost.
    let from_zero = format!(r#"{{"{topic}":{{"0":0,"1":0}}}}"#);
    let stderr = bnetl.fails(&["extract", "--starting-offsets", &from_zero], 1);
    assert!(
        stderr.contains(&format!(
            "{topic}/0: starting offset 0 is below the log start 25"
        )) && stderr.contains("data loss"),
        "{stderr}"
    );
    assert!(!bnetl.warehouse().join("extracted_events").exists());
    let output = bnetl.ok(&[
        "extract",
        "--starting-offsets",
        &from_zero,
        "--fail-on-data-loss",
        "false",
    ]);
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        summary.contains("25 offset(s) lost below the log start"),
        "{summary}"
    );
    assert_eq!(
        bnetl.sql_numbers(
            r#"SELECT COUNT(*), MIN("offset") FROM extracted_events WHERE "partition" = 0"#
        ),
        [5, 25]
    );

    // The incremental table holds partition 0 up to offset 20; 20..25 are gone.
    let stderr = bnetl.fails(&["extract", "--incremental", "--table", "inc"], 1);
    assert!(
        stderr.contains(&format!(
            "{topic}/0: starting offset 20 is below the log start 25"
        )),
        "{stderr}"
    );
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM inc"), [40]);
    let output = bnetl.ok(&[
        "extract",
        "--incremental",
        "--table",
        "inc",
        "--fail-on-data-loss",
        "false",
    ]);
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        summary.contains("5 offset(s) lost below the log start"),
        "{summary}"
    );
    // 40 + 5 surviving new records of partition 0 + 10 of partition 1.
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM inc"), [55]);
    assert_eq!(bnetl.lag("inc"), 0);
}

#[test]
fn starting_and_ending_timestamps_select_offsets_through_the_broker() {
    let topic = kafka().topic("timestamps", 1);
    let base = 1_700_000_000_000i64;
    for n in 0..10 {
        kafka().produce_record(&topic, None, &event(n), &[], Some(base + n as i64 * 1000));
    }
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.ok(&[
        "extract",
        "--starting-timestamp",
        &(base + 2500).to_string(),
        "--ending-timestamp",
        &(base + 6000).to_string(),
    ]);
    // From the first record at or after 2.5 s up to (not including) the first at or after 6 s.
    assert_eq!(
        bnetl.sql_csv(r#"SELECT n, "offset", CAST("timestamp" AS BIGINT) - 1700000000000 AS ms FROM extracted_events ORDER BY n"#),
        "n,offset,ms\n3,3,3000\n4,4,4000\n5,5,5000\n"
    );
}

#[test]
fn batches_compressed_by_the_java_client_decode_with_every_codec() {
    let topic = kafka().topic("codecs", 1);
    let mut expected = 0;
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let lines: String = (0..50)
            .map(|n| {
                format!("{{\"event_type\": \"default\", \"Host\": \"{codec}\", \"n\": {n}}}\n")
            })
            .collect();
        java_console_producer(&topic, codec, &lines);
        expected += 50;
    }
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    let output = bnetl.ok(&["extract"]);
    let summary = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        summary.contains(&format!("extract: {expected} events")),
        "{summary}"
    );
    assert_eq!(
        bnetl.sql_csv(
            r#"SELECT "Host", COUNT(DISTINCT n) AS n FROM extracted_events GROUP BY 1 ORDER BY 1"#
        ),
        "Host,n\ngzip,50\nlz4,50\nsnappy,50\nzstd,50\n"
    );
}

/// Kafka's own console producer (the Java client) sends `lines` compressed with `codec`.
fn java_console_producer(topic: &str, codec: &str, lines: &str) {
    let classpath = testinfra().join("target/kafka-lib/*");
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(classpath)
        .args([
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            &kafka().brokers(),
            "--topic",
            topic,
            "--compression-codec",
            codec,
            "--producer-property",
            "linger.ms=200",
            "--producer-property",
            "acks=all",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), lines.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn sasl_plain_credentials_work_and_wrong_ones_fail_fast_with_librdkafka_s_reason() {
    let topic = kafka().topic("sasl", 1);
    kafka().produce(&topic, &events(0..5, 1));
    let bnetl = Bnetl::on_topic(&kafka().sasl_brokers(), &topic);
    let sasl = |password: &str| {
        vec![
            "-X".to_owned(),
            "security.protocol=SASL_PLAINTEXT".to_owned(),
            "-X".to_owned(),
            "sasl.mechanism=PLAIN".to_owned(),
            "-X".to_owned(),
            format!("sasl.username={SASL_USER}"),
            "-X".to_owned(),
            format!("sasl.password={password}"),
        ]
    };
    let mut args = sasl(SASL_PASSWORD);
    args.push("extract".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bnetl.ok(&args);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [5]
    );

    let mut args = sasl("wrong");
    args.extend(["--kafka-timeout-ms".into(), "60000".into()]);
    args.extend(["extract".into(), "--table".into(), "refused".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let stderr = bnetl.fails(&args, 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a refused login took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("refused bnetl") && stderr.contains("Authentication failed"),
        "{stderr}"
    );
    assert!(!bnetl.warehouse().join("refused").exists());
}

#[test]
fn librdkafka_and_datafusion_log_lines_reach_bnetl_s_log() {
    let topic = kafka().topic("logs", 1);
    kafka().produce(&topic, &events(0..3, 1));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    let output = bnetl
        .cmd(&["extract"])
        .env("BNETL_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.lines().any(|l| l.contains("DEBUG librdkafka")),
        "no librdkafka line in:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("DEBUG datafusion")),
        "no DataFusion line in:\n{log}"
    );
}

#[test]
fn an_unreachable_broker_or_unknown_topic_fails_clearly_and_writes_nothing() {
    let bnetl = Bnetl::on_topic(&kafka().brokers(), "no-such-topic");
    let stderr = bnetl.fails(&["--kafka-timeout-ms", "5000", "extract"], 1);
    assert!(stderr.contains("no-such-topic"), "{stderr}");

    let nobody = format!("127.0.0.1:{}", support::infra::free_port());
    let bnetl = Bnetl::on_topic(&nobody, "events");
    let started = Instant::now();
    let stderr = bnetl.fails(&["--kafka-timeout-ms", "3000", "extract"], 1);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        stderr.contains("events") && stderr.contains(&nobody),
        "{stderr}"
    );
    assert!(!bnetl.warehouse().join("extracted_events").exists());
}

#[test]
fn keys_headers_and_timestamps_come_through_as_spark_names_them() {
    let topic = kafka().topic("keys", 1);
    kafka().produce_record(
        &topic,
        Some(b"player-7"),
        br#"{"event_type":"join_guild"}"#,
        &[("trace", Some(b"abc".as_slice())), ("empty", None)],
        None,
    );
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.ok(&["extract", "--include-headers"]);
    let output = bnetl.ok(&[
        "sql",
        "--format",
        "json",
        r#"SELECT CAST(key AS VARCHAR) AS key, "timestampType", "timestamp" > TIMESTAMP '2020-01-01' AS recent, headers FROM extracted_events"#,
    ]);
    let row = String::from_utf8(output.stdout).unwrap();
    assert!(row.contains(r#""key":"player-7""#), "{row}");
    assert!(row.contains(r#""timestampType":0"#), "{row}");
    assert!(row.contains(r#""recent":true"#), "{row}");
    assert!(
        row.contains(r#""key":"trace""#) && row.contains(r#""key":"empty""#),
        "{row}"
    );
}

#[test]
fn one_run_and_sql_over_the_topic_read_a_multi_partition_topic_on_the_broker() {
    let topic = kafka().topic("run", 3);
    kafka().produce(&topic, &events(0..60, 3));
    let bnetl = Bnetl::on_topic(&kafka().brokers(), &topic);
    bnetl.ok(&["run", "--incremental"]);
    kafka().produce(&topic, &events(60..90, 3));
    // One table ahead of the others: each output takes only what it lacks.
    bnetl.ok(&["extract", "--incremental"]);
    kafka().produce(&topic, &events(90..99, 3));
    bnetl.ok(&["run", "--incremental"]);
    for table in ["extracted_events", "transformed_events", "purchases"] {
        assert_eq!(
            bnetl.sql_numbers(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT n), MIN(n), MAX(n) FROM {table}"
            )),
            [99, 99, 0, 98],
            "{table}"
        );
        assert_eq!(bnetl.lag(table), 0, "{table}");
    }
    // The topic itself, per partition, without a table.
    assert_eq!(
        bnetl.sql_csv(r#"SELECT "partition", COUNT(*) AS n FROM events GROUP BY 1 ORDER BY 1"#),
        "partition,n\n0,33\n1,33\n2,33\n"
    );
    // Conditions on partition and timestamp narrow the read (the broker's offsets for times).
    assert_eq!(
        bnetl.sql_csv(
            r#"SELECT COUNT(*) AS n FROM events WHERE "partition" = 1 AND timestamp >= TIMESTAMP '2000-01-01 00:00:00'"#
        ),
        "n\n33\n"
    );
    assert_eq!(
        bnetl.sql_csv(
            "SELECT COUNT(*) AS n FROM events WHERE timestamp >= now() + INTERVAL '1 hour'"
        ),
        "n\n0\n"
    );
    // Several statements in one session: each over the topic reads it for itself.
    assert_eq!(
        bnetl.sql_csv(
            r#"SELECT COUNT(*) AS n FROM events WHERE "partition" = 2; SELECT COUNT(*) AS t FROM purchases; SELECT COUNT(*) AS e FROM events"#
        ),
        "n\n33\n\nt\n99\n\ne\n99\n"
    );
}
