//! `bnetl run`: the seed's three outputs from one read of the topic, and exactly-once per
//! output with `--incremental`, also when runs are killed with SIGKILL between two outputs'
//! commits.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Bnetl, Rng, fixture};

const TABLES: [&str; 3] = ["extracted_events", "transformed_events", "purchases"];

#[test]
fn one_run_gives_the_seed_tables_of_the_three_jobs() {
    let by_jobs = Bnetl::new();
    let by_run = Bnetl::new();
    let seed = std::fs::read(fixture("events/seed.jsonl")).expect("seed");
    for bnetl in [&by_jobs, &by_run] {
        bnetl.produce(&seed);
        bnetl.produce(b"not an event\n");
    }
    by_jobs.ok(&["extract"]);
    by_jobs.ok(&["transform"]);
    by_jobs.ok(&["filtered-writes"]);
    let output = by_run.ok(&["run"]);
    let summary = String::from_utf8_lossy(&output.stderr);
    for table in TABLES {
        assert!(summary.contains(&format!("-> {table}:")), "{summary}");
    }
    for query in [
        "SELECT event_type, COUNT(*) AS n FROM extracted_events GROUP BY event_type ORDER BY n DESC, event_type",
        "SELECT Host, COUNT(*) AS n FROM extracted_events GROUP BY Host ORDER BY n DESC, Host",
        "SELECT action, item, COUNT(*) AS n FROM transformed_events GROUP BY action, item ORDER BY action, item",
        "SELECT event_type, COUNT(*) AS n FROM purchases GROUP BY event_type ORDER BY event_type",
        "SELECT COUNT(*) AS n FROM _bad_records GROUP BY table_name ORDER BY table_name",
    ] {
        assert_eq!(by_run.sql_csv(query), by_jobs.sql_csv(query), "{query}");
    }
    assert_eq!(
        by_run.sql_numbers("SELECT COUNT(*) FROM purchases"),
        [74],
        "the seed's purchases"
    );
}

/// Commits of each output table, read without bnetl.
fn versions(bnetl: &Bnetl) -> [usize; 3] {
    TABLES.map(|table| {
        std::fs::read_dir(bnetl.warehouse().join(table).join("_bnetl_log"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    })
}

#[test]
fn killed_multi_output_runs_lose_and_duplicate_nothing_in_any_table() {
    const ROUNDS: usize = 24;
    const PER_ROUND: usize = 1_000;
    let mut rng = Rng::seeded("BNETL_KILL_SEED");
    let seed = rng.seed;
    let bnetl = Bnetl::new();
    let mut produced = 0usize;
    let mut bad = 0i64;
    let mut produce = |n: usize| {
        let lines: String = (produced..produced + n)
            .map(|i| {
                if i % 97 == 0 {
                    bad += 1;
                    format!("not json {i}\n")
                } else {
                    format!(
                        "{{\"event_type\":\"purchase_sword\",\"Host\":\"user{}.test\",\"seq\":{i}}}\n",
                        i % 20
                    )
                }
            })
            .collect();
        bnetl.produce(lines.as_bytes());
        produced += n;
    };
    produce(PER_ROUND * 3);
    let started = Instant::now();
    bnetl.ok(&["-q", "run", "--incremental"]);
    let full = started.elapsed().as_micros() as u64;
    let (mut killed, mut between_outputs) = (0, 0);
    for round in 0..ROUNDS {
        produce(PER_ROUND);
        let before = versions(&bnetl);
        let mut run = bnetl
            .cmd(&["-q", "run", "--incremental", "--max-rows-per-file", "200"])
            .env("BNETL_LOG", "bnetl=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run");
        let stderr = run.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let delay = if round % 2 == 0 {
            rng.below(full * 3 / 2)
        } else {
            // Just after the first output published: the next ones are being written.
            let deadline = Instant::now() + Duration::from_secs(60);
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                if line.contains("published table version") {
                    break;
                }
            }
            rng.below(full / 3)
        };
        std::thread::sleep(Duration::from_micros(delay));
        run.kill().expect("SIGKILL");
        if !run.wait().expect("wait").success() {
            killed += 1;
            let after = versions(&bnetl);
            let advanced = after.iter().zip(&before).filter(|(a, b)| a > b).count();
            if advanced > 0 && advanced < TABLES.len() {
                between_outputs += 1;
            }
        }
    }
    eprintln!(
        "{ROUNDS} rounds (a run took {full} us): {killed} killed, {between_outputs} between two outputs' commits"
    );
    assert!(killed >= ROUNDS / 3, "too few runs killed: {killed}");
    assert!(
        between_outputs >= 1,
        "no run was killed between two outputs' commits"
    );

    bnetl.ok(&["run", "--incremental"]);
    let good = produced as i64 - bad;
    each_event_once(&bnetl, good, &format!("seed {seed}"));
    for table in TABLES {
        assert_eq!(
            bnetl.sql_numbers(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT \"offset\") FROM _bad_records WHERE table_name = '{table}'"
            )),
            [bad, bad],
            "seed {seed}: every bad record exactly once for {table}"
        );
    }
}

/// Every table holds each of the `events` events (their `seq` 0..events) once, and no lag.
fn each_event_once(bnetl: &Bnetl, events: i64, context: &str) {
    for table in TABLES {
        assert_eq!(
            bnetl.sql_numbers(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT seq), COUNT(DISTINCT \"offset\") FROM {table}"
            )),
            [events, events, events],
            "{context}: every event exactly once in {table}"
        );
        assert_eq!(bnetl.lag(table), 0, "{context}: {table}");
    }
}

/// `bnetl run --incremental` racing `bnetl transform --incremental`: when the transform
/// commits first, the run's first output (extracted_events) is already committed and its
/// second loses its claim. The run then fails naming the table, commits nothing after it, and
/// says which tables it committed and which not; the next run brings every table level, each
/// event in each table once. Repeated until that partial failure is seen (up to 8 rounds).
#[test]
fn an_output_that_loses_its_claim_leaves_the_earlier_committed_and_the_next_run_levels_them() {
    const PER_ROUND: usize = 30_000;
    let bnetl = Bnetl::new();
    let mut produced = 0i64;
    let mut produce = || {
        let first = usize::try_from(produced).unwrap();
        let lines: String = (first..first + PER_ROUND)
            .map(|i| {
                format!(
                    "{{\"event_type\":\"purchase_shield\",\"Host\":\"user{}.test\",\"seq\":{i}}}\n",
                    i % 20
                )
            })
            .collect();
        bnetl.produce(lines.as_bytes());
        produced += PER_ROUND as i64;
        produced
    };
    produce();
    bnetl.ok(&["-q", "run", "--incremental"]);
    let mut partial = 0;
    for _ in 0..8 {
        let total = produce();
        let before = versions(&bnetl);
        let spawn = |args: &[&str]| {
            bnetl
                .cmd(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bnetl")
        };
        let (run, transform) = (
            spawn(&["-q", "run", "--incremental"]),
            spawn(&["-q", "transform", "--incremental"]),
        );
        let run = run.wait_with_output().expect("wait for run");
        let transform = transform.wait_with_output().expect("wait for transform");
        assert!(
            run.status.success() || transform.status.success(),
            "both failed: {} / {}",
            String::from_utf8_lossy(&run.stderr),
            String::from_utf8_lossy(&transform.stderr)
        );
        let after = versions(&bnetl);
        if !run.status.success() {
            let err = String::from_utf8_lossy(&run.stderr);
            assert!(
                err.contains("table transformed_events changed while this run was writing"),
                "{err}"
            );
            assert_eq!(after[2], before[2], "nothing after the lost claim: {err}");
            if after[0] > before[0] {
                assert!(
                    err.contains("committed=\"extracted_events\"")
                        && err.contains("not_committed=\"transformed_events, purchases\""),
                    "the run names what it committed and what not: {err}"
                );
                partial += 1;
            }
        }
        bnetl.ok(&["-q", "run", "--incremental"]);
        each_event_once(&bnetl, total, "after the race");
        if partial > 0 {
            return;
        }
    }
    panic!("no run lost a claim after committing its first output");
}

#[test]
fn outputs_defined_by_files_are_checked_before_anything_is_read() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).expect("seed"));
    let dir = bnetl.data_dir().join("outputs");
    std::fs::create_dir_all(&dir).expect("outputs folder");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write(
        "by_host.sql",
        "-- bnetl: table=actions_by_host partition_by=Host\n\
         SELECT Host, event_type, COUNT(*) AS n FROM events GROUP BY Host, event_type\n",
    );
    write(
        "swords.sql",
        "-- Sword purchases only.\n-- bnetl: table=Swords mode=append\n\
         SELECT Host, \"offset\" FROM events WHERE event_type = 'purchase_sword'\n",
    );
    write("notes.txt", "not a query file\n");

    // Refused before anything is read: nothing is written.
    write(
        "broken.sql",
        "-- bnetl: table=broken\nSELEC * FROM events\n",
    );
    let err = bnetl.fails(&["run", "--queries", dir.to_str().expect("utf-8")], 2);
    assert!(err.contains("broken.sql"), "{err}");
    std::fs::remove_file(dir.join("broken.sql")).expect("remove");
    write(
        "again.sql",
        "-- bnetl: table=Swords\nSELECT * FROM events\n",
    );
    let err = bnetl.fails(&["run", "--queries", dir.to_str().expect("utf-8")], 2);
    assert!(
        err.contains("again.sql")
            && err.contains("swords.sql")
            && err.contains("both write table Swords"),
        "{err}"
    );
    write("again.sql", "SELECT * FROM events\n");
    let err = bnetl.fails(&["run", "--queries", dir.to_str().expect("utf-8")], 2);
    assert!(
        err.contains("again.sql") && err.contains("no `-- bnetl: table=NAME`"),
        "{err}"
    );
    std::fs::remove_file(dir.join("again.sql")).expect("remove");
    assert!(!bnetl.warehouse().exists(), "a refused run wrote something");

    let output = bnetl.ok(&["run", "--queries", dir.to_str().expect("utf-8")]);
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("by_host: ") && summary.contains("Swords: "),
        "{summary}"
    );
    assert_eq!(
        bnetl.sql_numbers("SELECT SUM(n), COUNT(DISTINCT Host) FROM actions_by_host"),
        [128, 5]
    );
    assert!(
        bnetl
            .warehouse()
            .join("actions_by_host/Host=user5.fios.com")
            .is_dir()
    );
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM Swords"), [25]);
    // mode=append from the header: a second run adds the same events again.
    bnetl.ok(&["run", "--queries", dir.to_str().expect("utf-8")]);
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM Swords"), [50]);
    assert_eq!(
        bnetl.sql_numbers("SELECT SUM(n) FROM actions_by_host"),
        [128],
        "overwrite by default"
    );
}

#[test]
fn a_schema_that_changes_after_the_first_batch_is_read_again_and_decoded_whole() {
    let bnetl = Bnetl::new();
    // The embedded log hands out 8,192 messages a batch: `bonus` first appears in the second.
    let lines: String = (0..9_000)
        .map(|i| {
            if i >= 8_500 {
                format!("{{\"event_type\":\"purchase_knife\",\"Host\":\"h{i}\",\"bonus\":{i}}}\n")
            } else {
                format!("{{\"event_type\":\"purchase_knife\",\"Host\":\"h{i}\"}}\n")
            }
        })
        .collect();
    bnetl.produce(lines.as_bytes());
    let output = bnetl
        .cmd(&["run"])
        .env("BNETL_LOG", "bnetl=info")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", support::describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("reading again"),
        "the decode while reading should have been discarded"
    );
    for table in TABLES {
        assert_eq!(
            bnetl.sql_numbers(&format!(
                "SELECT COUNT(*), COUNT(bonus), MIN(bonus) FROM {table}"
            )),
            [9_000, 500, 8_500],
            "{table}"
        );
    }
}

#[test]
fn outputs_whose_files_are_still_uploading_when_another_commits_keep_them() {
    // Events that do not compress (a random 64-byte field), more than a row group's rows
    // (262,144): each output has flushed a row group larger than the object store writer's
    // buffer, so its file is a multipart upload in its staging folder, not yet complete when
    // the first output commits and tidies up after itself.
    let bnetl = Bnetl::new();
    let mut rng = Rng::seeded("BNETL_UPLOAD_SEED");
    let events = 300_000;
    let mut lines = String::with_capacity(events * 140);
    for i in 0..events {
        let noise: String = (0..64)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect();
        let kind = ["purchase_sword", "default"][i % 2];
        lines.push_str(&format!(
            "{{\"event_type\":\"{kind}\",\"Host\":\"h{i}\",\"noise\":\"{noise}\"}}\n"
        ));
    }
    bnetl.produce(lines.as_bytes());
    bnetl.ok(&["run"]);
    let rows = events as i64;
    for (table, rows) in [
        ("extracted_events", rows),
        ("transformed_events", rows),
        ("purchases", rows / 2),
    ] {
        assert_eq!(
            bnetl.sql_numbers(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT Host) FROM {table}"
            )),
            [rows, rows],
            "{table}"
        );
    }
}
