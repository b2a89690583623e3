//! Transform stage: DataFusion SQL over the decoded events and the warehouse tables.

pub mod outputs;
pub mod queries;
pub mod session;
pub mod spark_format;
pub mod starts_with;
pub mod utc_date;

use datafusion::error::DataFusionError;

/// Failures planning or running SQL.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot read query {name} from {path}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("query {name} is invalid{hint}")]
    Plan {
        name: String,
        /// What to try, when bnetl can tell (led by a space), or empty.
        hint: String,
        #[source]
        source: DataFusionError,
    },
    #[error(
        "query {name} would write ({kind}), and bnetl's SQL only reads: tables are written by extract, transform and filtered-writes; `bnetl sql --output FILE` saves a result to a file"
    )]
    Writes { name: String, kind: String },
    #[error("query {name} failed")]
    Execute {
        name: String,
        #[source]
        source: DataFusionError,
    },
    #[error("cannot register table {table} from {location}")]
    Register {
        table: String,
        location: String,
        #[source]
        source: DataFusionError,
    },
    #[error("warehouse {location} does not exist (write a table first: bnetl extract)")]
    NoWarehouse { location: String },
}

impl QueryError {
    /// True when the user's SQL or arguments are at fault (exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            QueryError::Plan { .. }
                | QueryError::Writes { .. }
                | QueryError::Read { .. }
                | QueryError::NoWarehouse { .. }
        )
    }
}
