//! Save modes, commits and checkpoints, concurrent writers, `--incremental` after new traffic
//! and `bnetl status`, on the embedded log and a local warehouse.

mod support;

use support::Bnetl;

/// `n` game events, `Host` numbered from `first`.
fn events(first: usize, n: usize) -> Vec<u8> {
    (first..first + n)
        .map(|i| {
            format!(
                r#"{{"event_type":"purchase_sword","Host":"user{i}.test","Accept":"*/*","User-Agent":"test"}}"#
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

fn count(bnetl: &Bnetl, table: &str) -> i64 {
    bnetl.sql_numbers(&format!("SELECT COUNT(*) FROM {table}"))[0]
}

fn parquet_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        parquet_files(&path)
                    } else {
                        usize::from(path.extension().is_some_and(|x| x == "parquet"))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn save_modes_follow_spark() {
    let bnetl = Bnetl::new();
    bnetl.produce(&events(0, 10));
    bnetl.produce(b"not json\n");
    let bad = "SELECT COUNT(*) FROM _bad_records WHERE table_name = 'extracted_events'";
    bnetl.ok(&["extract"]);
    assert_eq!(count(&bnetl, "extracted_events"), 10);
    assert_eq!(bnetl.sql_numbers(bad), [1]);

    // The bad records follow their table's mode.
    bnetl.ok(&["extract", "--mode", "append"]);
    assert_eq!(count(&bnetl, "extracted_events"), 20);
    assert_eq!(bnetl.sql_numbers(bad), [2]);

    let err = bnetl.fails(&["extract", "--mode", "error-if-exists"], 1);
    assert!(
        err.contains("table extracted_events already exists") && err.contains("error-if-exists"),
        "{err}"
    );
    // Spark's spelling works too.
    bnetl.fails(&["extract", "--mode", "errorifexists"], 1);
    assert_eq!(count(&bnetl, "extracted_events"), 20);

    let ignored = bnetl.ok(&["extract", "--mode", "ignore"]);
    let stderr = String::from_utf8_lossy(&ignored.stderr);
    assert!(
        stderr.contains("exists; nothing read or written"),
        "{stderr}"
    );
    assert_eq!(count(&bnetl, "extracted_events"), 20);

    // Overwrite replaces every earlier file; the commit log and _SUCCESS stay.
    bnetl.ok(&["extract", "--mode", "overwrite"]);
    assert_eq!(count(&bnetl, "extracted_events"), 10);
    assert_eq!(bnetl.sql_numbers(bad), [1]);
    let table = bnetl.warehouse().join("extracted_events");
    assert_eq!(parquet_files(&table), 1);
    assert!(table.join("_SUCCESS").is_file());
    let mut log: Vec<String> = std::fs::read_dir(table.join("_bnetl_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    log.sort();
    let versions: Vec<&str> = log.iter().filter_map(|f| f.strip_suffix(".json")).collect();
    assert_eq!(versions.len(), 3, "overwrite, append, overwrite: {log:?}");
    assert!(
        versions
            .iter()
            .all(|v| log.contains(&format!("{v}.published"))),
        "each version marked published: {log:?}"
    );
    assert_eq!(bnetl.staged_runs(), 0);

    // Modes on a table that does not exist yet write it.
    bnetl.ok(&["extract", "--table", "fresh", "--mode", "error-if-exists"]);
    bnetl.ok(&["extract", "--table", "fresh2", "--mode", "ignore"]);
    assert_eq!(count(&bnetl, "fresh"), 10);
    assert_eq!(count(&bnetl, "fresh2"), 10);
}

#[test]
fn incremental_runs_append_only_new_events_and_status_shows_the_lag() {
    let bnetl = Bnetl::new();
    bnetl.produce_with(&["--partitions", "3"], &events(0, 30));
    let first = bnetl.ok(&["extract", "--incremental"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("committed as version 1 (append)"),
        "{stderr}"
    );
    assert_eq!(count(&bnetl, "extracted_events"), 30);
    assert_eq!(bnetl.lag("extracted_events"), 0);

    bnetl.produce(&events(30, 12));
    assert_eq!(bnetl.lag("extracted_events"), 12);
    let status = bnetl.status("extracted_events");
    assert_eq!(status.len(), 3, "one row per partition: {status:?}");
    assert_eq!(status[0]["_SUCCESS"], "true");
    assert_eq!(status[0]["rows"], "30");

    bnetl.ok(&["extract", "--incremental"]);
    assert_eq!(count(&bnetl, "extracted_events"), 42);
    assert_eq!(
        bnetl.sql_numbers(
            r#"SELECT COUNT(DISTINCT Host), COUNT(DISTINCT CAST("partition" AS BIGINT) * 1000000 + "offset") FROM extracted_events"#
        ),
        [42, 42]
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);
    let status = bnetl.status("extracted_events");
    assert_eq!(status[0]["rows"], "42");
    assert_eq!(status[0]["version"], "2");
    let committed: i64 = status
        .iter()
        .map(|r| r["committed_offset"].parse::<i64>().unwrap())
        .sum();
    assert_eq!(committed, 42);

    // Caught up: a run reads nothing and adds nothing, not even an empty version (as Spark's
    // Trigger.AvailableNow runs no batch when nothing arrived).
    let caught_up = bnetl.ok(&["extract", "--incremental"]);
    let stderr = String::from_utf8_lossy(&caught_up.stderr);
    assert!(
        stderr.contains("no new events in events")
            && stderr.contains("it stays at version 2, nothing committed"),
        "{stderr}"
    );
    assert_eq!(count(&bnetl, "extracted_events"), 42);
    assert_eq!(bnetl.lag("extracted_events"), 0);
    assert_eq!(bnetl.status("extracted_events")[0]["version"], "2");
    let log = std::fs::read_dir(bnetl.warehouse().join("extracted_events/_bnetl_log"))
        .expect("the table's log")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("00000000000000000003")
        })
        .count();
    assert_eq!(log, 0, "no version 3 in the table's log");

    // A full overwrite records its offsets too, so incremental runs continue after it.
    bnetl.ok(&["extract"]);
    bnetl.produce(&events(42, 3));
    bnetl.ok(&["extract", "--incremental"]);
    assert_eq!(count(&bnetl, "extracted_events"), 45);
}

#[test]
fn incremental_options_that_contradict_it_are_usage_errors() {
    let bnetl = Bnetl::new();
    bnetl.produce(&events(0, 3));
    // A table without a commit log (another tool's, or an older bnetl's) holds unknown offsets.
    let foreign = bnetl.warehouse().join("extracted_events");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("part-0.parquet"), b"not ours").unwrap();
    let err = bnetl.fails(&["extract", "--incremental"], 2);
    assert!(err.contains("has no commit log"), "{err}");
    std::fs::remove_dir_all(&foreign).unwrap();
    let err = bnetl.fails(&["extract", "--incremental", "--mode", "overwrite"], 2);
    assert!(err.contains("--incremental appends"), "{err}");
    let err = bnetl.fails(
        &[
            "extract",
            "--incremental",
            "--starting-offsets",
            r#"{"events":{"0":1}}"#,
        ],
        2,
    );
    assert!(err.contains("drop --starting-offsets"), "{err}");
}

#[test]
fn two_runs_writing_one_table_at_once_one_wins_and_the_table_stays_whole() {
    let bnetl = Bnetl::new();
    bnetl.produce(&events(0, 60_000));
    bnetl.ok(&["extract"]);
    // The runs race; each attempt must leave a whole table, and the race must be seen.
    bnetl.race_until_conflict(|| {
        assert_eq!(bnetl.staged_runs(), 0, "the loser's files are removed");
    });
    let n = count(&bnetl, "extracted_events");
    assert_eq!(n % 60_000, 0, "whole runs only: {n}");
    let versions = bnetl.status("extracted_events")[0]["version"]
        .parse::<i64>()
        .unwrap();
    assert_eq!(n, versions * 60_000, "each version added one whole read");
}

#[test]
fn files_hold_at_most_max_rows_per_file_and_roll_on_bytes() {
    let bnetl = Bnetl::new();
    bnetl.produce(&events(0, 25_000));
    bnetl.ok(&["extract", "--max-rows-per-file", "10000"]);
    let table = bnetl.warehouse().join("extracted_events");
    // Rows per file, as DuckDB counts them.
    let rows_per_file = support::python(&format!(
        "import duckdb\n\
         rows = duckdb.sql(\"SELECT COUNT(*) AS n FROM read_parquet('{}/*.parquet', filename=true) GROUP BY filename ORDER BY n DESC\").fetchall()\n\
         print(' '.join(str(n) for (n,) in rows))",
        table.display()
    ));
    assert_eq!(rows_per_file.trim(), "10000 10000 5000");
    assert_eq!(parquet_files(&table), 3);
    // A byte bound rolls too: every batch of 8192 rows goes over 1 kB.
    bnetl.ok(&["extract", "--max-file-bytes", "1000"]);
    assert_eq!(parquet_files(&table), 4);
    assert_eq!(count(&bnetl, "extracted_events"), 25_000);
}

#[test]
fn a_table_appended_to_a_hundred_times_is_read_from_its_checkpoint() {
    let bnetl = Bnetl::new();
    for i in 0..101 {
        bnetl.produce(&events(i, 1));
        bnetl.ok(&["extract", "--incremental"]);
    }
    bnetl.ok(&["transform"]);
    let log = bnetl.warehouse().join("extracted_events/_bnetl_log");
    let checkpoint = log.join("00000000000000000100.checkpoint.json");
    assert!(checkpoint.exists(), "no checkpoint at version 100");
    // Readers fold the checkpoint and the commits after it: without a commit from before it,
    // sql and status still see the whole table.
    let commit = log.join("00000000000000000050.json");
    let kept = std::fs::read(&commit).unwrap();
    std::fs::remove_file(&commit).unwrap();
    assert_eq!(count(&bnetl, "extracted_events"), 101);
    let status = bnetl.status("extracted_events");
    assert_eq!(
        (
            status[0]["version"].as_str(),
            status[0]["rows"].as_str(),
            status[0]["first_offset"].as_str(),
            status[0]["committed_offset"].as_str()
        ),
        ("101", "101", "0", "101")
    );
    // A damaged checkpoint is read around, through every commit; a lost one is an error naming
    // it, never a table quietly missing its files.
    std::fs::write(&checkpoint, b"{").unwrap();
    let err = bnetl.fails(&["sql", "SELECT COUNT(*) FROM extracted_events"], 1);
    assert!(
        err.contains("cannot register table extracted_events")
            && err.contains("cannot read a checkpoint")
            && err.contains("lacks version 50"),
        "{err}"
    );
    // The other tables are still read: a statement over them never opens the damaged log,
    // and one over the whole catalog leaves the damaged table out with a warning naming it.
    assert_eq!(count(&bnetl, "transformed_events"), 101);
    let tables = bnetl.ok(&["sql", "--format", "csv", "SHOW TABLES"]);
    let (listed, warned) = (
        String::from_utf8_lossy(&tables.stdout),
        String::from_utf8_lossy(&tables.stderr),
    );
    assert!(
        listed.contains(",transformed_events,") && !listed.contains(",extracted_events,"),
        "{listed}"
    );
    assert!(
        warned.contains("commit log is damaged") && warned.contains("extracted_events"),
        "{warned}"
    );
    // Statements that need the damaged table fail naming it: DESCRIBE, and _bad_records (it
    // would otherwise lack that table's bad records without a word).
    for statement in [
        "DESCRIBE extracted_events",
        "SELECT COUNT(*) FROM _bad_records",
    ] {
        let err = bnetl.fails(&["sql", statement], 1);
        assert!(
            err.contains("cannot register table extracted_events")
                && err.contains("lacks version 50"),
            "{statement}: {err}"
        );
    }
    std::fs::write(&commit, kept).unwrap();
    assert_eq!(count(&bnetl, "extracted_events"), 101);
    assert_eq!(bnetl.status("extracted_events")[0]["rows"], "101");
}
