//! The shipped queries of `queries/`, compiled into the binary so bnetl runs from any folder,
//! and the `--query FILE` override.

use std::path::Path;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use super::QueryError;

/// A named SQL statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Name for messages: the file name.
    pub name: String,
    /// The SQL text.
    pub sql: String,
}

/// `queries/extract.sql`: the decoded events as they are.
pub const EXTRACT: &str = include_str!("../../queries/extract.sql");
/// `queries/transform.sql`: events with analyst-friendly derived columns.
pub const TRANSFORM: &str = include_str!("../../queries/transform.sql");
/// `queries/filtered_writes.sql`: purchase events only.
pub const FILTERED_WRITES: &str = include_str!("../../queries/filtered_writes.sql");

impl Query {
    /// The shipped query `name` unless `override_path` names a file to use instead.
    pub fn load(
        name: &str,
        shipped: &str,
        override_path: Option<&Path>,
    ) -> Result<Query, QueryError> {
        match override_path {
            None => Ok(Query {
                name: format!("{name}.sql"),
                sql: shipped.to_owned(),
            }),
            Some(path) => {
                let sql = std::fs::read_to_string(path).map_err(|source| QueryError::Read {
                    name: name.to_owned(),
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(Query {
                    name: path.display().to_string(),
                    sql,
                })
            }
        }
    }

    /// Plans the statement. DataFusion's parser reads the text, comments included; a file
    /// with more than one statement is an error.
    pub async fn plan(&self, ctx: &SessionContext) -> Result<DataFrame, QueryError> {
        ctx.sql(&self.sql).await.map_err(|source| QueryError::Plan {
            name: self.name.clone(),
            source,
        })
    }
}
