//! Command line: clap derive types for every subcommand.
//!
//! Every option a deployment sets also reads an environment variable. Precedence: a flag on
//! the command line wins over the environment variable, which wins over the default. There is
//! no configuration file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build a Nation's event pipeline in one binary: the game API, bounded reads of the `events`
/// topic, SQL transforms, and a Parquet warehouse.
///
/// With no Kafka and no HDFS configured, everything runs on this machine: events go to a
/// durable embedded log and tables to a local warehouse, both under --data-dir.
#[derive(Debug, Parser)]
#[command(name = "bnetl", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Folder holding the embedded event log and the default warehouse
    #[arg(
        long,
        env = "BNETL_DATA_DIR",
        default_value = "bnetl-data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Where tables are written and read: a local path, file://, s3://bucket/prefix or
    /// hdfs://namenode:port/path [default: <data-dir>/warehouse]
    ///
    /// S3 is configured from the environment as object_store reads it (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true for http
    /// endpoints); HDFS from HADOOP_CONF_DIR, as Hadoop clients do.
    #[arg(long, env = "BNETL_WAREHOUSE", global = true)]
    pub warehouse: Option<String>,

    /// Kafka bootstrap servers (host:port,...); without it, the embedded log under --data-dir
    #[arg(long, env = "BNETL_BROKERS", global = true)]
    pub brokers: Option<String>,

    /// A librdkafka property, kcat style (repeatable): -X security.protocol=SASL_SSL
    ///
    /// Properties given here override bnetl's defaults (e.g. fetch.wait.max.ms=10 for reads,
    /// enable.idempotence=true and acks=all for the game API's producer).
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    pub kafka_properties: Vec<String>,

    /// Deadline for Kafka metadata calls, and for a partition to make progress while reading
    #[arg(
        long,
        env = "BNETL_KAFKA_TIMEOUT_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub kafka_timeout_ms: u64,

    /// Topic the game API produces to and the batch jobs read
    #[arg(long, env = "BNETL_TOPIC", default_value = "events", global = true)]
    pub topic: String,

    /// Hide progress bars and the summary line
    #[arg(long, short, env = "BNETL_QUIET", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the game API (the seed's Flask app): each GET logs one event to the topic
    Serve(ServeArgs),
    /// Append each line of FILE (or stdin) to the topic as one message, byte for byte
    Produce(ProduceArgs),
    /// Read the topic and write every event to the table extracted_events
    Extract(JobArgs),
    /// Run queries/transform.sql over the topic's events into transformed_events
    Transform(JobArgs),
    /// Run queries/filtered_writes.sql (purchases) into purchases, partitioned by event_type
    FilteredWrites(JobArgs),
    /// Run extract, transform and filtered-writes over one read of the topic (each output
    /// committed to its own table, exactly once per table with --incremental)
    Run(RunArgs),
    /// Run SQL over the warehouse tables and print the result
    Sql(SqlArgs),
    /// Show each table's committed offsets per partition, the topic's end and the lag
    Status(StatusArgs),
    /// Show a table's committed schema: each column, its type and the version that added it
    Schema(SchemaArgs),
    /// Reproduce the seed walkthrough end to end in a fresh folder and print its tables
    Demo(DemoArgs),
    /// Run librdkafka's in-memory mock Kafka cluster to try --brokers locally (not for production)
    MockKafka(MockKafkaArgs),
}

/// Options of `mock-kafka`.
#[derive(Debug, Args)]
pub struct MockKafkaArgs {
    /// Partitions of the topic (--topic) to create
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,

    /// Brokers in the mock cluster
    #[arg(long, default_value_t = 1)]
    pub broker_count: i32,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "BNETL_ADDR", default_value = "0.0.0.0:5000")]
    pub addr: String,

    /// How long a request waits for the log to store its event before answering 503
    #[arg(long, env = "BNETL_ACK_TIMEOUT_MS", default_value_t = 5000)]
    pub ack_timeout_ms: u64,
}

/// Options of `produce`.
#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// File to read, one message per line; `-` or nothing reads stdin
    pub input: Option<PathBuf>,

    /// Split each line at the first DELIM into key and value, as kcat -K does
    #[arg(short = 'K', long, value_name = "DELIM")]
    pub key_delimiter: Option<String>,

    /// Produce every line to this partition [default: by key, else spread by the partitioner]
    #[arg(short = 'p', long)]
    pub partition: Option<i32>,

    /// Partitions to create the topic with, if it does not exist yet (embedded log; on Kafka
    /// the topic must exist or the broker creates it)
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
}

/// Which records of the topic a command reads, and how it decodes them (the jobs, and `sql`
/// over the `events` table).
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Where to start each partition: earliest, or JSON {"events":{"0":23,"1":-2}} (-2 earliest)
    #[arg(long, default_value = "earliest", value_name = "earliest|JSON")]
    pub starting_offsets: String,

    /// Where to stop each partition (exclusive): latest, or JSON {"events":{"0":50,"1":-1}} (-1 latest)
    ///
    /// Resolved once when the run starts; events produced later are left for the next run.
    #[arg(long, default_value = "latest", value_name = "latest|JSON")]
    pub ending_offsets: String,

    /// Start at the first record whose timestamp is at least this (ms since the epoch); wins over --starting-offsets
    #[arg(long, value_name = "MS")]
    pub starting_timestamp: Option<i64>,

    /// Stop before the first record whose timestamp is at least this (ms); wins over --ending-offsets
    #[arg(long, value_name = "MS")]
    pub ending_timestamp: Option<i64>,

    /// Fail when a starting offset is below the log start (records deleted); false skips them with a warning
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub fail_on_data_loss: bool,

    /// Add Spark's headers column (array of key/value structs) to the events
    #[arg(long)]
    pub include_headers: bool,

    /// The events' schema in Spark's DDL ("event_type STRING, amount BIGINT") or a file holding
    /// it, instead of inferring it; fields it does not name and values that do not fit go to
    /// _rescued_data
    #[arg(long, value_name = "DDL|FILE")]
    pub schema: Option<String>,
}

/// How the jobs (and each output of `run`) write their tables.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Start a new Parquet file after this many rows
    #[arg(long, env = "BNETL_MAX_ROWS_PER_FILE", default_value_t = 4 * 1024 * 1024)]
    pub max_rows_per_file: u64,

    /// Start a new Parquet file once the current one holds this many encoded bytes
    #[arg(long, env = "BNETL_MAX_FILE_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_file_bytes: u64,

    /// Files open at once while writing, one per partition value (Spark's
    /// maxConcurrentOutputFileWriters); past it the rest of the rows are sorted by partition
    #[arg(long, env = "BNETL_MAX_OPEN_FILES", default_value_t = crate::sink::RollPolicy::default().max_open_files, value_name = "N")]
    pub max_open_files: usize,

    /// Spark's save mode when a table exists [default: overwrite; append with --incremental]
    #[arg(long, value_enum, env = "BNETL_MODE")]
    pub mode: Option<ModeArg>,

    /// What an append does with a column the table does not have yet; values that do not fit
    /// their column's type are always kept in _rescued_data (an overwrite takes the run's schema)
    #[arg(long, value_enum, default_value_t = SchemaEvolutionArg::AddNewColumns, env = "BNETL_SCHEMA_EVOLUTION")]
    pub schema_evolution: SchemaEvolutionArg,

    /// Read from where each table's last commit ended to the current end, and append: every
    /// event lands in each table exactly once across runs, however a run was interrupted
    #[arg(long)]
    pub incremental: bool,
}

/// Options of the batch jobs (extract, transform, filtered-writes).
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// SQL file to run instead of the shipped query (input table: events)
    #[arg(long, value_name = "FILE")]
    pub query: Option<PathBuf>,

    /// Output table name [default: the job's table]
    #[arg(long)]
    pub table: Option<String>,

    /// Hive partition columns of the output, outermost first (as Spark's partitionBy)
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub partition_by: Option<Vec<String>>,

    #[command(flatten)]
    pub read: ReadArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Options of `run`: the jobs' options that apply to every output.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// A folder of output files to run instead of the shipped three: each NAME.sql is one
    /// query over events, headed by `-- bnetl: table=T [partition_by=C,..] [mode=M]`
    #[arg(long, value_name = "DIR")]
    pub queries: Option<PathBuf>,

    #[command(flatten)]
    pub read: ReadArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Spark's save modes, as `--mode` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Replace the table (the previous data stays readable until the new data is complete)
    Overwrite,
    /// Add the run's files to the table
    Append,
    /// Fail if the table exists
    #[value(alias = "errorifexists", alias = "error")]
    ErrorIfExists,
    /// Do nothing if the table exists
    Ignore,
}

/// Schema evolution policies, as Databricks Auto Loader's schemaEvolutionMode names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaEvolutionArg {
    /// Add the new column to the table
    #[value(alias = "addNewColumns")]
    AddNewColumns,
    /// Keep the table's schema; the new column's values go to _rescued_data
    Rescue,
    /// Fail before writing anything
    #[value(alias = "failOnNewColumns")]
    FailOnNewColumns,
    /// Keep the table's schema; ignore the new column
    None,
}

/// Output formats of `sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A table as Spark's DataFrame.show() prints it
    Table,
    /// CSV with a header row
    Csv,
    /// One JSON object per line
    Json,
}

/// Options of `sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The statement, e.g. "SELECT event_type, COUNT(*) FROM extracted_events GROUP BY
    /// event_type", or several separated by `;` (run in turn, each result printed after the
    /// other), as `spark-sql -e` takes them
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub query: Option<String>,

    /// Read the statements from FILE (`;` between them, `--` comments), as `spark-sql -f`;
    /// `-f -` reads them from standard input
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// How to print the result
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,

    /// In table format, cut values longer than this many characters (0: never), as show() does
    #[arg(long, default_value_t = 20)]
    pub truncate: usize,

    /// In table format, print the first N rows, as show(n) does (0: all); csv and json print
    /// every row
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    pub rows: usize,

    /// Save the whole result to FILE instead of printing it: Parquet, CSV or JSON lines by its
    /// extension (.parquet, .csv, .json); replaced if it exists, never inside the warehouse
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// What the `events` table (the topic's decoded events, read only when the statement
    /// names it) holds
    #[command(flatten)]
    pub read: ReadArgs,
}

/// Options of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this table [default: every table of the warehouse]
    pub table: Option<String>,

    /// How to print the status
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Options of `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The table
    pub table: String,

    /// How to print the schema
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's log and warehouse, emptied first [default: <data-dir>/demo]
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl Default for ReadArgs {
    /// The defaults clap gives when no option is set.
    fn default() -> Self {
        ReadArgs {
            starting_offsets: "earliest".into(),
            ending_offsets: "latest".into(),
            starting_timestamp: None,
            ending_timestamp: None,
            fail_on_data_loss: true,
            include_headers: false,
            schema: None,
        }
    }
}

impl Default for JobArgs {
    /// The defaults clap gives when no option is set.
    fn default() -> Self {
        JobArgs {
            query: None,
            table: None,
            partition_by: None,
            read: ReadArgs::default(),
            write: WriteArgs::default(),
        }
    }
}

impl Default for WriteArgs {
    /// The defaults clap gives when no option is set.
    fn default() -> Self {
        let roll = crate::sink::RollPolicy::default();
        WriteArgs {
            max_rows_per_file: roll.max_rows_per_file,
            max_file_bytes: roll.max_file_bytes,
            max_open_files: roll.max_open_files,
            mode: None,
            schema_evolution: SchemaEvolutionArg::AddNewColumns,
            incremental: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn job_defaults_match_what_clap_parses_without_options() {
        let cli = Cli::try_parse_from(["bnetl", "extract"]).unwrap();
        let Command::Extract(parsed) = cli.command else {
            panic!("extract parses as extract");
        };
        assert_eq!(format!("{parsed:?}"), format!("{:?}", JobArgs::default()));
    }
}
