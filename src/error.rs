//! Crate-level error: wraps each stage's error and maps it to an exit code.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error, 130 interrupted.

use crate::decode::DecodeError;
use crate::server::ServeError;
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::transform::QueryError;

/// Any failure of a bnetl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or environment names something unusable.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Ctrl-C or SIGTERM stopped the run before it finished.
    #[error("interrupted")]
    Interrupted,
    /// A background task bnetl started (a reader thread, an output) died.
    #[error("the {task} task failed")]
    Task {
        task: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Building or writing Arrow data failed.
    #[error("cannot {action}")]
    Arrow {
        action: String,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Writing a Parquet file failed.
    #[error("cannot {action}")]
    Parquet {
        action: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A stream of decoded events failed (its cause names the message or the query).
    #[error("cannot {action} the topic's events")]
    Events {
        action: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("cannot {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Query(e) if e.is_user_error() => 2,
            Error::Interrupted | Error::Sink(SinkError::Cancelled { .. }) => 130,
            _ => 1,
        }
    }

    /// Wraps an Arrow error with what bnetl was doing.
    pub fn arrow(action: impl Into<String>) -> impl FnOnce(arrow::error::ArrowError) -> Error {
        let action = action.into();
        move |source| Error::Arrow { action, source }
    }

    /// Wraps a Parquet error with what bnetl was doing.
    pub fn parquet(
        action: impl Into<String>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let action = action.into();
        move |source| Error::Parquet { action, source }
    }

    /// Wraps an I/O error with what bnetl was doing.
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }
}

/// The error and its causes on one line: `cannot read x: permission denied`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        // `#[error(transparent)]` wrappers repeat their cause's text, and DataFusion's SQL
        // errors their parser error's (`SQL error: ParserError("Expected: ...")`, then `sql
        // parser error: Expected: ...`); say it once.
        let said = next
            .split_once(": ")
            .map_or(next.as_str(), |(_, rest)| rest);
        let repeated = said.len() >= 24 && text.contains(said);
        if !text.ends_with(&next) && !repeated {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    // DataFusion ends its internal errors with a request to report a bug in DataFusion; to a
    // user of bnetl the first sentence is the message (a type mismatch reaches it that way).
    text.replace(DATAFUSION_BUG_REQUEST, "")
}

/// The request DataFusion appends to the text of an internal error.
const DATAFUSION_BUG_REQUEST: &str = ".\nThis issue was likely caused by a bug in DataFusion's code. Please help us to resolve this by filing a bug report in our issue tracker: https://github.com/apache/datafusion/issues";

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;

    #[test]
    fn a_chain_says_each_message_once_without_datafusions_bug_request() {
        let internal = DataFusionError::Internal("Function 'sum' failed to match".into());
        assert_eq!(
            chain(&internal),
            "Internal error: Function 'sum' failed to match"
        );
        let parsed =
            datafusion::sql::parser::DFParser::parse_sql("SELEC 1").expect_err("does not parse");
        let text = chain(&parsed);
        assert_eq!(
            text.matches("Expected: an SQL statement").count(),
            1,
            "{text}"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let wrapped = DataFusionError::External(Box::new(io));
        assert_eq!(chain(&wrapped), "External error: no such file");
    }
}
