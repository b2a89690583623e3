//! `bnetl sql`: output formats and errors.

mod support;

use support::{Bnetl, describe, fixture};

fn extracted() -> Bnetl {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).unwrap());
    bnetl.ok(&["extract"]);
    bnetl
}

#[test]
fn table_format_looks_like_sparks_show() {
    let bnetl = extracted();
    let output = bnetl.ok(&["sql", "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC LIMIT 2"]);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "+------------------+----------------+\n\
         |              Host|number_of_player|\n\
         +------------------+----------------+\n\
         |user4.spectrum.com|              40|\n\
         |     user2.att.com|              29|\n\
         +------------------+----------------+\n"
    );
    // Columns the statement did not name get Spark's names: `count(1)` for COUNT(*), as the
    // seed's walkthrough shows it, no table qualifier, a literal as its value. Aliases stay.
    assert_eq!(
        bnetl.sql_csv(
            "SELECT COUNT(*), count(e.Host), max(\"offset\") + 1, 2, 'x', COUNT(*) AS n FROM extracted_events e"
        ),
        "count(1),count(Host),max(offset) + 1,2,x,n\n128,128,128,2,x,128\n"
    );
}

#[test]
fn csv_and_json_formats_suit_scripts() {
    let bnetl = extracted();
    let query = r#"SELECT event_type, "offset" FROM extracted_events ORDER BY "offset" LIMIT 2"#;
    assert_eq!(
        bnetl.sql_csv(query),
        "event_type,offset\ndefault,0\ndefault,1\n"
    );
    let json = bnetl.ok(&["sql", "--format", "json", query]).stdout;
    assert_eq!(
        String::from_utf8(json).unwrap(),
        "{\"event_type\":\"default\",\"offset\":0}\n{\"event_type\":\"default\",\"offset\":1}\n"
    );
    // No rows: CSV still has its header (pandas reads it as an empty frame), show() its
    // column names, JSON lines nothing.
    let none = "SELECT Host, event_type FROM extracted_events WHERE Host = 'nobody'";
    assert_eq!(bnetl.sql_csv(none), "Host,event_type\n");
    assert_eq!(
        String::from_utf8(bnetl.ok(&["sql", none]).stdout).unwrap(),
        "+----+----------+\n|Host|event_type|\n+----+----------+\n+----+----------+\n"
    );
    assert!(
        bnetl
            .ok(&["sql", "--format", "json", none])
            .stdout
            .is_empty()
    );
}

#[test]
fn an_unknown_table_is_a_usage_error_that_lists_the_tables() {
    let bnetl = extracted();
    let stderr = bnetl.fails(&["sql", "SELECT * FROM gamer"], 2);
    assert!(
        stderr.contains("gamer") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warehouse tables: _bad_records, extracted_events"),
        "{stderr}"
    );
}

/// Each statement fails with its exit code (2: the user's SQL, 1: a failure while running),
/// and its message says what is wrong and, where bnetl can tell, what to do.
#[test]
fn bad_sql_is_a_usage_error() {
    let bnetl = extracted();
    let cases: [(&str, i32, &[&str]); 8] = [
        ("SELEC 1", 2, &["bnetl: query statement"]),
        (
            "SELECT no_such_column FROM extracted_events",
            2,
            &["no_such_column"],
        ),
        ("SELECT 'unclosed; SELECT 2", 2, &["Unterminated string"]),
        // The Kafka column `offset` after a comma reads as an OFFSET clause.
        (
            "SELECT Host, offset FROM extracted_events",
            2,
            &["`offset` after a comma reads as an OFFSET clause: quote the column"],
        ),
        // DataFusion's internal error, without its request to report a bug in DataFusion.
        (
            "SELECT SUM(event_type) FROM extracted_events",
            2,
            &["sum(Utf8View)"],
        ),
        // DataFusion parses TABLESAMPLE and reads the whole table: refused, not a wrong count.
        (
            "SELECT COUNT(*) FROM extracted_events TABLESAMPLE (10 PERCENT)",
            2,
            &["TABLESAMPLE", "WHERE random() < 0.1"],
        ),
        // A statement that fails while it runs is named by its place among them.
        (
            "SELECT 1; SELECT CAST(Host AS INT) FROM extracted_events",
            1,
            &["statement 2 of 2 failed", "Cannot cast string"],
        ),
        (" ; -- nothing", 2, &["no statement"]),
    ];
    for (sql, code, said) in cases {
        let stderr = bnetl.fails(&["sql", sql], code);
        for text in said {
            assert!(stderr.contains(text), "{sql}: {stderr}");
        }
        assert!(!stderr.contains("bug in DataFusion"), "{sql}: {stderr}");
    }
    assert_eq!(
        bnetl.sql_csv("SELECT Host, \"offset\" FROM extracted_events ORDER BY \"offset\" LIMIT 1"),
        "Host,offset\nuser1.comcast.com,0\n"
    );
}

/// The seed's three queries, as its walkthrough runs them in one pyspark session.
const SEED_QUERIES: [&str; 3] = [
    "SELECT COUNT(*) FROM extracted_events",
    "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC",
    "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC",
];

#[test]
fn several_statements_run_in_turn_from_the_argument_or_a_file_as_spark_sql_runs_them() {
    let bnetl = extracted();
    let stdout = |args: &[&str]| String::from_utf8(bnetl.ok(args).stdout).unwrap();
    // Each result as the statement alone prints it, a blank line between two.
    let alone: Vec<String> = SEED_QUERIES.iter().map(|q| stdout(&["sql", q])).collect();
    let together = stdout(&["sql", &SEED_QUERIES.join(";\n")]);
    assert_eq!(together, alone.join("\n"));
    assert!(
        together.contains("|user4.spectrum.com|              40|"),
        "{together}"
    );

    // A file of statements: comments, a `;` in a string and in a comment, a final `;`.
    let file = bnetl.dir.path().join("analysis.sql");
    std::fs::write(
        &file,
        "-- the seed's counts; then a literal\n\
         SELECT COUNT(*) AS n FROM extracted_events;\n\
         /* a; b */ SELECT 'a;b' AS text;\n",
    )
    .unwrap();
    assert_eq!(
        stdout(&["sql", "--format", "csv", "-f", file.to_str().unwrap()]),
        "n\n128\n\ntext\na;b\n"
    );

    // `-f -`: from standard input.
    let mut piped = bnetl
        .cmd(&["sql", "--format", "csv", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut piped.stdin.take().unwrap(),
        b"SELECT COUNT(*) AS n FROM extracted_events;\nSELECT 2 AS two;\n",
    )
    .unwrap();
    let piped = piped.wait_with_output().unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "n\n128\n\ntwo\n2\n");

    // A statement over the topic between two over the warehouse reads the topic for itself.
    assert_eq!(
        stdout(&[
            "sql",
            "--format",
            "csv",
            "SELECT COUNT(*) AS x FROM extracted_events; SELECT COUNT(*) AS e FROM events WHERE event_type = 'default'; SELECT 1 AS one",
        ]),
        "x\n128\n\ne\n37\n\none\n1\n"
    );

    // A statement that would write stops them all before any runs: nothing is printed.
    let output = bnetl
        .cmd(&["sql", "SELECT 1; DROP TABLE extracted_events"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("statement 2 of 2") && stderr.contains("would write (DROP TABLE)"),
        "{stderr}"
    );

    // --output saves one result; a statement and --file are one or the other.
    let saved = bnetl.dir.path().join("two.csv");
    let stderr = bnetl.fails(
        &[
            "sql",
            "--output",
            saved.to_str().unwrap(),
            "SELECT 1; SELECT 2",
        ],
        2,
    );
    assert!(stderr.contains("2 were given"), "{stderr}");
    assert!(!saved.exists());
    bnetl.fails(&["sql", "-f", file.to_str().unwrap(), "SELECT 1"], 2);
    let stderr = bnetl.fails(&["sql", "-f", "/no/such/file.sql"], 2);
    assert!(stderr.contains("/no/such/file.sql"), "{stderr}");
}

/// A statement over the warehouse's tables (or all of them, as `SHOW TABLES`) names the
/// missing warehouse; one over no table runs without it, and creates nothing.
#[test]
fn a_missing_warehouse_is_named_and_a_statement_over_no_table_needs_none() {
    let bnetl = Bnetl::new();
    for sql in ["SELECT COUNT(*) FROM extracted_events", "SHOW TABLES"] {
        let stderr = bnetl.fails(&["sql", sql], 2);
        assert!(
            stderr.contains("warehouse") && stderr.contains("does not exist"),
            "{sql}: {stderr}"
        );
        assert!(
            stderr.contains(bnetl.warehouse().to_str().unwrap()),
            "{sql}: {stderr}"
        );
    }
    assert_eq!(
        bnetl.sql_csv("SELECT 1 AS one; VALUES (2)"),
        "one\n1\n\ncolumn1\n2\n"
    );
    assert!(!bnetl.warehouse().exists(), "sql created the warehouse");
}

/// `EXPLAIN` and `EXPLAIN ANALYZE` print their plans whole, each under its name, as spark-sql
/// prints a plan (a table of 20-character cells would cut them); CSV keeps them as rows.
#[test]
fn explain_prints_each_plan_whole_under_its_name() {
    let bnetl = extracted();
    let sql = "EXPLAIN SELECT Host, COUNT(*) AS n FROM extracted_events GROUP BY Host";
    let text = String::from_utf8(bnetl.ok(&["sql", sql]).stdout).unwrap();
    let logical = text
        .find("== logical_plan ==\n")
        .unwrap_or_else(|| panic!("{text}"));
    let physical = text
        .find("\n\n== physical_plan ==\n")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(logical == 0 && physical > logical, "{text}");
    assert!(
        text[..physical].contains("Aggregate: groupBy=[[extracted_events.Host]]"),
        "{text}"
    );
    assert!(
        text[physical..].contains("AggregateExec") && text.contains("projection=[Host]"),
        "{text}"
    );
    assert!(!text.contains("..."), "nothing cut: {text}");
    let analyzed = String::from_utf8(
        bnetl
            .ok(&[
                "sql",
                "EXPLAIN ANALYZE SELECT event_type, COUNT(*) FROM extracted_events GROUP BY event_type",
            ])
            .stdout,
    )
    .unwrap();
    assert!(
        analyzed.starts_with("== Plan with Metrics ==\n") && analyzed.contains("output_rows="),
        "{analyzed}"
    );
    let csv = bnetl.sql_csv(sql);
    assert!(
        csv.starts_with("plan_type,plan\nlogical_plan,") && csv.contains("physical_plan,"),
        "{csv}"
    );
    // Spark's EXPLAIN EXTENDED and FORMATTED print the same plans.
    for mode in ["EXTENDED", "formatted"] {
        let spark = sql.replacen("EXPLAIN", &format!("EXPLAIN {mode}"), 1);
        assert_eq!(bnetl.sql_csv(&spark), csv, "{spark}");
    }
}

/// Every file under `dir` with its size and modification time, sorted.
fn tree(dir: &std::path::Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                folders.push(entry.path());
            } else {
                files.push((
                    entry.path().display().to_string(),
                    meta.len(),
                    meta.modified().unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn statements_that_write_are_refused_by_kind_with_exit_2_and_nothing_changes() {
    let bnetl = extracted();
    let outside = bnetl.dir.path().join("outside");
    let before = tree(&bnetl.warehouse());
    for (statement, kind) in [
        (
            "INSERT INTO extracted_events SELECT * FROM extracted_events LIMIT 1".to_owned(),
            "INSERT INTO",
        ),
        (
            format!(
                "COPY (SELECT 1 AS a) TO '{}/x.csv' STORED AS CSV",
                outside.display()
            ),
            "COPY TO",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e STORED AS PARQUET LOCATION '{}/e/'",
                outside.display()
            ),
            "CREATE EXTERNAL TABLE",
        ),
        (
            "CREATE TABLE copy AS SELECT * FROM extracted_events".to_owned(),
            "CREATE TABLE",
        ),
        ("DROP TABLE extracted_events".to_owned(), "DROP TABLE"),
        (
            "EXPLAIN ANALYZE INSERT INTO extracted_events SELECT * FROM extracted_events"
                .to_owned(),
            "INSERT INTO",
        ),
    ] {
        let stderr = bnetl.fails(&["sql", &statement], 2);
        assert!(
            stderr.contains(&format!("would write ({kind})")) && stderr.contains("--output"),
            "{statement}: {stderr}"
        );
    }
    assert!(!outside.exists());
    assert_eq!(
        tree(&bnetl.warehouse()),
        before,
        "nothing in the warehouse changed"
    );
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [128]
    );
}

#[test]
fn the_table_format_shows_the_first_20_rows_and_says_so_as_show_does() {
    let bnetl = extracted();
    let query = r#"SELECT "offset" FROM extracted_events ORDER BY "offset""#;
    let shown = String::from_utf8(bnetl.ok(&["sql", query]).stdout).unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    // Border, header, border, 20 rows, border, footer.
    assert_eq!(lines.len(), 25, "{shown}");
    assert_eq!(lines[3], "|     0|");
    assert_eq!(lines[22], "|    19|");
    assert_eq!(lines[24], "only showing top 20 rows");

    let three = String::from_utf8(bnetl.ok(&["sql", "-n", "3", query]).stdout).unwrap();
    assert!(
        three.ends_with("+------+\nonly showing top 3 rows\n"),
        "{three}"
    );
    let all = String::from_utf8(bnetl.ok(&["sql", "--rows", "0", query]).stdout).unwrap();
    assert_eq!(all.lines().count(), 128 + 4, "{all}");
    assert!(!all.contains("only showing"));
    let exactly =
        String::from_utf8(bnetl.ok(&["sql", &format!("{query} LIMIT 20")]).stdout).unwrap();
    assert!(!exactly.contains("only showing"), "{exactly}");
    // CSV and JSON print every row.
    assert_eq!(bnetl.sql_csv(query).lines().count(), 129);
}

#[test]
fn output_saves_a_result_to_a_file_readers_open_and_never_into_the_warehouse() {
    let bnetl = extracted();
    let query = "SELECT event_type, COUNT(*) AS n FROM extracted_events GROUP BY event_type";
    let dir = bnetl.dir.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    for name in ["counts.parquet", "counts.csv", "counts.json"] {
        let path = dir.join(name);
        let output = bnetl.ok(&["sql", "--output", path.to_str().unwrap(), query]);
        assert!(output.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("wrote 6 rows to"),
            "{}",
            support::describe(&output)
        );
    }
    let read = support::python(&format!(
        "import duckdb\n\
         for name in ['counts.parquet', 'counts.csv', 'counts.json']:\n\
         \x20   print(duckdb.sql(\"SELECT SUM(n) FROM '{}/\" + name + \"'\").fetchall()[0][0])",
        dir.display()
    ));
    assert_eq!(read, "128\n128\n128\n");
    // No hidden partial file is left beside them.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["counts.csv", "counts.json", "counts.parquet"]);

    let before = tree(&bnetl.warehouse());
    let inside = bnetl.warehouse().join("extracted_events/mine.parquet");
    let stderr = bnetl.fails(&["sql", "-o", inside.to_str().unwrap(), query], 2);
    assert!(stderr.contains("inside the warehouse"), "{stderr}");
    let stderr = bnetl.fails(
        &["sql", "-o", dir.join("x.xlsx").to_str().unwrap(), query],
        2,
    );
    assert!(stderr.contains(".parquet, .csv or .json"), "{stderr}");
    assert_eq!(tree(&bnetl.warehouse()), before);
}

#[test]
fn a_query_reads_the_last_complete_version_and_leaves_an_unfinished_commit_to_the_next_run() {
    let bnetl = extracted();
    bnetl.ok(&["extract", "--mode", "append"]);
    let table = bnetl.warehouse().join("extracted_events");
    let log = table.join("_bnetl_log");
    // Version 2 as a run killed after its claim leaves it: its file still staged, no _SUCCESS.
    let commit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join(format!("{:020}.json", 2))).unwrap())
            .unwrap();
    let run = commit["run_id"].as_str().unwrap();
    let file = commit["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .find(|f| f.starts_with("extracted_events/"))
        .unwrap()
        .to_owned();
    let staged = bnetl
        .warehouse()
        .join(".bnetl-staging")
        .join(run)
        .join(&file);
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::rename(bnetl.warehouse().join(&file), &staged).unwrap();
    std::fs::remove_file(table.join("_SUCCESS")).unwrap();
    std::fs::remove_file(log.join(format!("{:020}.published", 2))).unwrap();
    // A file no commit wrote, dropped into the table by hand.
    let first = std::fs::read_dir(&table)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .unwrap()
        .path();
    std::fs::copy(&first, table.join("part-stray.snappy.parquet")).unwrap();

    let before = tree(&bnetl.warehouse());
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [128],
        "version 1: nothing of version 2, nothing of the stray file"
    );
    let status = bnetl.status("extracted_events");
    assert_eq!(status[0]["_SUCCESS"], "false");
    assert_eq!(tree(&bnetl.warehouse()), before, "readers finished nothing");

    // The next writing run publishes version 2 first, then adds its own.
    bnetl.ok(&["extract", "--mode", "append"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [3 * 128]
    );
    assert!(!staged.exists());
}

#[test]
fn sql_over_the_topic_reads_its_events_within_the_read_options_and_writes_nothing() {
    let bnetl = Bnetl::new();
    let seed = std::fs::read(fixture("events/seed.jsonl")).expect("seed events");
    bnetl.produce(&seed);
    bnetl.produce(b"not an event\n");

    // No table yet: the topic alone needs no warehouse, and reading it creates none.
    let by_type = bnetl.sql_csv(
        "SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type ORDER BY n DESC, event_type",
    );
    assert_eq!(
        by_type,
        "event_type,n\ndefault,37\npurchase_shield,29\npurchase_sword,25\npurchase_knife,20\nupgrade_sword,10\nupgrade_shield,7\n"
    );
    assert!(!bnetl.warehouse().exists(), "a query wrote the warehouse");
    // So are statements about it, alone or several.
    let described = bnetl.sql_csv("DESCRIBE events; SELECT COUNT(*) AS n FROM events");
    assert!(
        described.contains("event_type,string,") && described.ends_with("\nn\n128\n"),
        "{described}"
    );
    assert!(!bnetl.warehouse().exists(), "a query wrote the warehouse");

    // The jobs' read options bound the read.
    let first_ten = bnetl.ok(&[
        "sql",
        "--format",
        "csv",
        "--ending-offsets",
        r#"{"events":{"0":10}}"#,
        "SELECT COUNT(*) AS n, MAX(\"offset\") AS last FROM events",
    ]);
    assert_eq!(String::from_utf8_lossy(&first_ten.stdout), "n,last\n10,9\n");

    // With tables: the topic's events and the warehouse's in one statement.
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_numbers(
            "SELECT COUNT(*) FROM events e JOIN extracted_events x ON e.\"offset\" = x.\"offset\""
        ),
        [128]
    );
    let err = bnetl.fails(
        &[
            "sql",
            "--starting-offsets",
            "{bad",
            "SELECT COUNT(*) FROM events",
        ],
        2,
    );
    assert!(err.contains("--starting-offsets"), "{err}");
}

#[test]
fn a_statement_over_the_topic_gets_its_columns_whole_when_the_schema_changes_midway() {
    // `events` keeps only the columns a statement's plan scans; here the read's first batch
    // gives `n` as a number and a later one turns it into a string, so the events are decoded
    // again with the whole read's schema, and kept to the statement's columns there too.
    let bnetl = Bnetl::new();
    let mut events = String::new();
    for i in 0..10_000 {
        let n = if i < 9_000 {
            i.to_string()
        } else {
            format!("\"v{i}\"")
        };
        events.push_str(&format!("{{\"event_type\":\"e{}\",\"n\":{n}}}\n", i % 3));
    }
    bnetl.produce(events.as_bytes());
    assert_eq!(
        bnetl.sql_csv(
            "SELECT event_type, COUNT(*) AS c FROM events GROUP BY event_type ORDER BY event_type"
        ),
        "event_type,c\ne0,3334\ne1,3333\ne2,3333\n"
    );
    assert_eq!(
        bnetl.sql_csv("SELECT COUNT(*) AS c, MAX(n) AS m, MIN(\"offset\") AS lo FROM events"),
        "c,m,lo\n10000,v9999,0\n"
    );
    assert_eq!(
        bnetl
            .sql_csv("SELECT * FROM events WHERE \"offset\" = 9999")
            .lines()
            .count(),
        2
    );
}

#[test]
fn conditions_on_partition_offset_and_timestamp_narrow_the_topic_read() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).expect("seed events"));
    // The read, as the log tells it, and the result.
    let run = |query: &str| {
        let output = bnetl
            .cmd(&["sql", "--format", "csv", query])
            .env("BNETL_LOG", "bnetl=info")
            .output()
            .expect("bnetl runs");
        assert!(output.status.success(), "{}", describe(&output));
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (rows, log) = run(
        r#"SELECT COUNT(*) AS n, MIN("offset") AS lo, MAX("offset") AS hi FROM events WHERE "offset" BETWEEN 10 AND 19 AND "partition" = 0"#,
    );
    assert_eq!(rows, "n,lo,hi\n10,10,19\n");
    assert!(log.contains("start: 10, end: 20"), "{log}");

    let (rows, log) =
        run(r#"SELECT COUNT(*) AS n FROM events WHERE "offset" > 100 AND event_type = 'default'"#);
    // The same condition over the table extract writes, which reads everything.
    bnetl.ok(&["extract"]);
    let expected = bnetl.sql_numbers(
        r#"SELECT COUNT(*) FROM extracted_events WHERE "offset" > 100 AND event_type = 'default'"#,
    );
    assert_eq!(rows, format!("n\n{}\n", expected[0]));
    assert!(log.contains("start: 101, end: 128"), "{log}");

    // Nothing is that recent: nothing is read.
    let (rows, log) =
        run("SELECT COUNT(*) AS n FROM events WHERE timestamp >= now() + INTERVAL '1 hour'");
    assert_eq!(rows, "n\n0\n");
    assert!(log.contains("start: 128, end: 128"), "{log}");
    // Everything is later than 2000: everything is read.
    let (rows, _) =
        run("SELECT COUNT(*) AS n FROM events WHERE timestamp >= TIMESTAMP '2000-01-01 00:00:00'");
    assert_eq!(rows, "n\n128\n");

    // Conditions that cannot narrow the read leave it whole, and the answers right.
    for (query, expected) in [
        (
            r#"SELECT COUNT(*) AS n FROM events WHERE "offset" = 3 OR "offset" = 90"#,
            "n\n2\n",
        ),
        (
            r#"SELECT COUNT(*) AS n FROM events WHERE "offset" <> 3"#,
            "n\n127\n",
        ),
        (
            r#"SELECT COUNT(*) AS n FROM events a JOIN events b ON a."offset" = b."offset" + 1 WHERE a."offset" < 5"#,
            "n\n4\n",
        ),
    ] {
        let (rows, log) = run(query);
        assert_eq!(rows, expected, "{query}");
        assert!(!log.contains("narrow the read"), "{query}: {log}");
    }
}

/// A partition column reads back with its committed type, as Spark infers it (an integer
/// sorts and sums as one: `MAX(level)` is 12, not the text "9"), the default partition
/// (null) as null, and a condition on it still prunes folders.
#[test]
fn partition_columns_read_back_with_their_types_and_the_default_partition_as_null() {
    let bnetl = Bnetl::new();
    let mut events: String = (1..=12)
        .map(|i| format!("{{\"event_type\":\"default\",\"Host\":\"h\",\"level\":{i}}}\n"))
        .collect();
    events.push_str("{\"event_type\":\"default\",\"Host\":\"h\"}\n");
    bnetl.produce(events.as_bytes());
    bnetl.ok(&["extract", "--partition-by", "level", "--table", "bylevel"]);
    bnetl.ok(&[
        "transform",
        "--partition-by",
        "event_date",
        "--table",
        "bydate",
    ]);
    assert!(bnetl.warehouse().join("bylevel/level=12").is_dir());
    for (sql, expected) in [
        (
            "SELECT MAX(level) AS top, SUM(level) AS total, COUNT(level) AS known, COUNT(*) AS all_rows FROM bylevel",
            "top,total,known,all_rows\n12,78,12,13\n",
        ),
        (
            "SELECT level IS NULL AS missing, level FROM bylevel ORDER BY level NULLS FIRST LIMIT 3",
            "missing,level\ntrue,\nfalse,1\nfalse,2\n",
        ),
        (
            "SELECT COUNT(*) AS n FROM bylevel WHERE level = 3",
            "n\n1\n",
        ),
        (
            "SELECT arrow_typeof(event_date) AS t, COUNT(*) AS n FROM bydate WHERE event_date >= DATE '2000-01-01' GROUP BY 1",
            "t,n\nDate32,13\n",
        ),
    ] {
        assert_eq!(bnetl.sql_csv(sql), expected, "{sql}");
    }
    // Spark's DESCRIBE: Spark's type names, the partition columns again under their heading;
    // DESCRIBE TABLE and EXTENDED are Spark's forms of it.
    let described = bnetl.sql_csv("DESCRIBE bylevel");
    assert!(
        described.starts_with("col_name,data_type,comment\n")
            && described.contains("\nHost,string,\n")
            && described.contains("\ntimestamp,timestamp,\n")
            && described.ends_with(
                "\nlevel,bigint,\n# Partition Information,,\n# col_name,data_type,comment\nlevel,bigint,\n"
            ),
        "{described}"
    );
    let extended = bnetl.sql_csv("DESC TABLE EXTENDED bydate");
    assert!(
        extended.contains("\nevent_date,date,\n# Partition Information,,")
            && extended.contains("\n# Detailed Table Information,,\nTable,bydate,\nProvider,parquet,\nLocation,file://"),
        "{extended}"
    );
    assert_eq!(
        bnetl.sql_csv("DESCRIBE bylevel level"),
        "info_name,info_value\ncol_name,level\ndata_type,bigint\ncomment,NULL\n"
    );
    let columns = bnetl.sql_csv("SHOW COLUMNS IN bylevel");
    assert!(
        columns.starts_with("col_name\nAccept\nHost\n") && columns.ends_with("\nlevel\n"),
        "{columns}"
    );
    // SHOW PARTITIONS: the folders of the committed files, the default partition included.
    let partitions = bnetl.sql_csv("SHOW PARTITIONS bylevel");
    let expected: Vec<String> = std::iter::once("partition".to_owned())
        .chain(
            (1..=12)
                .map(|i| format!("level={i}"))
                .chain(["level=__HIVE_DEFAULT_PARTITION__".to_owned()])
                .collect::<std::collections::BTreeSet<_>>(),
        )
        .collect();
    assert_eq!(partitions, expected.join("\n") + "\n");
    let err = bnetl.fails(&["sql", "SHOW PARTITIONS bydate_missing"], 2);
    assert!(err.contains("table 'bydate_missing' not found"), "{err}");
    let plan = bnetl.sql_csv("EXPLAIN SELECT COUNT(*) FROM bylevel WHERE level = 3");
    assert!(
        plan.contains("full_filters=[CAST(nullif(bylevel.level"),
        "the condition reaches the listing: {plan}"
    );
    let tables = bnetl.sql_csv("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
    assert!(tables.contains("bylevel,BASE TABLE"), "{tables}");
}
