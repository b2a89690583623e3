//! Errors of the game API and how they reach the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request did not produce its event.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The event log did not acknowledge the event in time; nothing was acknowledged.
    #[error("the event log is unavailable")]
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                "event log unavailable, the action was not recorded; try again\n",
            )
                .into_response(),
        }
    }
}
