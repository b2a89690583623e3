//! `bnetl sql`: output formats and errors.

mod support;

use support::{Bnetl, fixture};

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

#[test]
fn bad_sql_and_several_statements_are_usage_errors() {
    let bnetl = extracted();
    let stderr = bnetl.fails(&["sql", "SELEC 1"], 2);
    assert!(stderr.starts_with("bnetl: query statement"), "{stderr}");
    bnetl.fails(&["sql", "SELECT 1; SELECT 2"], 2);
    bnetl.fails(&["sql", "SELECT no_such_column FROM extracted_events"], 2);
}

#[test]
fn a_missing_warehouse_is_named() {
    let bnetl = Bnetl::new();
    let stderr = bnetl.fails(&["sql", "SELECT 1"], 2);
    assert!(
        stderr.contains("warehouse") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains(bnetl.warehouse().to_str().unwrap()),
        "{stderr}"
    );
}
