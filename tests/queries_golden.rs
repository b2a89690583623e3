//! Every shipped query in `queries/` against its golden result in `fixtures/expected/`.
//! `BNETL_UPDATE_GOLDEN=1 cargo test --release --test queries_golden` rewrites them; review the diff.

mod support;

use support::{Bnetl, fixture};

/// (job command, output table, columns that vary between runs and are left out)
const JOBS: [(&str, &str, &str); 3] = [
    ("extract", "extracted_events", r#""timestamp""#),
    (
        "transform",
        "transformed_events",
        r#""timestamp", event_date"#,
    ),
    ("filtered-writes", "purchases", r#""timestamp""#),
];

#[test]
fn shipped_queries_match_their_golden_results() {
    let bnetl = Bnetl::new();
    bnetl.produce(&std::fs::read(fixture("events/golden_input.jsonl")).unwrap());
    let update = std::env::var_os("BNETL_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (job, table, varying) in JOBS {
        bnetl.ok(&[job]);
        let query_name = job.replace('-', "_");
        let actual = bnetl.sql_csv(&format!(
            r#"SELECT * EXCLUDE ({varying}) FROM {table} ORDER BY "partition", "offset""#
        ));
        let path = fixture(&format!("expected/{query_name}.csv"));
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with BNETL_UPDATE_GOLDEN=1)", path.display()));
        if actual != expected {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Each job keeps the bad records of its read apart, committed with its table.
    let bad = bnetl.sql_csv(
        "SELECT table_name, COUNT(*) AS n FROM _bad_records GROUP BY table_name ORDER BY table_name",
    );
    assert_eq!(
        bad, "table_name,n\nextracted_events,3\npurchases,3\ntransformed_events,3\n",
        "three bad lines quarantined per job"
    );
}
