//! The warehouse on a real HDFS cluster. No NameNode can be started on the CI machines, so these
//! tests are ignored by default and run against a cluster you name:
//!
//! ```sh
//! BNETL_TEST_HDFS_URL=hdfs://namenode:8020/tmp/bnetl-test HADOOP_CONF_DIR=/etc/hadoop/conf \
//!   cargo test --release --test cli_hdfs -- --ignored
//! ```

mod support;

use support::Bnetl;

fn hdfs_warehouse(name: &str) -> String {
    let base = std::env::var("BNETL_TEST_HDFS_URL")
        .expect("set BNETL_TEST_HDFS_URL=hdfs://namenode:port/path to run the HDFS tests");
    format!(
        "{}/{name}-{}",
        base.trim_end_matches('/'),
        std::process::id()
    )
}

#[test]
#[ignore = "needs an HDFS cluster: BNETL_TEST_HDFS_URL=hdfs://namenode:port/path"]
fn the_seed_walkthrough_writes_and_queries_its_tables_on_hdfs() {
    let mut bnetl = Bnetl::new();
    bnetl
        .env
        .push(("BNETL_WAREHOUSE".into(), hdfs_warehouse("seed")));
    bnetl.replay_seed();
    let status = bnetl.status("extracted_events");
    assert_eq!(status[0]["_SUCCESS"], "true");
    assert_eq!(bnetl.lag("extracted_events"), 0);
}

#[test]
#[ignore = "needs an HDFS cluster: BNETL_TEST_HDFS_URL=hdfs://namenode:port/path"]
fn incremental_runs_on_hdfs_append_only_new_events() {
    let mut bnetl = Bnetl::new();
    bnetl
        .env
        .push(("BNETL_WAREHOUSE".into(), hdfs_warehouse("incremental")));
    bnetl.produce(b"{\"event_type\":\"default\"}\n{\"event_type\":\"default\"}\n");
    bnetl.ok(&["extract", "--incremental"]);
    bnetl.produce(b"{\"event_type\":\"purchase_sword\"}\n");
    assert_eq!(bnetl.lag("extracted_events"), 1);
    bnetl.ok(&["extract", "--incremental"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [3]
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);
}
