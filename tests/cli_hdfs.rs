//! The warehouse on a real HDFS: Hadoop's MiniDFSCluster (NameNode and DataNodes in a JVM the
//! tests start; bnetl reaches it through hdfs-native, with no JVM of its own). The seed's
//! walkthrough on the seed's own `/tmp` paths, checked by PySpark (the seed's sanity check,
//! verbatim) and by Hadoop's own client; incremental runs; two runs racing; an HA name service
//! whose active NameNode fails over during a run; a DataNode killed during a write.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::hdfs::Hdfs;
use support::{Bnetl, SEED_EVENT_TYPES, SEED_HOSTS, SEED_HOSTS_SQL, python};

fn on_hdfs(hdfs: &Hdfs, warehouse: &str) -> Bnetl {
    let mut bnetl = Bnetl::new();
    bnetl.env = hdfs.env(warehouse);
    bnetl
}

/// `n` game events, one JSON object a line, with a unique `seq`.
fn events(first: usize, n: usize) -> Vec<u8> {
    (first..first + n)
        .flat_map(|i| {
            format!(
                "{{\"event_type\":\"purchase_sword\",\"Host\":\"user{}.test\",\"seq\":{i}}}\n",
                i % 20
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn the_seed_walkthrough_on_hdfs_tmp_gives_the_seed_tables_to_bnetl_spark_and_hadoop() {
    let hdfs = Hdfs::shared();
    // The seed's own paths: /tmp/extracted_events, /tmp/purchases.
    let warehouse = format!("{}/tmp", hdfs.url);
    let bnetl = on_hdfs(hdfs, &warehouse);
    bnetl.replay_seed();
    let status = bnetl.status("extracted_events");
    assert_eq!(status[0]["_SUCCESS"], "true");
    assert_eq!(bnetl.lag("extracted_events"), 0);
    assert_eq!(bnetl.status("purchases")[0]["rows"], "74");

    // Hadoop's own client sees the seed's layout, with the permissions of the seed's listing.
    let listing = hdfs.ls(&warehouse);
    let find = |path: &str| listing.iter().find(|(_, p)| p == path);
    assert_eq!(
        find("extracted_events/_SUCCESS").map(|e| e.0.as_str()),
        Some("-rw-r--r--"),
        "{listing:?}"
    );
    assert_eq!(
        find("extracted_events").map(|e| e.0.as_str()),
        Some("drwxr-xr-x")
    );
    let purchases: Vec<&(String, String)> = listing
        .iter()
        .filter(|(_, p)| p.starts_with("purchases/event_type=") && p.ends_with(".snappy.parquet"))
        .collect();
    let mut kinds: Vec<&str> = purchases
        .iter()
        .map(|(_, p)| p.split('/').nth(1).unwrap())
        .collect();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "event_type=purchase_knife",
            "event_type=purchase_shield",
            "event_type=purchase_sword"
        ],
        "{listing:?}"
    );
    for (permission, path) in &listing {
        if path.contains("_bnetl_log") || path.starts_with('.') {
            continue;
        }
        let expected = if path.ends_with(".parquet") || path.ends_with("_SUCCESS") {
            "-rw-r--r--"
        } else {
            "drwxr-xr-x"
        };
        assert_eq!(permission, expected, "{path}");
    }
    assert!(
        listing
            .iter()
            .any(|(_, p)| p.starts_with("purchases/event_type=purchase_sword/part-")),
        "{listing:?}"
    );

    // The seed's sanity check, verbatim, in PySpark with HDFS as the default file system.
    let spark = python(&format!(
        r#"
from pyspark.sql import SparkSession, SQLContext
spark = SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false') \
    .config('spark.hadoop.fs.defaultFS', '{url}').getOrCreate()
spark.sparkContext.setLogLevel('ERROR')
sqlContext = SQLContext(spark.sparkContext)
my_extracted_events = sqlContext.read.parquet('/tmp/extracted_events')
my_extracted_events.printSchema()
my_extracted_events.show(10, False)
my_extracted_events.registerTempTable('gamer')
spark.sql("SELECT COUNT(*) FROM gamer").show()
spark.sql("SELECT event_type, COUNT(event_type) as event_count FROM gamer GROUP BY event_type ORDER BY event_count DESC").show()
spark.sql("SELECT Host, COUNT(*) as number_of_player FROM gamer GROUP BY Host ORDER BY number_of_player DESC").show()
spark.stop()
"#,
        url = hdfs.url
    ));
    assert!(
        spark.starts_with(
            "root\n |-- Accept: string (nullable = true)\n |-- Host: string (nullable = true)\n |-- User-Agent: string (nullable = true)\n |-- event_type: string (nullable = true)\n"
        ),
        "{spark}"
    );
    assert!(
        spark.contains("|*/*   |user1.comcast.com|ApacheBench/2.3|default   |")
            && spark.contains("only showing top 10 rows"),
        "{spark}"
    );
    for table in [
        "+--------+\n|count(1)|\n+--------+\n|     128|\n+--------+\n",
        "+---------------+-----------+\n|     event_type|event_count|\n+---------------+-----------+\n|        default|         37|\n|purchase_shield|         29|\n| purchase_sword|         25|\n| purchase_knife|         20|\n|  upgrade_sword|         10|\n| upgrade_shield|          7|\n+---------------+-----------+\n",
        "+------------------+----------------+\n|              Host|number_of_player|\n+------------------+----------------+\n|user4.spectrum.com|              40|\n|     user2.att.com|              29|\n| user1.comcast.com|              25|\n| user3.verizon.com|              20|\n|    user5.fios.com|              14|\n+------------------+----------------+\n",
    ] {
        assert!(spark.contains(table), "{table} not in:\n{spark}");
    }
    // And bnetl's own queries, once more, over HDFS.
    assert_eq!(
        bnetl.sql_csv(support::SEED_EVENT_TYPES_SQL),
        SEED_EVENT_TYPES
    );
    assert_eq!(bnetl.sql_csv(SEED_HOSTS_SQL), SEED_HOSTS);
}

#[test]
fn incremental_runs_on_hdfs_append_only_new_events() {
    let hdfs = Hdfs::shared();
    let bnetl = on_hdfs(hdfs, &hdfs.folder("incremental"));
    bnetl.produce(&events(0, 2));
    bnetl.ok(&["extract", "--incremental"]);
    bnetl.produce(&events(2, 1));
    assert_eq!(bnetl.lag("extracted_events"), 1);
    bnetl.ok(&["extract", "--incremental"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(DISTINCT seq) FROM extracted_events"),
        [3, 3]
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);
}

#[test]
fn two_runs_racing_for_one_hdfs_table_commit_one_version_each_or_conflict() {
    let hdfs = Hdfs::shared();
    let bnetl = on_hdfs(hdfs, &hdfs.folder("race"));
    bnetl.produce(&events(0, 20_000));
    bnetl.ok(&["extract"]);
    bnetl.race_until_conflict(|| {});
    let n = bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events")[0];
    let version: i64 = bnetl.status("extracted_events")[0]["version"]
        .parse()
        .unwrap();
    assert_eq!(n, version * 20_000, "each version added one whole read");
}

/// After a run that met a fault: the run succeeded, or it failed clearly and committed nothing;
/// then reruns (each failing the same way while the cluster heals, for at most a minute) leave
/// each of the `produced` events in the table once.
fn exactly_once_after_rerun(
    hdfs: &Hdfs,
    bnetl: &Bnetl,
    warehouse: &str,
    run: (bool, String),
    produced: i64,
) {
    let versions = || {
        hdfs.ls(warehouse)
            .iter()
            .filter(|(_, p)| p.starts_with("extracted_events/_bnetl_log/") && p.ends_with(".json"))
            .count()
    };
    let staged = || {
        hdfs.ls(warehouse)
            .iter()
            .filter(|(_, p)| p.starts_with(".bnetl-staging/") && p.ends_with(".parquet"))
            .count()
    };
    let committed = versions();
    let (mut succeeded, mut log) = run;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !succeeded {
        assert!(log.contains("bnetl: "), "no clear error: {log}");
        assert_eq!(versions(), committed, "a failed run committed: {log}");
        assert_eq!(staged(), 0, "a failed run left staged files: {log}");
        assert!(
            Instant::now() < deadline,
            "reruns kept failing: {log}\n{:?}",
            hdfs.ls(warehouse)
        );
        std::thread::sleep(Duration::from_secs(1));
        let output = bnetl
            .cmd(&["extract", "--incremental"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        succeeded = output.status.success();
        log = String::from_utf8_lossy(&output.stderr).into_owned();
        eprintln!("rerun: succeeded {succeeded}: {log}");
    }
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(DISTINCT seq) FROM extracted_events"),
        [produced, produced]
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);
}

#[test]
fn an_ha_name_service_fails_over_during_a_run_and_its_rerun_loses_nothing() {
    let hdfs = Hdfs::start(&["--ha"]);
    assert!(hdfs.url.starts_with("hdfs://bnetl-ns"), "{}", hdfs.url);
    let warehouse = format!("{}/warehouse", hdfs.url);
    let bnetl = on_hdfs(&hdfs, &warehouse);
    bnetl.produce(&events(0, 100));
    bnetl.ok(&["extract", "--incremental"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [100]
    );

    bnetl.produce(&events(100, 300_000));
    let run = bnetl.during_run(
        &["extract", "--incremental", "--max-rows-per-file", "20000"],
        "snapshotted offsets",
        || {
            let active = hdfs.command("failover");
            eprintln!("failover: {active:?}");
        },
    );
    eprintln!("run during failover succeeded: {}", run.0);
    exactly_once_after_rerun(&hdfs, &bnetl, &warehouse, run, 300_100);
}

#[test]
fn a_datanode_killed_during_a_write_completes_or_fails_with_nothing_committed() {
    let hdfs = Hdfs::start(&["--datanodes", "4"]);
    let warehouse = format!("{}/warehouse", hdfs.url);
    let bnetl = on_hdfs(&hdfs, &warehouse);
    bnetl.produce(&events(0, 300_000));
    let started = Instant::now();
    let run = bnetl.during_run(
        &["extract", "--incremental", "--max-rows-per-file", "20000"],
        "snapshotted offsets",
        || {
            std::thread::sleep(Duration::from_millis(100));
            hdfs.command("kill-datanode 0");
        },
    );
    eprintln!(
        "run with a DataNode killed: succeeded {} after {:?}: {}",
        run.0,
        started.elapsed(),
        run.1
    );
    // Blocks are written only to staged files: a failure names a staged file.
    assert!(
        run.0 || run.1.contains(&format!("{warehouse}/.bnetl-staging/")),
        "the error names the file at fault: {}",
        run.1
    );
    exactly_once_after_rerun(&hdfs, &bnetl, &warehouse, run, 300_000);
}

#[test]
fn a_kerberized_cluster_is_reached_with_a_keytab_and_refused_clearly_without_a_ticket() {
    let hdfs = Hdfs::start(&["--kerberos", "--datanodes", "1"]);
    let warehouse = format!("{}/tmp/kerberized", hdfs.url);
    let mut bnetl = on_hdfs(&hdfs, &warehouse);
    let conf = |file: &str| hdfs.conf_dir.join(file).to_string_lossy().into_owned();
    let cache = bnetl.dir.path().join("krb5cc");
    bnetl.env.extend([
        ("KRB5_CONFIG".to_owned(), conf("krb5.conf")),
        ("KRB5CCNAME".to_owned(), format!("FILE:{}", cache.display())),
    ]);
    bnetl.produce(&events(0, 1000));

    // No ticket in the cache and no keytab: refused at once, naming the cluster and the remedy;
    // nothing written.
    let started = Instant::now();
    let stderr = bnetl.fails(&["extract"], 1);
    assert!(
        stderr.contains("Kerberos") && stderr.contains("kinit") && stderr.contains(&hdfs.url),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    let written = hdfs.ls(&format!("{}/tmp", hdfs.url));
    assert!(
        written
            .iter()
            .all(|(_, path)| !path.starts_with("kerberized")),
        "{written:?}"
    );

    // With alice's keytab (MIT Kerberos gets her ticket from it, as `kinit -kt` would).
    bnetl
        .env
        .push(("KRB5_CLIENT_KTNAME".to_owned(), conf("alice.keytab")));
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(DISTINCT seq) FROM extracted_events"),
        [1000, 1000]
    );
    assert_eq!(bnetl.status("extracted_events")[0]["_SUCCESS"], "true");
    // Hadoop sees alice's files: the NameNode authenticated her principal.
    let listing = hdfs.command("ls /tmp/kerberized/extracted_events/_SUCCESS");
    assert!(
        listing.len() == 1 && listing[0].split_whitespace().nth(1) == Some("alice"),
        "{listing:?}"
    );
}
