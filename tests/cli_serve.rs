//! `bnetl serve`: the seed's real `ab` traffic, routes, status codes and shutdown.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Bnetl, SEED_EVENT_TYPES, SEED_EVENT_TYPES_SQL, SEED_HOSTS, SEED_HOSTS_SQL, SEED_TRAFFIC, ab, curl};

#[test]
fn seed_ab_traffic_through_serve_gives_the_seed_tables() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    for (requests, host, path) in SEED_TRAFFIC {
        ab(&server, requests, host, path);
    }
    server.stop();

    bnetl.ok(&["extract"]);
    bnetl.ok(&["filtered-writes"]);
    assert_eq!(bnetl.sql_csv("SELECT COUNT(*) AS total FROM extracted_events"), "total\n128\n");
    assert_eq!(bnetl.sql_csv(SEED_EVENT_TYPES_SQL), SEED_EVENT_TYPES);
    assert_eq!(bnetl.sql_csv(SEED_HOSTS_SQL), SEED_HOSTS);
    // The columns of the seed's printSchema(), with ab's headers.
    assert_eq!(
        bnetl.sql_csv(r#"SELECT DISTINCT "Accept", "User-Agent" FROM extracted_events"#),
        "Accept,User-Agent\n*/*,ApacheBench/2.3\n"
    );
    assert_eq!(
        bnetl.sql_csv("SELECT event_type, COUNT(*) AS n FROM purchases GROUP BY event_type ORDER BY event_type"),
        "event_type,n\npurchase_knife,20\npurchase_shield,29\npurchase_sword,25\n"
    );
}

#[test]
fn routes_answer_like_the_flask_app_and_only_game_actions_log_events() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    let (status, body) = curl(&["-H", "Host: user1.comcast.com", &server.url("/purchase_a_sword")]);
    assert_eq!((status, body.as_str()), (200, "\nSword Purchased!\n"));
    let (status, body) = curl(&[&server.url("/")]);
    assert_eq!((status, body.as_str()), (200, "\nThis is the default response!\n"));
    let (status, body) = curl(&[&server.url("/join_a_guild")]);
    assert_eq!((status, body.as_str()), (200, "\nGuild Joined!\n"));
    assert_eq!(curl(&[&server.url("/purchase_a_horse")]).0, 404);
    assert_eq!(curl(&[&server.url("/purchase_a_sword/")]).0, 404);
    assert_eq!(curl(&["-X", "POST", &server.url("/purchase_a_sword")]).0, 405);
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

#[test]
fn every_acknowledged_event_survives_a_sigterm_under_load() {
    let bnetl = Bnetl::new();
    let server = bnetl.serve();
    let url = server.url("/purchase_a_shield");
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, acked, stop) = (url.clone(), Arc::clone(&acked), Arc::clone(&stop));
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "the server acknowledged too few requests");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acked.load(Ordering::SeqCst);

    bnetl.ok(&["extract"]);
    assert_eq!(
        bnetl.sql_csv("SELECT COUNT(*) AS n, COUNT(DISTINCT \"offset\") AS d FROM extracted_events"),
        format!("n,d\n{acknowledged},{acknowledged}\n")
    );
}
