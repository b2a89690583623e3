//! The warehouse on S3: a real S3-compatible server (moto), configured through the environment
//! variables object_store reads.

mod support;

use support::Bnetl;
use support::s3::S3;

fn on_s3(s3: &S3, prefix: &str) -> Bnetl {
    let mut bnetl = Bnetl::new();
    bnetl.env = s3.env();
    bnetl.env.push((
        "BNETL_WAREHOUSE".into(),
        format!("s3://{}/{prefix}", s3.bucket),
    ));
    bnetl
}

#[test]
fn the_seed_walkthrough_writes_and_queries_its_tables_on_s3() {
    let s3 = S3::start("bnetl");
    let bnetl = on_s3(&s3, "warehouse");
    // serve + the seed's ab commands, extract and filtered-writes to S3, then sql over S3.
    bnetl.replay_seed();
    assert!(
        !bnetl.warehouse().exists(),
        "nothing is written to the local default warehouse"
    );
    let keys = s3.keys("warehouse/");
    for expected in [
        "warehouse/extracted_events/_SUCCESS",
        "warehouse/extracted_events/_bnetl_log/00000000000000000001.json",
        "warehouse/purchases/_SUCCESS",
    ] {
        assert!(
            keys.iter().any(|k| k == expected),
            "{expected} in {keys:#?}"
        );
    }
    for partition in ["purchase_knife", "purchase_shield", "purchase_sword"] {
        let folder = format!("warehouse/purchases/event_type={partition}/part-");
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&folder) && k.ends_with(".snappy.parquet")),
            "{folder}* in {keys:#?}"
        );
    }
    assert!(
        !keys.iter().any(|k| k.contains(".bnetl-staging")),
        "staging is removed after the commit: {keys:#?}"
    );
    let status = bnetl.status("extracted_events");
    assert_eq!(status[0]["_SUCCESS"], "true");
    assert_eq!(status[0]["rows"], "128");
    assert_eq!(bnetl.lag("extracted_events"), 0);
}

#[test]
fn incremental_runs_and_overwrites_on_s3_keep_every_event_once() {
    let s3 = S3::start("games");
    let bnetl = on_s3(&s3, "prod/wh");
    let events = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!(r#"{{"event_type":"default","Host":"h{i}"}}"#) + "\n")
            .collect::<String>()
    };
    bnetl.produce_with(&["--partitions", "2"], events(0, 40).as_bytes());
    bnetl.ok(&["extract", "--incremental", "--max-rows-per-file", "7"]);
    bnetl.produce(events(40, 25).as_bytes());
    assert_eq!(bnetl.lag("extracted_events"), 25);
    bnetl.ok(&["extract", "--incremental", "--max-rows-per-file", "7"]);
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*), COUNT(DISTINCT Host) FROM extracted_events"),
        [65, 65]
    );
    assert_eq!(bnetl.lag("extracted_events"), 0);

    // An overwrite removes the earlier versions' objects once its own are in place.
    bnetl.ok(&["extract"]);
    let data: Vec<String> = s3
        .keys("prod/wh/extracted_events/")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(data.len(), 1, "{data:#?}");
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [65]
    );

    // Conditional creates on S3 (If-None-Match) keep concurrent runs from both committing.
    let outputs = bnetl.race(&["extract", "--mode", "append"]);
    let wins = outputs.iter().filter(|o| o.status.success()).count();
    assert!(wins >= 1);
    for o in outputs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("changed while this run was writing"), "{err}");
    }
    assert_eq!(
        bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events"),
        [65 * (1 + wins as i64)]
    );
}

#[test]
fn a_bucket_that_does_not_exist_is_a_clear_error_naming_it() {
    let s3 = S3::start("present");
    let mut bnetl = Bnetl::new();
    bnetl.env = s3.env();
    bnetl.produce(b"{\"event_type\":\"default\"}\n");
    let err = bnetl.fails(&["--warehouse", "s3://absent/wh", "extract"], 1);
    assert!(err.contains("s3://absent/wh"), "{err}");
}
