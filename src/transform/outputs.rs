//! Outputs defined by files: each `.sql` file of a folder (`bnetl run --queries DIR`) is one
//! output of a pipeline run, its header stating where it goes:
//!
//! ```sql
//! -- bnetl: table=purchases partition_by=event_type mode=append
//! SELECT * FROM events WHERE starts_with(event_type, 'purchase_')
//! ```
//!
//! `table` is required; `partition_by` (columns, comma-separated) and `mode` (Spark's save
//! modes) are optional. A file whose header is missing or names an unknown key, whose SQL does
//! not parse or is not a single query, or whose table another file also writes, is refused
//! before anything is read. (Column names are checked when the query is planned, after the
//! read: the events' schema is inferred from it.) The shipped queries carry the same headers.

use std::path::{Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::queries::Query;

/// One output file, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The file.
    pub path: PathBuf,
    /// Its query.
    pub query: Query,
    /// What its header says.
    pub header: Header,
}

/// The `-- bnetl:` header of a query file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Output table.
    pub table: String,
    /// Hive partition columns.
    pub partition_by: Vec<String>,
    /// Save mode, as `--mode` spells it.
    pub mode: Option<String>,
}

/// Why an output file is refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot read the query folder {path}")]
    Folder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read query file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{first} and {second} both write table {table}")]
    SameTable {
        table: String,
        first: String,
        second: String,
    },
    #[error("no .sql files in {path}")]
    Empty { path: String },
}

/// Parses the `-- bnetl:` lines of `sql`.
pub fn parse_header(sql: &str) -> Result<Header, String> {
    let mut header = Header::default();
    let mut found = false;
    for line in sql.lines() {
        let Some(rest) = line.trim().strip_prefix("-- bnetl:") else {
            continue;
        };
        found = true;
        for pair in rest.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("header entry {pair:?} is not key=value"))?;
            match key {
                "table" => header.table = value.to_owned(),
                "partition_by" => {
                    header.partition_by = value
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "mode" => header.mode = Some(value.to_owned()),
                other => {
                    return Err(format!(
                        "unknown header key {other:?} (table, partition_by, mode)"
                    ));
                }
            }
        }
    }
    if !found {
        return Err("no `-- bnetl: table=NAME` header line".into());
    }
    if header.table.is_empty() {
        return Err("the header names no table (`-- bnetl: table=NAME`)".into());
    }
    Ok(header)
}

/// Checks that `sql` is exactly one query (a `SELECT`, `WITH`, ...), without planning it.
pub fn check_query(sql: &str) -> Result<(), String> {
    let statements = DFParser::parse_sql(sql).map_err(|e| e.to_string())?;
    match statements.iter().collect::<Vec<_>>().as_slice() {
        [Statement::Statement(statement)] if matches!(**statement, SqlStatement::Query(_)) => {
            Ok(())
        }
        [_] => Err("not a query: an output's SQL is one SELECT over events".into()),
        _ => Err(format!(
            "{} statements: an output's SQL is one SELECT over events",
            statements.len()
        )),
    }
}

/// Reads and checks every `.sql` file of `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<OutputFile>, OutputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| OutputError::Folder {
        path: dir.display().to_string(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(OutputError::Empty {
            path: dir.display().to_string(),
        });
    }
    let mut outputs: Vec<OutputFile> = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        let sql = std::fs::read_to_string(&path).map_err(|source| OutputError::Read {
            path: shown.clone(),
            source,
        })?;
        let invalid = |reason: String| OutputError::Invalid {
            path: shown.clone(),
            reason,
        };
        let header = parse_header(&sql).map_err(invalid)?;
        check_query(&sql).map_err(invalid)?;
        if let Some(first) = outputs.iter().find(|o| o.header.table == header.table) {
            return Err(OutputError::SameTable {
                table: header.table,
                first: first.path.display().to_string(),
                second: shown,
            });
        }
        outputs.push(OutputFile {
            query: Query { name: shown, sql },
            path,
            header,
        });
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::queries;

    #[test]
    fn the_shipped_queries_state_their_tables() {
        for (sql, job) in [
            (queries::EXTRACT, crate::commands::extract::JOB),
            (queries::TRANSFORM, crate::commands::transform::JOB),
            (
                queries::FILTERED_WRITES,
                crate::commands::filtered_writes::JOB,
            ),
        ] {
            let header = parse_header(sql).unwrap();
            assert_eq!(header.table, job.table);
            assert_eq!(header.partition_by, job.partition_by);
            check_query(sql).unwrap();
        }
    }

    #[test]
    fn headers_and_statements_are_checked() {
        assert!(
            parse_header("SELECT 1")
                .unwrap_err()
                .contains("no `-- bnetl")
        );
        assert!(
            parse_header("-- bnetl: tabel=x\nSELECT 1")
                .unwrap_err()
                .contains("tabel")
        );
        assert!(
            parse_header("-- bnetl: mode=append\nSELECT 1")
                .unwrap_err()
                .contains("no table")
        );
        let header = parse_header("-- bnetl: table=t partition_by=a,b mode=append\n").unwrap();
        assert_eq!(header.partition_by, ["a", "b"]);
        assert_eq!(header.mode.as_deref(), Some("append"));
        assert!(check_query("SELECT * FROM events").is_ok());
        assert!(check_query("SELEC * FROM events").is_err());
        assert!(
            check_query("INSERT INTO t SELECT 1")
                .unwrap_err()
                .contains("not a query")
        );
        assert!(
            check_query("SELECT 1; SELECT 2")
                .unwrap_err()
                .contains("2 statements")
        );
    }
}
