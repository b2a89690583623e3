//! Validated settings built from the command line and environment, before any I/O.
//! A failure here is a usage error (exit 2).

use std::path::PathBuf;

use crate::cli::{GlobalArgs, JobArgs};
use crate::error::{Error, Result};
use crate::sink::{RollPolicy, TableSpec, Warehouse};
use crate::source::TopicLog;
use crate::transform::queries::Query;

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where tables live.
    pub warehouse: Warehouse,
    /// The topic.
    pub topic: String,
    /// Where the topic lives.
    pub log: TopicLog,
    /// No progress bars or summary.
    pub quiet: bool,
}

impl Settings {
    /// Validates the global options.
    pub fn from_args(args: &GlobalArgs) -> Result<Self> {
        Self::for_data_dir(
            args.data_dir.clone(),
            args.warehouse.as_deref(),
            &args.topic,
            args.quiet,
        )
    }

    /// Settings for `data_dir`, with the warehouse defaulting to `<data_dir>/warehouse`.
    pub fn for_data_dir(
        data_dir: PathBuf,
        warehouse: Option<&str>,
        topic: &str,
        quiet: bool,
    ) -> Result<Self> {
        validate_topic(topic)?;
        let warehouse = match warehouse {
            Some(location) => Warehouse::parse(location),
            None => Warehouse::parse(&data_dir.join("warehouse").to_string_lossy()),
        }
        .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(Settings {
            log: TopicLog::embedded(&data_dir),
            warehouse,
            topic: topic.to_owned(),
            quiet,
        })
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn validate_topic(topic: &str) -> Result<()> {
    let legal = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if legal {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid topic name {topic:?}: use 1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'"
        )))
    }
}

/// A table name is one folder under the warehouse, visible to readers.
fn validate_table(name: &str) -> Result<()> {
    let legal = !name.is_empty()
        && !name.starts_with('.')
        && !name.starts_with('_')
        && !name.contains(['/', '\\', '='])
        && !name.chars().any(char::is_control);
    if legal {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid table name {name:?}: it must not be empty, start with '.' or '_', or contain '/', '\\' or '='"
        )))
    }
}

/// What one batch job (extract, transform, filtered-writes) runs.
#[derive(Debug, Clone, Copy)]
pub struct JobDefinition {
    /// Command name, for messages.
    pub name: &'static str,
    /// The shipped query's file stem in `queries/`.
    pub query_name: &'static str,
    /// The shipped query's text.
    pub query: &'static str,
    /// Default output table.
    pub table: &'static str,
    /// Default Hive partition columns.
    pub partition_by: &'static [&'static str],
}

/// Validated settings of one batch job.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The job.
    pub name: &'static str,
    /// The SQL to run over `events`.
    pub query: Query,
    /// The output table.
    pub table: TableSpec,
}

impl JobSettings {
    /// Validates a job's options; a missing `--query` file is a usage error.
    pub fn from_args(job: &JobDefinition, args: &JobArgs) -> Result<Self> {
        let query = Query::load(job.query_name, job.query, args.query.as_deref())?;
        let name = args.table.clone().unwrap_or_else(|| job.table.to_owned());
        validate_table(&name)?;
        let partition_by = args
            .partition_by
            .clone()
            .unwrap_or_else(|| job.partition_by.iter().map(|c| (*c).to_owned()).collect());
        if args.max_rows_per_file == 0 {
            return Err(Error::Usage(
                "--max-rows-per-file must be at least 1".into(),
            ));
        }
        Ok(JobSettings {
            name: job.name,
            query,
            table: TableSpec {
                name,
                partition_by,
                roll: RollPolicy {
                    max_rows_per_file: args.max_rows_per_file,
                    ..RollPolicy::default()
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(validate_topic("events").is_ok());
        assert!(validate_topic("game.events-v2_x").is_ok());
        for bad in ["", ".", "..", "a/b", "spaced name", &"x".repeat(250)] {
            let err = validate_topic(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn table_names_stay_one_visible_folder() {
        assert!(validate_table("purchases").is_ok());
        for bad in ["", ".hidden", "_bad_records", "../escape", "a=b"] {
            assert!(validate_table(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_query_file_is_a_usage_error() {
        let job = JobDefinition {
            name: "transform",
            query_name: "transform",
            query: "SELECT 1",
            table: "t",
            partition_by: &[],
        };
        let args = JobArgs {
            query: Some("/no/such/file.sql".into()),
            table: None,
            partition_by: None,
            max_rows_per_file: 10,
        };
        let err = JobSettings::from_args(&job, &args).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(crate::error::chain(&err).contains("/no/such/file.sql"));
    }
}
