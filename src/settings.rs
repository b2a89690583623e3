//! Validated settings built from the command line and environment, before any I/O.
//! A failure here is a usage error (exit 2).

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{GlobalArgs, JobArgs, ModeArg, ReadArgs, SchemaEvolutionArg};
use crate::decode::schema::{EventSchema, parse_ddl};
use crate::error::{Error, Result};
use crate::sink::{RollPolicy, SaveMode, SchemaEvolution, TableSpec, Warehouse};
use crate::source::offsets::OffsetSpec;
use crate::source::{KafkaLog, ReadBounds, TopicLog};
use crate::transform::queries::Query;
use std::time::Duration;

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
        let mut settings = Self::for_data_dir(
            args.data_dir.clone(),
            args.warehouse.as_deref(),
            &args.topic,
            args.quiet,
        )?;
        let properties = parse_properties(&args.kafka_properties)?;
        match args.brokers.as_deref().map(str::trim) {
            Some("") => return Err(Error::Usage("--brokers is empty".into())),
            Some(brokers) => {
                let timeout = Duration::from_millis(args.kafka_timeout_ms.max(1));
                settings.log = TopicLog::Kafka(KafkaLog::new(brokers, properties, timeout));
            }
            None if !properties.is_empty() => {
                return Err(Error::Usage(
                    "-X sets Kafka properties, but no --brokers is given".into(),
                ));
            }
            None => {}
        }
        Ok(settings)
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

/// The sink's save mode for `--mode`.
fn save_mode(arg: ModeArg) -> SaveMode {
    match arg {
        ModeArg::Overwrite => SaveMode::Overwrite,
        ModeArg::Append => SaveMode::Append,
        ModeArg::ErrorIfExists => SaveMode::ErrorIfExists,
        ModeArg::Ignore => SaveMode::Ignore,
    }
}

/// `--schema`: a DDL string, or a file holding one.
fn declared_schema(text: Option<&str>, include_headers: bool) -> Result<Option<Arc<EventSchema>>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let path = std::path::Path::new(text);
    let ddl = if path.is_file() {
        std::fs::read_to_string(path).map_err(Error::io(format!("read --schema {text}")))?
    } else {
        text.to_owned()
    };
    let columns = parse_ddl(&ddl).map_err(|e| Error::Usage(format!("--schema {text}: {e}")))?;
    let schema = EventSchema::declared(&columns, include_headers)
        .map_err(|e| Error::Usage(format!("--schema {text}: {e}")))?;
    Ok(Some(Arc::new(schema)))
}

fn schema_evolution(arg: SchemaEvolutionArg) -> SchemaEvolution {
    match arg {
        SchemaEvolutionArg::AddNewColumns => SchemaEvolution::AddNewColumns,
        SchemaEvolutionArg::Rescue => SchemaEvolution::Rescue,
        SchemaEvolutionArg::FailOnNewColumns => SchemaEvolution::FailOnNewColumns,
        SchemaEvolutionArg::None => SchemaEvolution::None,
    }
}

/// `-X key=value` pairs.
fn parse_properties(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.to_owned()))
            }
            _ => Err(Error::Usage(format!("-X {pair:?}: expected KEY=VALUE"))),
        })
        .collect()
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

/// A table name is one folder under the warehouse, visible to readers, and a value of the
/// `_bad_records` table's `table_name` partition. It is kept to characters that neither Hive's
/// escaping nor object stores' path encoding change (a `%`, `:` or `é` would be encoded in the
/// folder name, and readers would then look for another folder). `events` is the name SQL
/// gives the topic's events: a table of that name would hide them from `bnetl sql`.
fn validate_table(name: &str) -> Result<()> {
    if name == crate::transform::session::EVENTS_TABLE {
        return Err(Error::Usage(format!(
            "invalid table name {name:?}: it is the name of the topic's events in SQL (the jobs' queries and bnetl sql read them as {name})"
        )));
    }
    let legal = !name.is_empty()
        && !name.starts_with('.')
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if legal {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid table name {name:?}: use a-z, A-Z, 0-9, '_', '-' and '.', not starting with '.' or '_'"
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
    /// The job (or output file) name.
    pub name: String,
    /// The SQL to run over `events`.
    pub query: Query,
    /// The output table.
    pub table: TableSpec,
    /// Which offsets to read.
    pub bounds: ReadBounds,
    /// Add the `headers` column.
    pub include_headers: bool,
    /// The events' schema as `--schema` declares it (none: inferred).
    pub schema: Option<Arc<EventSchema>>,
    /// What to do when the table exists.
    pub mode: SaveMode,
    /// Start where the table's last commit ended (and append).
    pub incremental: bool,
}

/// What to read of the topic and how to decode it, from `ReadArgs`.
#[derive(Debug, Clone)]
pub struct ReadSettings {
    /// Which offsets to read.
    pub bounds: ReadBounds,
    /// Add the `headers` column.
    pub include_headers: bool,
    /// The events' schema as `--schema` declares it (none: inferred).
    pub schema: Option<Arc<EventSchema>>,
}

impl ReadSettings {
    /// Validates the read options (offsets JSON, timestamps, `--schema`) before any I/O.
    pub fn from_args(args: &ReadArgs, topic: &str) -> Result<Self> {
        let offsets = |flag: &str, text: &str| {
            OffsetSpec::parse(text, topic)
                .map_err(|e| Error::Usage(format!("--{flag} {text}: {e}")))
        };
        let bounds = ReadBounds {
            starting: offsets("starting-offsets", &args.starting_offsets)?,
            ending: offsets("ending-offsets", &args.ending_offsets)?,
            starting_timestamp: args.starting_timestamp,
            ending_timestamp: args.ending_timestamp,
            fail_on_data_loss: args.fail_on_data_loss,
        };
        bounds.validate().map_err(Error::Usage)?;
        Ok(ReadSettings {
            bounds,
            include_headers: args.include_headers,
            schema: declared_schema(args.schema.as_deref(), args.include_headers)?,
        })
    }
}

impl JobSettings {
    /// Validates a job's options; a missing `--query` file is a usage error.
    pub fn from_args(job: &JobDefinition, args: &JobArgs, topic: &str) -> Result<Self> {
        let ReadSettings {
            bounds,
            include_headers,
            schema,
        } = ReadSettings::from_args(&args.read, topic)?;
        let query = Query::load(job.query_name, job.query, args.query.as_deref())?;
        let name = args.table.clone().unwrap_or_else(|| job.table.to_owned());
        validate_table(&name)?;
        let partition_by = args
            .partition_by
            .clone()
            .unwrap_or_else(|| job.partition_by.iter().map(|c| (*c).to_owned()).collect());
        if args.write.max_rows_per_file == 0
            || args.write.max_file_bytes == 0
            || args.write.max_open_files == 0
        {
            return Err(Error::Usage(
                "--max-rows-per-file, --max-file-bytes and --max-open-files must be at least 1"
                    .into(),
            ));
        }
        let mode = match (args.write.incremental, args.write.mode.map(save_mode)) {
            (false, mode) => mode.unwrap_or(SaveMode::Overwrite),
            (true, None | Some(SaveMode::Append)) => SaveMode::Append,
            (true, Some(mode)) => {
                return Err(Error::Usage(format!(
                    "--incremental appends to the table; --mode {mode} cannot be combined with it"
                )));
            }
        };
        if args.write.incremental
            && (bounds.starting != OffsetSpec::Earliest || bounds.starting_timestamp.is_some())
        {
            return Err(Error::Usage(
                "--incremental starts where the table's last commit ended; drop --starting-offsets/--starting-timestamp".into(),
            ));
        }
        Ok(JobSettings {
            name: job.name.to_owned(),
            query,
            table: TableSpec {
                name,
                partition_by,
                roll: RollPolicy {
                    max_rows_per_file: args.write.max_rows_per_file,
                    max_file_bytes: args.write.max_file_bytes,
                    max_open_files: args.write.max_open_files,
                },
                evolution: schema_evolution(args.write.schema_evolution),
            },
            bounds,
            include_headers,
            schema,
            mode,
            incremental: args.write.incremental,
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
        assert!(validate_table("game.events-v2_x").is_ok());
        for bad in [
            "",
            ".hidden",
            "_bad_records",
            "../escape",
            "a=b",
            "a%b",
            "a:b",
            "a b",
            "événements",
            "events",
        ] {
            assert!(validate_table(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn read_options_are_checked_before_any_io() {
        let job = crate::commands::extract::JOB;
        let with = |starting: &str, ending: &str| JobArgs {
            read: crate::cli::ReadArgs {
                starting_offsets: starting.into(),
                ending_offsets: ending.into(),
                ..Default::default()
            },
            ..JobArgs::default()
        };
        let ok = JobSettings::from_args(&job, &with(r#"{"events":{"0":5}}"#, "latest"), "events")
            .unwrap();
        assert_eq!(ok.bounds.starting, OffsetSpec::Partitions([(0, 5)].into()));
        for (starting, ending, expected) in [
            ("latest", "latest", "not allowed for a batch read"),
            ("earliest", "earliest", "not allowed"),
            (r#"{"games":{"0":1}}"#, "latest", "names topic games"),
            ("{not json", "latest", "expected earliest, latest or JSON"),
        ] {
            let err = JobSettings::from_args(&job, &with(starting, ending), "events").unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn kafka_properties_need_key_value_and_brokers() {
        assert_eq!(
            parse_properties(&["fetch.wait.max.ms=10".into(), "sasl.password=a=b".into()]).unwrap(),
            vec![
                ("fetch.wait.max.ms".into(), "10".into()),
                ("sasl.password".into(), "a=b".into())
            ]
        );
        assert!(parse_properties(&["novalue".into()]).is_err());
        assert!(parse_properties(&["=x".into()]).is_err());
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
            ..JobArgs::default()
        };
        let err = JobSettings::from_args(&job, &args, "events").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(crate::error::chain(&err).contains("/no/such/file.sql"));
    }
}
