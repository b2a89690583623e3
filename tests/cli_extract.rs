//! `bnetl extract`: bounded reads, bad records, type conflicts, overwrite and failed runs.

mod support;

use support::{Bnetl, fixture};

#[test]
fn malformed_messages_are_quarantined_counted_and_queryable() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/malformed.jsonl")).unwrap());
    let output = bnetl.ok(&["extract"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("extract: 10 events"), "{stderr}");
    assert!(
        stderr.contains("3 rows in 1 file(s); 7 bad record(s) in _bad_records"),
        "{stderr}"
    );

    assert_eq!(
        bnetl.sql_csv(r#"SELECT "offset" FROM extracted_events ORDER BY "offset""#),
        "offset\n0\n3\n8\n"
    );
    let bad = bnetl.sql_csv(
        r#"SELECT topic, "partition", "offset", error FROM _bad_records ORDER BY "offset""#,
    );
    let rows: Vec<&str> = bad.lines().skip(1).collect();
    assert_eq!(rows.len(), 7, "{bad}");
    assert!(
        rows[0].starts_with("events,0,1,\"not a JSON object: invalid type: sequence"),
        "{bad}"
    );
    assert!(rows[2].starts_with("events,0,4,empty message"), "{bad}");
    assert!(
        rows[3].starts_with("events,0,5,invalid UTF-8 at byte 38"),
        "{bad}"
    );
    assert!(rows[6].contains("EOF while parsing"), "{bad}");
}

#[test]
fn the_raw_bytes_of_bad_records_are_kept_byte_for_byte() {
    let bnetl = Bnetl::new();
    bnetl.produce(b"{\"event_type\": \"default\"}\n\xff\xfe not utf-8 \r\n");
    bnetl.ok(&["extract"]);
    let json = String::from_utf8(
        bnetl
            .ok(&["sql", "--format", "json", "SELECT value FROM _bad_records"])
            .stdout,
    )
    .unwrap();
    // Arrow's JSON writer prints binary as hex: the line minus its '\n', carriage return kept.
    assert_eq!(json.trim(), r#"{"value":"fffe206e6f74207574662d38200d"}"#);
    // Read as text the way Spark casts binary: the bytes that are not UTF-8 as U+FFFD (Arrow's
    // cast failed the statement), in a column, a condition and a literal alike.
    assert_eq!(
        bnetl.sql_csv(
            "SELECT CAST(value AS STRING) AS text, CAST(X'41FF' AS VARCHAR) AS lit, TRY_CAST(value AS STRING) = CAST(value AS STRING) AS same FROM _bad_records WHERE CAST(value AS STRING) LIKE '%utf-8%'"
        ),
        "text,lit,same\n\"\u{fffd}\u{fffd} not utf-8 \r\",A\u{fffd},true\n"
    );
}

#[test]
fn type_conflicts_widen_to_strings_instead_of_failing() {
    let bnetl = Bnetl::new();
    bnetl.produce(
        b"{\"event_type\": \"upgrade_sword\", \"level\": 3, \"price\": 10}\n\
          {\"event_type\": \"upgrade_sword\", \"level\": \"max\", \"price\": 12.5}\n\
          {\"event_type\": \"upgrade_sword\", \"level\": {\"n\": 4}}\n",
    );
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT level, price FROM extracted_events ORDER BY "offset""#),
        "level,price\n3,10.0\nmax,12.5\n\"{\"\"n\"\": 4}\",\n"
    );
    assert_eq!(
        bnetl.sql_csv("SELECT data_type FROM information_schema.columns WHERE table_name = 'extracted_events' AND column_name IN ('level', 'price') ORDER BY column_name"),
        "data_type\nUtf8View\nFloat64\n"
    );
}

#[test]
fn reruns_overwrite_and_pick_up_new_events_without_duplicates() {
    let bnetl = Bnetl::new();
    let seed = std::fs::read(fixture("events/seed.jsonl")).unwrap();
    bnetl.produce(&seed);
    bnetl.ok(&["extract"]);
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv("SELECT COUNT(*) AS n FROM extracted_events"),
        "n\n128\n"
    );
    bnetl.produce(&seed[..seed.iter().position(|&b| b == b'\n').unwrap() + 1]);
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT COUNT(*) AS n, COUNT(DISTINCT "offset") AS d, MAX("offset") AS last FROM extracted_events"#),
        "n,d,last\n129,129,128\n"
    );
    let files = std::fs::read_dir(bnetl.warehouse().join("extracted_events"))
        .unwrap()
        .count();
    assert_eq!(files, 3, "one data file, _SUCCESS and the commit log");
    assert!(
        bnetl
            .warehouse()
            .join("extracted_events/_SUCCESS")
            .is_file()
    );
}

#[test]
fn a_failed_run_leaves_the_previous_table_untouched_and_nothing_staged() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).unwrap());
    bnetl.ok(&["extract"]);

    // Fails while writing: the partition column does not exist.
    let stderr = bnetl.fails(&["extract", "--partition-by", "no_such_column"], 1);
    assert!(
        stderr.contains("partition column no_such_column is not in the output"),
        "{stderr}"
    );
    // Fails while planning: a usage error.
    let bad_query = bnetl.data_dir().join("bad.sql");
    std::fs::write(&bad_query, "SELECT missing_column FROM events").unwrap();
    let stderr = bnetl.fails(&["extract", "--query", bad_query.to_str().unwrap()], 2);
    assert!(
        stderr.contains("query") && stderr.contains("missing_column"),
        "{stderr}"
    );

    assert_eq!(
        bnetl.sql_csv("SELECT COUNT(*) AS n FROM extracted_events"),
        "n\n128\n"
    );
    assert_eq!(bnetl.staged_runs(), 0, "staging folder not cleaned up");
}

#[test]
fn extracting_a_topic_that_does_not_exist_names_it() {
    let bnetl = Bnetl::new();
    let stderr = bnetl.fails(&["extract"], 1);
    assert!(stderr.contains("topic events does not exist"), "{stderr}");
    bnetl.produce(b"{\"event_type\": \"default\"}\n");
    let stderr = bnetl.fails(&["--topic", "games", "extract"], 1);
    assert!(stderr.contains("topic games does not exist"), "{stderr}");
    assert!(!bnetl.warehouse().join("extracted_events").exists());
    let stderr = bnetl.fails(&["--topic", "no/slash", "extract"], 2);
    assert!(stderr.contains("invalid topic name"), "{stderr}");
}

#[test]
fn ctrl_c_during_extract_exits_130_and_leaves_nothing() {
    let bnetl = Bnetl::new();
    let seed = std::fs::read(fixture("events/seed.jsonl")).unwrap();
    // About a million events, so the run is still reading when the signal arrives.
    bnetl.produce(&seed.repeat(8_000));
    let child = bnetl
        .cmd(&["extract"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        support::describe(&output)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
    assert!(!bnetl.warehouse().join("extracted_events").exists());
    assert_eq!(bnetl.staged_runs(), 0, "staging folder not cleaned up");
}

#[test]
fn hostile_partition_values_stay_inside_their_table_folder() {
    let bnetl = Bnetl::new();
    let hosts = ["../../escape", "a/b", "x=y", "100%", "tab\there", "..", ""];
    let mut input = String::new();
    for host in hosts {
        input.push_str(&serde_json::json!({"event_type": "default", "Host": host}).to_string());
        input.push('\n');
    }
    input.push_str("{\"event_type\":\"default\"}\n");
    bnetl.produce(input.as_bytes());
    bnetl.ok(&["extract", "--table", "by_host", "--partition-by", "Host"]);
    let table = bnetl.warehouse().join("by_host");
    let mut folders: Vec<String> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("Host="))
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            "Host=..",
            "Host=..%2F..%2Fescape",
            "Host=100%25",
            "Host=__HIVE_DEFAULT_PARTITION__",
            "Host=a%2Fb",
            "Host=tab%09here",
            "Host=x%3Dy",
        ]
    );
    // Nothing was written outside the warehouse's tables (and its hidden staging folder).
    let mut top: Vec<String> = std::fs::read_dir(bnetl.warehouse())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".bnetl-staging")
        .collect();
    top.sort();
    assert_eq!(top, ["_bad_records", "by_host"]);
    // The empty and the missing Host are the default partition, read back as null (as Spark
    // reads it): six distinct hosts, two nulls.
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*), COUNT(DISTINCT Host), COUNT(*) FILTER (WHERE Host IS NULL) FROM by_host"
        ),
        [8, 6, 2]
    );
    // Readers unescape the folder names back to the values.
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*) FROM by_host WHERE Host IN ('../../escape', 'a/b', 'x=y', '100%', '..', 'tab\there')"
        ),
        [6]
    );
}

/// 9,000 events, then 1,000 that add a field and turn `n` from a number into a string: the
/// first batch read (8,192 messages) does not show the final schema.
fn schema_changing_topic() -> Bnetl {
    let bnetl = Bnetl::new();
    let mut input = String::new();
    for _ in 0..9_000 {
        input.push_str("{\"event_type\":\"default\",\"n\":1}\n");
    }
    for _ in 0..1_000 {
        input.push_str("{\"event_type\":\"purchase_sword\",\"n\":\"x\",\"level\":3}\n");
    }
    bnetl.produce(input.as_bytes());
    bnetl
}

#[test]
fn a_schema_that_changes_after_the_first_batch_is_inferred_over_the_whole_read() {
    let bnetl = schema_changing_topic();
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*), COUNT(level), SUM(CASE WHEN n = '1' THEN 1 ELSE 0 END), SUM(CASE WHEN n = 'x' THEN 1 ELSE 0 END) FROM extracted_events"
        ),
        [10_000, 1_000, 9_000, 1_000]
    );
    assert_eq!(
        bnetl.sql_csv(
            "SELECT DISTINCT arrow_typeof(level) AS l, arrow_typeof(n) AS n FROM extracted_events"
        ),
        "l,n\nInt64,Utf8View\n"
    );
}

#[test]
fn queries_that_read_events_twice_or_stop_early_still_get_the_whole_schema() {
    let bnetl = schema_changing_topic();
    let dir = tempfile::tempdir().unwrap();
    let twice = dir.path().join("twice.sql");
    std::fs::write(
        &twice,
        r#"SELECT a.* FROM events a JOIN events b ON a."partition" = b."partition" AND a."offset" = b."offset""#,
    )
    .unwrap();
    let limit = dir.path().join("limit.sql");
    std::fs::write(&limit, "SELECT * FROM events LIMIT 3").unwrap();
    bnetl.ok(&[
        "extract",
        "--query",
        twice.to_str().unwrap(),
        "--table",
        "twice",
    ]);
    bnetl.ok(&[
        "extract",
        "--query",
        limit.to_str().unwrap(),
        "--table",
        "limited",
    ]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(level) FROM twice"),
        [10_000, 1_000]
    );
    // The first rows only, but with the columns of the whole read.
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(level) FROM limited"),
        [3, 0]
    );
    // The same query over a topic whose schema never changes.
    let stable = Bnetl::new();
    stable.produce("{\"event_type\":\"default\"}\n".repeat(10_000).as_bytes());
    stable.ok(&[
        "extract",
        "--query",
        twice.to_str().unwrap(),
        "--table",
        "twice",
    ]);
    assert_eq!(stable.sql_numbers("SELECT COUNT(*) FROM twice"), [10_000]);
}

#[test]
fn many_bad_records_stream_through_their_quarantine_file_into_the_table() {
    let bnetl = Bnetl::new();
    // More than one quarantine flush (8,192 records), with good events between them.
    let input: String = (0..20_000)
        .map(|i| {
            if i % 1_000 == 0 {
                format!("{{\"event_type\":\"default\",\"Host\":\"h{i}\"}}\n")
            } else {
                format!("not json {i}\n")
            }
        })
        .collect();
    bnetl.produce(input.as_bytes());
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*), COUNT(DISTINCT \"offset\"), MIN(\"offset\"), MAX(\"offset\") FROM _bad_records"
        ),
        [19_980, 19_980, 1, 19_999]
    );
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [20]
    );
}

#[test]
fn many_partition_values_sort_the_rest_and_keep_few_files_open() {
    let bnetl = Bnetl::new();
    let input: String = (0..3_000)
        .map(|i| {
            format!(
                "{{\"event_type\":\"default\",\"Host\":\"h{}\",\"n\":{i}}}\n",
                (i * 7) % 50
            )
        })
        .collect();
    bnetl.produce(input.as_bytes());
    bnetl.ok(&["extract", "--partition-by", "Host", "--max-open-files", "4"]);
    let table = bnetl.warehouse().join("extracted_events");
    let folders: Vec<_> = std::fs::read_dir(&table)
        .expect("table folder")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("Host="))
        .collect();
    assert_eq!(folders.len(), 50);
    for folder in folders {
        let files = std::fs::read_dir(folder.path())
            .expect("partition folder")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            .count();
        // One file from before the switch to sorting, at most one after it.
        assert!(
            (1..=2).contains(&files),
            "{files} files in {:?}",
            folder.path()
        );
    }
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*), COUNT(DISTINCT n), SUM(n), COUNT(DISTINCT Host) FROM extracted_events"
        ),
        [3_000, 3_000, 3_000 * 2_999 / 2, 50]
    );
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events WHERE Host = 'h7'"),
        [60]
    );
}

/// Names that would mislead: a table named `events` would hide the topic's events from SQL,
/// `_bad_records` has no status of its own, and a data folder without a warehouse (a typo)
/// is said to be one, not shown as an empty status.
#[test]
fn misleading_table_names_and_a_missing_warehouse_are_usage_errors() {
    let bnetl = Bnetl::new();
    let stderr = bnetl.fails(&["status"], 2);
    assert!(stderr.contains("does not exist"), "{stderr}");
    bnetl.produce(b"{\"event_type\":\"default\",\"Host\":\"h\"}\n");
    let stderr = bnetl.fails(&["extract", "--table", "events"], 2);
    assert!(
        stderr.contains("invalid table name \"events\"") && stderr.contains("topic's events"),
        "{stderr}"
    );
    assert!(!bnetl.warehouse().join("events").exists());
    bnetl.ok(&["extract"]);
    let stderr = bnetl.fails(&["status", "_bad_records"], 2);
    assert!(stderr.contains("not a table of its own"), "{stderr}");
    assert_eq!(bnetl.lag("extracted_events"), 0);
}
