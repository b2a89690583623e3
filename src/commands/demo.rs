//! `bnetl demo`: the seed walkthrough in one command. Starts the game API on a free port over a
//! fresh embedded log, sends the seed's eleven `ab` commands' worth of requests, runs extract,
//! transform and filtered-writes, and prints the seed's three analytics tables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::{extract, filtered_writes, sql, transform};
use crate::cli::{DemoArgs, GlobalArgs, JobArgs};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::progress::Progress;
use crate::server;
use crate::settings::{JobSettings, Settings};
use crate::source::Producer;
use crate::source::embedded::LOG_FILE;
use crate::transform::session;

/// The seed's traffic: `ab -n N -H "Host: HOST" http://localhost:5000PATH`, in order.
pub const SEED_TRAFFIC: [(u32, &str, &str); 11] = [
    (10, "user1.comcast.com", "/"),
    (10, "user1.comcast.com", "/purchase_a_sword"),
    (7, "user2.att.com", "/"),
    (15, "user2.att.com", "/purchase_a_shield"),
    (15, "user3.verizon.com", "/purchase_a_sword"),
    (5, "user3.verizon.com", "/upgrade_a_sword"),
    (5, "user1.comcast.com", "/upgrade_a_sword"),
    (7, "user2.att.com", "/upgrade_a_shield"),
    (20, "user4.spectrum.com", "/purchase_a_knife"),
    (20, "user4.spectrum.com", "/"),
    (14, "user5.fios.com", "/purchase_a_shield"),
];

/// The seed's analytics, over `extracted_events` (the seed registered it as `gamer`).
pub const SEED_QUERIES: [&str; 3] = [
    "SELECT COUNT(*) FROM extracted_events",
    "SELECT event_type, COUNT(event_type) as event_count FROM extracted_events GROUP BY event_type ORDER BY event_count DESC",
    "SELECT Host, COUNT(*) as number_of_player FROM extracted_events GROUP BY Host ORDER BY number_of_player DESC",
];

/// Runs the demo and prints its tables on stdout.
pub async fn run(
    global: &GlobalArgs,
    args: &DemoArgs,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<()> {
    let started = Instant::now();
    let dir: PathBuf = args
        .dir
        .clone()
        .unwrap_or_else(|| global.data_dir.join("demo"));
    empty_demo_folder(&dir)?;
    let settings = Settings::for_data_dir(dir.clone(), None, &global.topic, global.quiet)?;
    println!("bnetl demo: the seed walkthrough in {}", dir.display());

    let (producer, writer) =
        Producer::start(&settings.log, &settings.topic, Duration::from_secs(5))?;
    let (listener, addr) = server::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let server_task = tokio::spawn(server::run(
        listener,
        server::router(producer, Duration::from_secs(5)),
        shutdown.clone(),
    ));
    println!(
        "  serve   game API on http://{addr}/ -> {}",
        settings.log.describe()
    );
    let sent = send_seed_traffic(addr, progress).await;
    shutdown.cancel();
    let served = server_task.await.map_err(|source| Error::Task {
        task: "demo server".into(),
        source,
    })?;
    pipeline::blocking(move || writer.finish()).await?;
    served?;
    println!(
        "  ab      {} requests: the seed's {} ab commands",
        sent?,
        SEED_TRAFFIC.len()
    );

    for definition in [extract::JOB, transform::JOB, filtered_writes::JOB] {
        let job_settings =
            JobSettings::from_args(&definition, &JobArgs::default(), &settings.topic)?;
        if let Some(summary) = pipeline::run_job(&settings, &job_settings, progress, cancel).await?
        {
            println!("  {}", summary.line());
        }
    }

    let ctx = session::new_context();
    let tables =
        session::register_warehouse(&ctx, &settings.warehouse, &session::Needed::all()).await?;
    for statement in SEED_QUERIES {
        println!("\n$ bnetl --data-dir {} sql \"{statement}\"", dir.display());
        let batches = sql::query(&ctx, statement, &tables).await?;
        print!("{}", sql::show(&batches, 20));
    }
    println!(
        "\ndemo finished in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Empties `dir` for a fresh run, but only if it is missing, empty, or a previous demo's
/// folder (it holds the embedded log), so `--dir` can never wipe unrelated files.
fn empty_demo_folder(dir: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("read the demo folder {}", dir.display()))(e)),
    };
    let is_empty = entries.next().is_none();
    if !is_empty && !dir.join(LOG_FILE).is_file() {
        return Err(Error::Usage(format!(
            "{} is not empty and not a bnetl demo folder (no {LOG_FILE}); choose another --dir",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(Error::io(format!(
        "empty the demo folder {}",
        dir.display()
    )))
}

/// Sends the seed's requests as `ab` does (its headers, one request at a time per command)
/// and checks each is answered 200. Returns the number of requests.
async fn send_seed_traffic(addr: SocketAddr, progress: &Progress) -> Result<u32> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let spinner = progress.spinner("sending the seed's ab traffic".into());
    let failed = |what: String| Error::io("send the seed's traffic")(std::io::Error::other(what));
    let mut sent = 0;
    for (count, host, path) in SEED_TRAFFIC {
        for _ in 0..count {
            let request = hyper::Request::get(format!("http://{addr}{path}"))
                .header("host", host)
                .header("user-agent", "ApacheBench/2.3")
                .header("accept", "*/*")
                .body(Empty::new())
                .map_err(|e| failed(e.to_string()))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| failed(format!("GET {path}: {e}")))?;
            let status = response.status();
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| failed(format!("GET {path}: {e}")))?;
            if !status.is_success() {
                return Err(failed(format!("GET {path} answered {status}")));
            }
            sent += 1;
            spinner.add_rows(1);
        }
    }
    spinner.finish();
    Ok(sent)
}
