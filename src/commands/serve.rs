//! `bnetl serve`: the game API, producing to the topic until Ctrl-C or SIGTERM.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::error::{Error, Result};
use crate::server;
use crate::settings::Settings;
use crate::source::Producer;

/// Serves until `shutdown`, then waits until every acknowledged event is committed.
pub async fn run(settings: &Settings, args: &ServeArgs, shutdown: CancellationToken) -> Result<()> {
    let ack_timeout = Duration::from_millis(args.ack_timeout_ms);
    let (producer, writer) = Producer::start(&settings.log, &settings.topic, ack_timeout)?;
    let (listener, addr) = server::bind(&args.addr).await?;
    eprintln!(
        "bnetl: serving the game API on http://{addr}/ -> topic {} in {}",
        settings.topic,
        settings.log.describe()
    );
    let router = server::router(producer, ack_timeout);
    let served = server::run(listener, router, shutdown).await;
    // The router (and with it every producer handle) is gone; the writer drains and stops.
    tokio::task::spawn_blocking(move || writer.finish())
        .await
        .map_err(|source| Error::Task {
            task: "log writer".into(),
            source,
        })?;
    served?;
    eprintln!("bnetl: server stopped, all acknowledged events are stored");
    Ok(())
}
