//! A table's schema across runs: events that drift (new fields, types that change both ways,
//! nested objects, fields that disappear) never make a table unreadable, and no value is lost:
//! each is in its column, in `_rescued_data`, or (a message that is not a JSON object) in
//! `_bad_records`. Checked through bnetl, DuckDB and PySpark.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::{Bnetl, Rng, python};

fn lines(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|e| e.to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `bnetl sql --format json QUERY`, one object per row.
fn rows(bnetl: &Bnetl, query: &str) -> Vec<serde_json::Map<String, Value>> {
    let output = bnetl.ok(&["sql", "--format", "json", query]);
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(row)) => row,
            other => panic!("not a JSON row: {line}: {other:?}"),
        })
        .collect()
}

/// Rows of the table as DuckDB and PySpark read them, and how many have rescued data:
/// `(rows, rescued)`.
fn peer_counts(table: &std::path::Path) -> (String, String) {
    let glob = format!("{}/*.parquet", table.display());
    let duckdb = python(&format!(
        "import duckdb\n\
         t = duckdb.sql(\"SELECT * FROM read_parquet('{glob}', union_by_name=true)\")\n\
         r = 'COUNT(_rescued_data)' if '_rescued_data' in t.columns else '0'\n\
         print(duckdb.sql(f'SELECT COUNT(*), {{r}} FROM t').fetchall()[0])"
    ));
    let spark = python(&format!(
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()\n\
         df = spark.read.option('mergeSchema', 'true').parquet('{}')\n\
         r = df.filter(df['_rescued_data'].isNotNull()).count() if '_rescued_data' in df.columns else 0\n\
         print((df.count(), r))",
        table.display()
    ));
    (duckdb.trim().to_owned(), spark.trim().to_owned())
}

#[test]
fn drift_across_incremental_runs_keeps_every_value_and_the_table_readable() {
    let bnetl = Bnetl::new();
    bnetl.produce(&lines(&[
        json!({"event_type": "purchase_sword", "Host": "c", "amount": 5, "price": 2.5}),
    ]));
    bnetl.ok(&["extract", "--incremental"]);
    // `price` mixes a number and a string in this run, so the run reads it as text; the
    // number still fits the table's DOUBLE.
    bnetl.produce(&lines(&[
        json!({"event_type": "purchase_sword", "Host": "e", "amount": "lots", "color": "red", "price": 2}),
        json!({"event_type": "purchase_sword", "Host": "f", "amount": "7", "price": "cheap"}),
    ]));
    let second = bnetl.ok(&["extract", "--incremental"]);
    let summary = stderr(&second);
    assert!(
        summary.contains("added column color (Utf8)")
            && summary.contains("rescued 1 value(s) of amount into _rescued_data")
            && summary.contains("rescued 1 value(s) of price into _rescued_data"),
        "{summary}"
    );

    let table = rows(
        &bnetl,
        "SELECT Host, amount, color, price, _rescued_data FROM extracted_events ORDER BY Host",
    );
    assert_eq!(
        table,
        [
            json!({"Host": "c", "amount": 5, "price": 2.5}),
            json!({"Host": "e", "color": "red", "price": 2.0, "_rescued_data": "{\"amount\":\"lots\"}"}),
            json!({"Host": "f", "amount": 7, "_rescued_data": "{\"price\":\"cheap\"}"}),
        ]
        .map(|v| v.as_object().cloned().expect("object"))
    );

    // Spark's get_json_object reads the rescued values back.
    assert_eq!(
        rows(
            &bnetl,
            "SELECT Host, get_json_object(_rescued_data, '$.amount') AS amount, get_json_object(_rescued_data, '$.price') AS price FROM extracted_events WHERE _rescued_data IS NOT NULL ORDER BY Host",
        ),
        [
            json!({"Host": "e", "amount": "lots"}),
            json!({"Host": "f", "price": "cheap"}),
        ]
        .map(|v| v.as_object().cloned().expect("object"))
    );

    // The table's schema says when each column appeared.
    let listing = bnetl.ok(&["schema", "extracted_events", "--format", "csv"]);
    let listing = String::from_utf8(listing.stdout).expect("utf-8");
    for line in [
        "amount,Int64,1,",
        "color,Utf8,2,",
        "_rescued_data,Utf8,2,",
        "Host,Utf8,1,",
    ] {
        assert!(listing.contains(line), "{line} in\n{listing}");
    }

    let (duckdb, spark) = peer_counts(&bnetl.warehouse().join("extracted_events"));
    assert_eq!(duckdb, "(3, 2)");
    assert_eq!(spark, "(3, 2)");
}

#[test]
fn schema_evolution_policies_decide_what_a_new_column_becomes() {
    let bnetl = Bnetl::new();
    bnetl.produce(&lines(&[json!({"event_type": "a", "Host": "h1"})]));
    bnetl.ok(&["extract", "--incremental"]);
    bnetl.produce(&lines(&[
        json!({"event_type": "b", "Host": "h2", "level": 3}),
    ]));

    let err = bnetl.fails(
        &[
            "extract",
            "--incremental",
            "--schema-evolution",
            "fail-on-new-columns",
        ],
        1,
    );
    assert!(
        err.contains("table extracted_events has no column level (Int64)")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        bnetl.staged_runs(),
        0,
        "a refused run leaves nothing staged"
    );
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [1]
    );

    // `rescue` keeps the schema and the value; Auto Loader's camelCase name works too.
    let rescued = bnetl.ok(&["extract", "--incremental", "--schema-evolution", "rescue"]);
    assert!(
        stderr(&rescued).contains("rescued 1 value(s) of level"),
        "{}",
        stderr(&rescued)
    );
    assert_eq!(
        rows(
            &bnetl,
            "SELECT Host, _rescued_data FROM extracted_events ORDER BY Host"
        ),
        [
            json!({"Host": "h1"}),
            json!({"Host": "h2", "_rescued_data": "{\"level\":3}"}),
        ]
        .map(|v| v.as_object().cloned().expect("object"))
    );

    bnetl.produce(&lines(&[
        json!({"event_type": "c", "Host": "h3", "weapon": "axe"}),
    ]));
    let ignored = bnetl.ok(&["extract", "--incremental", "--schema-evolution", "none"]);
    assert!(
        stderr(&ignored).contains("ignored new column weapon"),
        "{}",
        stderr(&ignored)
    );
    bnetl.produce(&lines(&[
        json!({"event_type": "d", "Host": "h4", "weapon": "bow"}),
    ]));
    bnetl.ok(&[
        "extract",
        "--incremental",
        "--schema-evolution",
        "addNewColumns",
    ]);
    assert_eq!(
        rows(
            &bnetl,
            "SELECT Host, weapon FROM extracted_events WHERE Host >= 'h3' ORDER BY Host"
        ),
        [
            json!({"Host": "h3"}),
            json!({"Host": "h4", "weapon": "bow"})
        ]
        .map(|v| v.as_object().cloned().expect("object"))
    );

    // An overwrite replaces the table and takes the run's schema, as Spark's overwrite does.
    bnetl.produce(&lines(&[
        json!({"event_type": "e", "Host": "h5", "level": "max"}),
    ]));
    bnetl.ok(&["extract", "--mode", "overwrite"]);
    let listing = bnetl.ok(&["schema", "extracted_events", "--format", "csv"]);
    let listing = String::from_utf8(listing.stdout).expect("utf-8");
    assert!(listing.contains("level,Utf8,5,"), "{listing}");
    assert!(!listing.contains("_rescued_data"), "{listing}");
}

/// A value of JSON kind `kind` (0..9; 8 is null).
fn value_of_kind(rng: &mut Rng, kind: u64) -> Value {
    match kind {
        0 => json!(rng.below(1000) as i64 - 500),
        1 => json!(rng.below(1000) as f64 / 8.0 + 0.5),
        2 => json!(rng.below(2) == 0),
        3 => json!(format!("word{}", rng.below(50))),
        4 => json!(rng.below(100).to_string()),
        5 => json!({"level": rng.below(9), "tags": ["a", "b"]}),
        6 => json!([rng.below(5), "x"]),
        7 => json!(rng.below(2) == 0).to_string().into(),
        _ => Value::Null,
    }
}

/// Per run, each field mostly holds one kind (so columns get narrow types that later runs
/// drift from), is sometimes absent or of another kind, and is missing from whole runs.
fn drifting_value(rng: &mut Rng, run_kind: Option<u64>) -> Option<Value> {
    let kind = run_kind?;
    match rng.below(20) {
        0..=4 => None,
        5 => {
            let other = rng.below(9);
            Some(value_of_kind(rng, other))
        }
        _ => Some(value_of_kind(rng, kind)),
    }
}

/// True when `cell` (as bnetl prints it) holds the JSON value `original`: the same value, or
/// its text in a string column, or a number of the same value in a numeric column.
fn holds(cell: Option<&Value>, original: &Value) -> bool {
    let Some(cell) = cell.filter(|c| !c.is_null()) else {
        return false;
    };
    if cell == original {
        return true;
    }
    match (cell, original) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(text), other) => {
            text == &other.to_string()
                || serde_json::from_str::<Value>(text).is_ok_and(|parsed| {
                    // A number keeps its value, not its spelling, through a DOUBLE: 30 → "30.0".
                    &parsed == other || matches!((&parsed, other), (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64())
                })
        }
        (cell, Value::String(text)) => {
            let shown = cell.to_string();
            shown == *text
                || serde_json::from_str::<Value>(text)
                    .is_ok_and(|parsed| holds(Some(cell), &parsed))
        }
        _ => false,
    }
}

#[test]
fn randomized_drift_over_incremental_append_overwrite_and_declared_runs_loses_no_value() {
    let mut rng = Rng::seeded("BNETL_DRIFT_SEED");
    let seed = rng.seed;
    let bnetl = Bnetl::new();
    let fields = ["amount", "level", "item", "score"];
    let mut produced: Vec<Option<Value>> = Vec::new(); // by offset; None: not a JSON object
    let mut expected_rows = 0usize;
    let mut committed_to = 0usize; // offsets the table's log holds, for --incremental
    for run in 0..8 {
        // This run's kind per field; a field is missing from about one run in five.
        let kinds: Vec<Option<u64>> = fields
            .iter()
            .map(|_| (rng.below(5) != 0).then(|| rng.below(9)))
            .collect();
        let mut batch = Vec::new();
        for _ in 0..(5 + rng.below(20)) {
            if rng.below(15) == 0 {
                batch.extend_from_slice(b"{not json\n");
                produced.push(None);
                continue;
            }
            let mut event = serde_json::Map::new();
            event.insert("event_type".into(), json!("purchase_sword"));
            event.insert("Host".into(), json!(format!("user{}.test", rng.below(4))));
            for (field, kind) in fields.iter().zip(&kinds) {
                if let Some(value) = drifting_value(&mut rng, *kind) {
                    event.insert((*field).into(), value);
                }
            }
            batch.extend(Value::Object(event.clone()).to_string().into_bytes());
            batch.push(b'\n');
            produced.push(Some(Value::Object(event)));
        }
        bnetl.produce(&batch);
        let valid =
            |range: std::ops::Range<usize>| produced[range].iter().filter(|e| e.is_some()).count();
        let (args, rows_now): (&[&str], usize) = match (run, rng.below(4)) {
            (_, 3) => (
                &[
                    "extract",
                    "--incremental",
                    "--schema",
                    "event_type STRING, Host STRING, amount BIGINT, level DOUBLE, score BOOLEAN",
                ],
                expected_rows + valid(committed_to..produced.len()),
            ),
            (0, _) | (_, 0) => (
                &["extract", "--incremental"],
                expected_rows + valid(committed_to..produced.len()),
            ),
            (_, 1) => (
                &["extract", "--mode", "append"],
                expected_rows + valid(0..produced.len()),
            ),
            _ => (
                &["extract", "--mode", "overwrite"],
                valid(0..produced.len()),
            ),
        };
        let output = bnetl.ok(args);
        eprintln!("run {run}: {args:?}: {}", stderr(&output).trim());
        expected_rows = rows_now;
        committed_to = produced.len();
        assert_eq!(
            bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
            [expected_rows as i64],
            "seed {seed}, run {run}: the table must stay readable with every row"
        );
    }

    // Every value of every event is in its column or in _rescued_data.
    let table = rows(&bnetl, "SELECT * EXCLUDE (key) FROM extracted_events");
    let mut seen_offsets = BTreeSet::new();
    for row in &table {
        let offset = row["offset"].as_u64().expect("offset") as usize;
        seen_offsets.insert(offset);
        let Some(Value::Object(event)) = &produced[offset] else {
            panic!("seed {seed}: offset {offset} is not a JSON object but is in the table");
        };
        let rescued: BTreeMap<String, Value> = match row.get("_rescued_data") {
            Some(Value::String(text)) => serde_json::from_str(text).expect("rescued data is JSON"),
            _ => BTreeMap::new(),
        };
        for (field, value) in event.iter().filter(|(_, v)| !v.is_null()) {
            assert!(
                holds(row.get(field), value) || holds(rescued.get(field), value),
                "seed {seed}: offset {offset}: {field} = {value} is neither in its column nor rescued: {row:?}"
            );
        }
    }
    // ... and every message is in the table or in _bad_records.
    let bad: BTreeSet<usize> = rows(
        &bnetl,
        "SELECT \"offset\" FROM _bad_records WHERE table_name = 'extracted_events'",
    )
    .iter()
    .map(|r| r["offset"].as_u64().expect("offset") as usize)
    .collect();
    for (offset, event) in produced.iter().enumerate() {
        let kept = if event.is_some() {
            seen_offsets.contains(&offset)
        } else {
            bad.contains(&offset)
        };
        assert!(kept, "seed {seed}: offset {offset} was lost");
    }

    let rescued_rows = table
        .iter()
        .filter(|r| r.get("_rescued_data").is_some_and(|v| !v.is_null()))
        .count();
    let (duckdb, spark) = peer_counts(&bnetl.warehouse().join("extracted_events"));
    let want = format!("({}, {rescued_rows})", table.len());
    assert_eq!(duckdb, want, "seed {seed}: DuckDB");
    assert_eq!(spark, want, "seed {seed}: PySpark");
}

#[test]
fn a_declared_schema_reads_no_inference_and_rescues_what_it_has_no_place_for() {
    let bnetl = Bnetl::new();
    let mut input = lines(&[
        json!({"event_type": "purchase_sword", "Host": "a", "amount": 5, "extra": {"n": 1}}),
        json!({"event_type": "purchase_sword", "Host": "b", "amount": "lots"}),
        json!({"event_type": "join_guild", "Host": "c", "amount": 5.5, "vip": true}),
    ]);
    input.extend_from_slice(b"garbage\n");
    bnetl.produce(&input);
    let ddl = bnetl.data_dir().join("events.ddl");
    std::fs::write(
        &ddl,
        "event_type STRING, `Host` STRING, amount BIGINT, vip BOOLEAN",
    )
    .expect("ddl");
    bnetl.ok(&["extract", "--schema", ddl.to_str().expect("utf-8 path")]);
    assert_eq!(
        rows(
            &bnetl,
            "SELECT Host, amount, vip, _rescued_data FROM extracted_events ORDER BY Host"
        ),
        [
            json!({"Host": "a", "amount": 5, "_rescued_data": "{\"extra\":{\"n\":1}}"}),
            json!({"Host": "b", "_rescued_data": "{\"amount\":\"lots\"}"}),
            json!({"Host": "c", "vip": true, "_rescued_data": "{\"amount\":5.5}"}),
        ]
        .map(|v| v.as_object().cloned().expect("object"))
    );
    // Declared order first, then the core columns it did not name, then _rescued_data.
    let listing = bnetl.ok(&["schema", "extracted_events", "--format", "csv"]);
    let columns: Vec<String> = String::from_utf8(listing.stdout)
        .expect("utf-8")
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        columns[..8],
        [
            "event_type",
            "Host",
            "amount",
            "vip",
            "User-Agent",
            "Accept",
            "_rescued_data",
            "key"
        ]
    );
    assert_eq!(bnetl.sql_numbers("SELECT COUNT(*) FROM _bad_records"), [1]);

    let err = bnetl.fails(&["extract", "--schema", "amount DECIMAL(10,2)"], 2);
    assert!(
        err.contains("type DECIMAL") && err.contains("not supported"),
        "{err}"
    );
    let err = bnetl.fails(&["extract", "--schema", "offset BIGINT"], 2);
    assert!(err.contains("column offset is reserved"), "{err}");
}
