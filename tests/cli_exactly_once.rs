//! `--incremental` is exactly-once: runs killed with SIGKILL at random moments (reading,
//! encoding, staging, claiming, publishing), with new traffic arriving between them, and then a
//! run to the end leave every event of the topic in the table once, and every bad record in
//! `_bad_records` once. On the embedded log, on a real Kafka broker, and with the warehouse on
//! a real HDFS (MiniDFSCluster).

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::hdfs::Hdfs;
use support::kafka::KafkaCluster;
use support::{Bnetl, Rng};

/// Kills per backend.
const ROUNDS: usize = 36;
/// Events produced before each round; every `BAD_EVERY`th is not JSON.
const PER_ROUND: usize = 1_500;
const BAD_EVERY: usize = 97;

/// Lines `first..first + n`: game events, except every `BAD_EVERY`th, which is not JSON.
fn lines(first: usize, n: usize) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|i| {
            if i % BAD_EVERY == 0 {
                format!("not json {i}").into_bytes()
            } else {
                format!(
                    r#"{{"event_type":"purchase_sword","Host":"user{}.test","Accept":"*/*","User-Agent":"kill-test","seq":{i}}}"#,
                    i % 50
                )
                .into_bytes()
            }
        })
        .collect()
}

fn bad_among(n: usize) -> i64 {
    (0..n).filter(|i| i % BAD_EVERY == 0).count() as i64
}

/// Commits of `extracted_events` in a local warehouse.
fn local_versions(bnetl: &Bnetl) -> usize {
    std::fs::read_dir(bnetl.warehouse().join("extracted_events/_bnetl_log"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Where a round's kill lands: a random delay after the run starts, or after it logs that it
/// reached a phase (the log lines of `BNETL_LOG=bnetl=info`).
const PHASES: [(&str, Option<&str>); 4] = [
    ("anywhere", None),
    ("reading", Some("snapshotted offsets")),
    ("decoding, encoding and staging", Some("scan done")),
    ("publishing", Some("claimed table version")),
];

/// Kills `extract --incremental` at random points, `produce(first, n)` adding traffic before
/// each round, then checks the table against everything produced. `versions()` counts the
/// table's commits, read without bnetl (which could finish a half-published one).
fn kill_at_random_points(
    bnetl: &Bnetl,
    produce: impl Fn(usize, usize),
    versions: impl Fn() -> usize,
) {
    let mut rng = Rng::seeded("BNETL_KILL_SEED");
    let mut produced = 0;
    produce(produced, PER_ROUND * 4);
    produced += PER_ROUND * 4;
    // How long a whole run takes here: kill delays are drawn from up to 1.5 times that.
    let started = Instant::now();
    bnetl.ok(&["-q", "extract", "--table", "calibration"]);
    let full = started.elapsed().as_micros() as u64;
    let (mut killed, mut killed_after_claim, mut finished) = (0, 0, 0);
    let mut per_phase = [0usize; PHASES.len()];
    for round in 0..ROUNDS {
        produce(produced, PER_ROUND);
        produced += PER_ROUND;
        let before = versions();
        let marker = PHASES[round % PHASES.len()].1;
        let mut run = bnetl
            .cmd(&[
                "-q",
                "extract",
                "--incremental",
                "--max-rows-per-file",
                "100",
            ])
            .env("BNETL_LOG", "bnetl=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn extract");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = run.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let delay = match marker {
            None => rng.below(full * 3 / 2),
            Some(marker) => {
                // Wait for the phase (or the end of a run that finished before it).
                let deadline = Instant::now() + Duration::from_secs(60);
                while let Ok(line) = rx.recv_timeout(deadline - Instant::now()) {
                    if line.contains(marker) {
                        break;
                    }
                }
                match marker {
                    // Publishing takes about a millisecond: land inside it.
                    m if m.contains("claimed") => rng.below(500),
                    m if m.contains("scan done") => rng.below(5_000),
                    _ => rng.below(full),
                }
            }
        };
        std::thread::sleep(Duration::from_micros(delay));
        run.kill().expect("SIGKILL");
        let status = run.wait().expect("wait");
        if status.success() {
            finished += 1;
        } else {
            killed += 1;
            per_phase[round % PHASES.len()] += 1;
            if versions() > before {
                killed_after_claim += 1;
            }
        }
    }
    let phases: Vec<String> = PHASES
        .iter()
        .zip(per_phase)
        .map(|((name, _), n)| format!("{n} {name}"))
        .collect();
    eprintln!(
        "{ROUNDS} rounds (a whole run took {full} us): {killed} killed ({}), {killed_after_claim} of them after claiming their version; {finished} finished first",
        phases.join(", ")
    );
    assert!(
        killed >= ROUNDS / 3,
        "too few runs were killed mid-way: {killed}"
    );
    assert!(
        killed_after_claim >= 2,
        "too few runs were killed between their claim and their end: {killed_after_claim}"
    );

    // The run after the crashes finishes any half-published commit and reads the rest.
    bnetl.ok(&["extract", "--incremental"]);
    let bad = bad_among(produced);
    let good = produced as i64 - bad;
    assert_eq!(
        bnetl.sql_numbers(
            r#"SELECT COUNT(*), COUNT(DISTINCT seq), COUNT(DISTINCT CAST("partition" AS BIGINT) * 100000000 + "offset") FROM extracted_events"#
        ),
        [good, good, good],
        "every event exactly once"
    );
    assert_eq!(
        bnetl.sql_numbers(
            r#"SELECT COUNT(*), COUNT(DISTINCT CAST("partition" AS BIGINT) * 100000000 + "offset") FROM _bad_records WHERE table_name = 'extracted_events'"#
        ),
        [bad, bad],
        "every bad record exactly once"
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);
    assert_eq!(
        bnetl.sql_numbers("SELECT MIN(seq), MAX(seq) FROM extracted_events"),
        [1, produced as i64 - 1]
    );
}

/// Appends lines `first..first + n` to the embedded log of `bnetl`.
fn produce_embedded(bnetl: &Bnetl, first: usize, n: usize) {
    let mut input = Vec::new();
    for line in lines(first, n) {
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    bnetl.produce(&input);
}

#[test]
fn killed_incremental_runs_lose_and_duplicate_nothing_on_the_embedded_log() {
    let bnetl = Bnetl::new();
    bnetl.produce_with(&["--partitions", "3"], b"");
    kill_at_random_points(
        &bnetl,
        |first, n| produce_embedded(&bnetl, first, n),
        || local_versions(&bnetl),
    );
}

#[test]
fn killed_incremental_runs_lose_and_duplicate_nothing_on_kafka() {
    let kafka = KafkaCluster::shared();
    let topic = kafka.topic("kill", 3);
    let bnetl = Bnetl::on_topic(&kafka.brokers(), &topic);
    kill_at_random_points(
        &bnetl,
        |first, n| {
            let records: Vec<(i32, Vec<u8>)> = lines(first, n)
                .into_iter()
                .enumerate()
                .map(|(i, line)| ((i % 3) as i32, line))
                .collect();
            kafka.produce(&topic, &records);
        },
        || local_versions(&bnetl),
    );
}

#[test]
fn killed_incremental_runs_lose_and_duplicate_nothing_on_hdfs() {
    let hdfs = Hdfs::shared();
    let warehouse = hdfs.folder("kill");
    let mut bnetl = Bnetl::new();
    bnetl.env = hdfs.env(&warehouse);
    bnetl.produce_with(&["--partitions", "3"], b"");
    kill_at_random_points(
        &bnetl,
        |first, n| produce_embedded(&bnetl, first, n),
        || {
            // Hadoop's own client counts the commit log's entries.
            hdfs.ls(&warehouse)
                .iter()
                .filter(|(_, path)| {
                    path.starts_with("extracted_events/_bnetl_log/") && path.ends_with(".json")
                })
                .count()
        },
    );
}
