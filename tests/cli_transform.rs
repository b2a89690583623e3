//! `bnetl transform`: the analyst columns of queries/transform.sql.

mod support;

use support::{Bnetl, fixture};

#[test]
fn transform_splits_event_type_and_dates_each_event() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).unwrap());
    bnetl.ok(&["transform"]);
    assert_eq!(
        bnetl.sql_csv("SELECT action, item, COUNT(*) AS n FROM transformed_events GROUP BY action, item ORDER BY action, item"),
        "action,item,n\ndefault,,37\npurchase,knife,20\npurchase,shield,29\npurchase,sword,25\nupgrade,shield,7\nupgrade,sword,10\n"
    );
    assert_eq!(
        bnetl.sql_csv(r#"SELECT COUNT(*) AS n FROM transformed_events WHERE event_date = CAST("timestamp" AS DATE) AND "Host" IS NOT NULL"#),
        "n\n128\n"
    );
}

#[test]
fn a_query_file_replaces_the_shipped_transform() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/seed.jsonl")).unwrap());
    let query = bnetl.data_dir().join("hosts.sql");
    std::fs::write(
        &query,
        "-- players per host\nSELECT \"Host\", COUNT(*) AS events FROM events GROUP BY \"Host\"\n",
    )
    .unwrap();
    bnetl.ok(&[
        "transform",
        "--query",
        query.to_str().unwrap(),
        "--table",
        "host_counts",
    ]);
    assert_eq!(
        bnetl.sql_csv("SELECT * FROM host_counts ORDER BY events DESC"),
        "Host,events\nuser4.spectrum.com,40\nuser2.att.com,29\nuser1.comcast.com,25\nuser3.verizon.com,20\nuser5.fios.com,14\n"
    );
}
