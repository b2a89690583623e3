//! `bnetl filtered-writes`: purchases, Hive-partitioned, read back by DuckDB and Spark.

mod support;

use support::{Bnetl, fixture, python};

const PURCHASES_BY_TYPE: &str = "purchase_knife 20\npurchase_shield 29\npurchase_sword 25\n";

fn seeded() -> Bnetl {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).unwrap());
    bnetl.ok(&["filtered-writes"]);
    bnetl
}

#[test]
fn purchases_land_in_event_type_folders_with_a_success_marker() {
    let bnetl = seeded();
    let table = bnetl.warehouse().join("purchases");
    assert!(table.join("_SUCCESS").is_file());
    let mut folders: Vec<String> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "_SUCCESS" && name != "_bnetl_log")
        .collect();
    folders.sort();
    assert_eq!(
        folders,
        [
            "event_type=purchase_knife",
            "event_type=purchase_shield",
            "event_type=purchase_sword"
        ]
    );
    for folder in &folders {
        let files: Vec<String> = std::fs::read_dir(table.join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(
            files[0].starts_with("part-") && files[0].ends_with(".snappy.parquet"),
            "{files:?}"
        );
    }
    assert_eq!(
        bnetl.sql_csv("SELECT event_type, COUNT(*) AS n FROM purchases GROUP BY event_type ORDER BY event_type"),
        "event_type,n\npurchase_knife,20\npurchase_shield,29\npurchase_sword,25\n"
    );
}

#[test]
fn duckdb_reads_the_purchases_table_back() {
    let bnetl = seeded();
    let table = bnetl.warehouse().join("purchases");
    let out = python(&format!(
        "import duckdb\n\
         rows = duckdb.sql(\"SELECT event_type, COUNT(*) FROM read_parquet('{}/*/*.parquet', hive_partitioning=true) GROUP BY 1 ORDER BY 1\").fetchall()\n\
         print(''.join(f'{{t}} {{n}}\\n' for t, n in rows), end='')",
        table.display()
    ));
    assert_eq!(out, PURCHASES_BY_TYPE);
}

#[test]
fn spark_reads_the_purchases_table_back() {
    let bnetl = seeded();
    let table = bnetl.warehouse().join("purchases");
    let out = python(&format!(
        "from pyspark.sql import SparkSession\n\
         spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false').getOrCreate()\n\
         df = spark.read.parquet('{}')\n\
         rows = df.groupBy('event_type').count().orderBy('event_type').collect()\n\
         print(''.join(f'{{r[0]}} {{r[1]}}\\n' for r in rows), end='')\n\
         print(sorted(f.name for f in df.schema.fields))\n\
         spark.stop()",
        table.display()
    ));
    assert!(out.starts_with(PURCHASES_BY_TYPE), "{out}");
    assert!(
        out.contains(
            "['Accept', 'Host', 'User-Agent', 'event_type', 'key', 'offset', 'partition', 'timestamp', 'timestampType', 'topic']"
        ),
        "{out}"
    );
}
