//! `bnetl serve`: the seed's real `ab` traffic, routes, status codes and shutdown.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Bnetl, curl};

#[test]
fn seed_ab_traffic_through_serve_gives_the_seed_tables() {
    let bnetl = Bnetl::new();
    bnetl.replay_seed();
    // The columns of the seed's printSchema(), with ab's headers.
    assert_eq!(
        bnetl.sql_csv(r#"SELECT DISTINCT "Accept", "User-Agent" FROM extracted_events"#),
        "Accept,User-Agent\n*/*,ApacheBench/2.3\n"
    );
}

#[test]
fn routes_answer_like_the_flask_app_and_only_game_actions_log_events() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    let (status, body) = curl(&[
        "-H",
        "Host: user1.comcast.com",
        &server.url("/purchase_a_sword"),
    ]);
    assert_eq!((status, body.as_str()), (200, "\nSword Purchased!\n"));
    let (status, body) = curl(&[&server.url("/")]);
    assert_eq!(
        (status, body.as_str()),
        (200, "\nThis is the default response!\n")
    );
    let (status, body) = curl(&[&server.url("/join_a_guild")]);
    assert_eq!((status, body.as_str()), (200, "\nGuild Joined!\n"));
    assert_eq!(curl(&[&server.url("/purchase_a_horse")]).0, 404);
    assert_eq!(curl(&[&server.url("/purchase_a_sword/")]).0, 404);
    assert_eq!(
        curl(&["-X", "POST", &server.url("/purchase_a_sword")]).0,
        405
    );
    assert_eq!(curl(&["-X", "DELETE", &server.url("/")]).0, 405);
    server.stop();

    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv(r#"SELECT event_type, "Host" FROM extracted_events ORDER BY "offset""#),
        "event_type,Host\npurchase_sword,user1.comcast.com\ndefault,127.0.0.1\njoin_guild,127.0.0.1\n"
            .replace("127.0.0.1", &server_host(&bnetl))
    );
}

/// The Host header curl sends for the server's address, as stored.
fn server_host(bnetl: &Bnetl) -> String {
    let csv = bnetl.sql_csv(r#"SELECT "Host" FROM extracted_events WHERE event_type = 'default'"#);
    let host = csv.lines().nth(1).unwrap_or_default().to_owned();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    host
}

/// Clients hammering `url` until told to stop or refused; returns (acknowledged count, stop flag, threads).
fn load(
    url: &str,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicBool>,
    Vec<std::thread::JoinHandle<()>>,
) {
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, acked, stop) = (url.to_owned(), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match curl(&["--max-time", "10", &url]).0 {
                        200 => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        // Connection refused (0) once the server is gone, or 503: not acknowledged.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    (acked, stop, clients)
}

/// Waits until `acked` reaches `at_least`.
fn wait_for(acked: &AtomicU64, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < at_least {
        assert!(
            Instant::now() < deadline,
            "the server acknowledged too few requests"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(stop: &AtomicBool, clients: Vec<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
}

#[test]
fn every_acknowledged_event_survives_a_sigterm_under_load() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    let (acked, stop, clients) = load(&server.url("/purchase_a_shield"));
    wait_for(&acked, 100);
    server.stop();
    finish(&stop, clients);
    let acknowledged = acked.load(Ordering::SeqCst);

    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl
            .sql_csv("SELECT COUNT(*) AS n, COUNT(DISTINCT \"offset\") AS d FROM extracted_events"),
        format!("n,d\n{acknowledged},{acknowledged}\n")
    );
}

#[test]
fn every_acknowledged_event_survives_kill_9_under_load() {
    let bnetl = Bnetl::new();
    let mut server = bnetl.serve();
    let (acked, stop, clients) = load(&server.url("/upgrade_a_sword"));
    wait_for(&acked, 100);
    server.child.kill().unwrap(); // SIGKILL: no graceful anything
    server.child.wait().unwrap();
    finish(&stop, clients);
    let acknowledged = acked.load(Ordering::SeqCst);

    // The log opens cleanly after the crash, and holds every acknowledged event (it may hold a
    // few more: committed, but the process died before the 200 went out).
    bnetl.ok(&["extract"]);
    let [n, distinct, next] = bnetl.sql_numbers(
        r#"SELECT COUNT(*), COUNT(DISTINCT "offset"), MAX("offset") + 1 FROM extracted_events"#,
    )[..] else {
        panic!("three columns");
    };
    assert!(
        n >= acknowledged as i64,
        "{n} < {acknowledged} acknowledged"
    );
    assert_eq!(n, distinct, "duplicate offsets");
    assert_eq!(n, next, "offsets have gaps");
}

#[test]
fn extract_reads_a_consistent_snapshot_while_the_server_appends() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    let (acked, stop, clients) = load(&server.url("/purchase_a_knife"));
    wait_for(&acked, 50);
    bnetl.ok(&["extract"]);
    let [during, next] =
        bnetl.sql_numbers(r#"SELECT COUNT(*), MAX("offset") + 1 FROM extracted_events"#)[..]
    else {
        panic!("two columns");
    };
    wait_for(&acked, acked.load(Ordering::SeqCst) + 20);
    server.stop();
    finish(&stop, clients);

    // The run during the load saw offsets 0..next with no holes...
    assert!(
        during >= 50 && during == next,
        "{during} events, next offset {next}"
    );
    // ...and the next run sees everything acknowledged since.
    bnetl.ok(&["extract"]);
    let total = bnetl.sql_numbers("SELECT COUNT(*) FROM extracted_events")[0];
    assert_eq!(total, acked.load(Ordering::SeqCst) as i64);
    assert!(total > during);
}
