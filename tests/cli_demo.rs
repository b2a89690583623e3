//! `bnetl demo`: the seed walkthrough in one command prints the seed's tables.

mod support;

use support::{Bnetl, SEED_EVENT_TYPES, SEED_EVENT_TYPES_SQL, SEED_HOSTS, SEED_HOSTS_SQL};

const SEED_EVENT_TYPES_SHOW: &str = "\
+---------------+-----------+
|     event_type|event_count|
+---------------+-----------+
|        default|         37|
|purchase_shield|         29|
| purchase_sword|         25|
| purchase_knife|         20|
|  upgrade_sword|         10|
| upgrade_shield|          7|
+---------------+-----------+
";

const SEED_HOSTS_SHOW: &str = "\
+------------------+----------------+
|              Host|number_of_player|
+------------------+----------------+
|user4.spectrum.com|              40|
|     user2.att.com|              29|
| user1.comcast.com|              25|
| user3.verizon.com|              20|
|    user5.fios.com|              14|
+------------------+----------------+
";

#[test]
fn demo_prints_the_seed_tables_exactly() {
    let bnetl = Bnetl::new();
    let output = bnetl.ok(&["demo"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        // Spark's name for COUNT(*), as the seed's walkthrough prints it.
        stdout.contains("+--------+\n|count(1)|\n+--------+\n|     128|\n+--------+\n"),
        "{stdout}"
    );
    assert!(stdout.contains(SEED_EVENT_TYPES_SHOW), "{stdout}");
    assert!(stdout.contains(SEED_HOSTS_SHOW), "{stdout}");
    assert!(stdout.contains("128 requests"), "{stdout}");
    assert!(stdout.contains("filtered-writes: 128 events"), "{stdout}");
    assert!(stdout.contains("-> purchases: 74 rows"), "{stdout}");
}

#[test]
fn demo_leaves_a_warehouse_that_bnetl_sql_queries() {
    let bnetl = Bnetl::new();
    let demo_dir = bnetl.data_dir().join("seed-demo");
    let demo_dir = demo_dir.to_str().unwrap();
    bnetl.ok(&["demo", "--dir", demo_dir]);
    // A second run starts from an empty folder: the numbers do not double.
    bnetl.ok(&["demo", "--dir", demo_dir]);
    let sql = |query: &str| {
        let warehouse = format!("{demo_dir}/warehouse");
        let output = bnetl.ok(&["--warehouse", &warehouse, "sql", "--format", "csv", query]);
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(
        sql("SELECT COUNT(*) AS total FROM extracted_events"),
        "total\n128\n"
    );
    assert_eq!(sql(SEED_EVENT_TYPES_SQL), SEED_EVENT_TYPES);
    assert_eq!(sql(SEED_HOSTS_SQL), SEED_HOSTS);
    assert_eq!(sql("SELECT COUNT(*) AS n FROM purchases"), "n\n74\n");
    assert_eq!(sql("SELECT COUNT(*) AS n FROM _bad_records"), "n\n0\n");
}

#[test]
fn demo_refuses_to_empty_a_folder_that_is_not_a_demo() {
    let bnetl = Bnetl::new();
    let precious = bnetl.data_dir().join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), "keep me").unwrap();
    let stderr = bnetl.fails(&["demo", "--dir", precious.to_str().unwrap()], 2);
    assert!(stderr.contains("not a bnetl demo folder"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(precious.join("notes.txt")).unwrap(),
        "keep me"
    );
}
