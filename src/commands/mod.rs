//! Commands: each wires the stages together for one subcommand.

pub mod demo;
pub mod extract;
pub mod filtered_writes;
pub mod mock_kafka;
pub mod produce;
pub mod run;
pub mod schema;
pub mod serve;
pub mod sql;
pub mod status;
pub mod transform;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::pipeline;
use crate::progress::Progress;
use crate::settings::{JobSettings, Settings};

/// Runs the parsed command line. `shutdown` is tripped by Ctrl-C or SIGTERM.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<()> {
    let progress = Progress::new(cli.global.quiet);
    let work = async {
        match &cli.command {
            Command::Demo(args) => demo::run(&cli.global, args, &progress, &shutdown).await,
            Command::MockKafka(args) => {
                mock_kafka::run(&cli.global.topic, args, shutdown.clone()).await
            }
            Command::Serve(args) => {
                let settings = Settings::from_args(&cli.global)?;
                serve::run(&settings, args, shutdown.clone()).await
            }
            Command::Produce(args) => {
                let settings = Settings::from_args(&cli.global)?;
                let args = args.clone();
                pipeline::blocking(move || produce::run(&settings, &args))
                    .await?
                    .map(|_| ())
            }
            Command::Sql(args) => {
                let settings = Settings::from_args(&cli.global)?;
                sql::run(&settings, args, &progress, &shutdown).await
            }
            Command::Status(args) => {
                let settings = Settings::from_args(&cli.global)?;
                status::run(&settings, args).await
            }
            Command::Run(args) => {
                let settings = Settings::from_args(&cli.global)?;
                let summaries = run::run(&settings, args, &progress, &shutdown).await?;
                if !settings.quiet {
                    for summary in summaries {
                        eprintln!("{}", summary.line());
                    }
                }
                Ok(())
            }
            Command::Schema(args) => {
                let settings = Settings::from_args(&cli.global)?;
                schema::run(&settings, args).await
            }
            Command::Extract(args) => {
                run_job(&cli, &extract::JOB, args, &progress, &shutdown).await
            }
            Command::Transform(args) => {
                run_job(&cli, &transform::JOB, args, &progress, &shutdown).await
            }
            Command::FilteredWrites(args) => {
                run_job(&cli, &filtered_writes::JOB, args, &progress, &shutdown).await
            }
        }
    };
    if matches!(
        cli.command,
        Command::Serve(_)
            | Command::Run(_)
            | Command::Extract(_)
            | Command::Transform(_)
            | Command::FilteredWrites(_)
            | Command::MockKafka(_)
    ) {
        // These stop by themselves on shutdown: the server gracefully, the jobs cleaning up.
        return work.await;
    }
    tokio::select! {
        result = work => result,
        () = shutdown.cancelled() => Err(Error::Interrupted),
    }
}

async fn run_job(
    cli: &Cli,
    definition: &crate::settings::JobDefinition,
    args: &crate::cli::JobArgs,
    progress: &Progress,
    shutdown: &CancellationToken,
) -> Result<()> {
    let settings = Settings::from_args(&cli.global)?;
    let job_settings = JobSettings::from_args(definition, args, &settings.topic)?;
    let summary = pipeline::run_job(&settings, &job_settings, progress, shutdown).await?;
    if !settings.quiet {
        match summary {
            Some(summary) => eprintln!("{}", summary.line()),
            None => eprintln!(
                "{}: table {} exists; nothing read or written (--mode ignore)",
                definition.name, job_settings.table.name
            ),
        }
    }
    Ok(())
}
