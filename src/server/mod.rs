//! Server: the game API (the seed's Flask app) → events in the topic log.
//!
//! A handler builds the event, waits until the log has committed it, and only then answers 200;
//! if the log does not acknowledge within the timeout the client gets 503: not acknowledged
//! (on Kafka the producer goes on delivering it, so it may still be stored, once). Shutdown (Ctrl-C, SIGTERM) stops accepting, lets in-flight requests finish,
//! and the caller then waits for the log writer to drain.

pub mod error;
pub mod events;
pub mod routes;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::source::{Producer, Record};
use error::ApiError;
use routes::{ACTIONS, Action};

/// Failures starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server stopped")]
    Serve(#[source] std::io::Error),
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    producer: Producer,
    ack_timeout: Duration,
}

/// The game API's router.
pub fn router(producer: Producer, ack_timeout: Duration) -> Router {
    let mut router = Router::new();
    for action in ACTIONS {
        router = router.route(
            action.path,
            get(move |state: State<AppState>, headers: HeaderMap| {
                log_action(state, headers, action)
            }),
        );
    }
    router
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found\n") })
        .with_state(AppState {
            producer,
            ack_timeout,
        })
}

async fn log_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    action: Action,
) -> Result<impl IntoResponse, ApiError> {
    let record = Record {
        value: events::event_json(action.event_type, &headers).into_bytes(),
        timestamp_ms: now_ms(),
        ..Record::default()
    };
    match tokio::time::timeout(state.ack_timeout, state.producer.send(record)).await {
        Ok(Ok(_)) => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            action.body,
        )),
        Ok(Err(_)) | Err(_) => Err(ApiError::Unavailable),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Binds `addr`, returning the listener and the address actually bound (port 0 picks one).
pub async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_err = |source| ServeError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ServeError::Serve)
}
