//! `bnetl produce`: lines in, one message each, byte for byte.

mod support;

use support::{Bnetl, fixture};

#[test]
fn every_line_becomes_one_message_in_order() {
    let bnetl = Bnetl::new();
    let file = fixture("events/seed.jsonl");
    let output = bnetl.ok(&["produce", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("produce: 128 messages"), "{stderr}");
    // Appending again continues the offsets.
    bnetl.produce(b"{\"event_type\": \"join_guild\"}");
    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT COUNT(*) AS n, MIN("offset") AS first, MAX("offset") AS last FROM extracted_events"#),
        "n,first,last\n129,0,128\n"
    );
    assert_eq!(
        bnetl.sql_csv(r#"SELECT event_type FROM extracted_events WHERE "offset" = 128"#),
        "event_type\njoin_guild\n"
    );
}

#[test]
fn a_missing_input_file_is_named() {
    let bnetl = Bnetl::new();
    let stderr = bnetl.fails(&["produce", "/no/such/events.jsonl"], 1);
    assert!(
        stderr.contains("cannot open /no/such/events.jsonl"),
        "{stderr}"
    );
}

#[test]
fn keys_and_partitions_can_be_given_per_line_like_kcat() {
    let bnetl = Bnetl::new();
    let input = bnetl.data_dir().join("keyed.txt");
    std::fs::write(
        &input,
        "player-1|{\"event_type\": \"default\"}\nplayer-2|{\"event_type\": \"join_guild\"}\n",
    )
    .unwrap();
    let path = input.to_str().unwrap();
    bnetl.ok(&["produce", "--partitions", "3", "-K", "|", "-p", "2", path]);
    let stderr = bnetl.fails(&["produce", "-p", "7", path], 1);
    assert!(
        stderr.contains("events has no partition 7 (it has 3)"),
        "{stderr}"
    );

    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT CAST(key AS VARCHAR) AS player, event_type, "partition" FROM extracted_events ORDER BY "offset""#),
        "player,event_type,partition\nplayer-1,default,2\nplayer-2,join_guild,2\n"
    );
}
