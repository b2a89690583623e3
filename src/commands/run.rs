//! `bnetl run`: the seed's pipeline in one read. Its outputs are `extract`, `transform` and
//! `filtered-writes` (their shipped queries and tables), or the files of `--queries DIR` (see
//! [`crate::transform::outputs`]); [`crate::pipeline`] reads the topic once, decodes it once
//! and feeds every output, each committed as its table's next version (exactly-once per
//! output with `--incremental`).

use std::path::Path;

use clap::ValueEnum;
use tokio_util::sync::CancellationToken;

use crate::cli::{JobArgs, ModeArg, RunArgs};
use crate::commands::{extract, filtered_writes, transform};
use crate::error::{Error, Result};
use crate::pipeline::{self, JobSummary};
use crate::progress::Progress;
use crate::settings::{JobSettings, Settings};
use crate::transform::outputs;

/// Runs the pipeline's outputs over one read; a summary per output committed.
pub async fn run(
    settings: &Settings,
    args: &RunArgs,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Vec<JobSummary>> {
    let job_args = JobArgs {
        read: args.read.clone(),
        write: args.write.clone(),
        ..JobArgs::default()
    };
    let jobs = match &args.queries {
        None => [extract::JOB, transform::JOB, filtered_writes::JOB]
            .iter()
            .map(|definition| JobSettings::from_args(definition, &job_args, &settings.topic))
            .collect::<Result<Vec<_>>>()?,
        Some(dir) => output_files(dir, &job_args, &settings.topic)?,
    };
    let summaries = pipeline::run(settings, &jobs, progress, cancel).await?;
    for (job, summary) in jobs.iter().zip(&summaries) {
        if summary.is_none() {
            eprintln!(
                "run: table {} exists; nothing written to it (--mode ignore)",
                job.table.name
            );
        }
    }
    Ok(summaries.into_iter().flatten().collect())
}

/// The outputs of the files of `dir`, checked before anything is read.
fn output_files(dir: &Path, job_args: &JobArgs, topic: &str) -> Result<Vec<JobSettings>> {
    let files = outputs::load_dir(dir)
        .map_err(|e| Error::Usage(format!("--queries: {}", crate::error::chain(&e))))?;
    files
        .into_iter()
        .map(|file| {
            let mode = match file.header.mode.as_deref() {
                None => job_args.write.mode,
                Some(text) => Some(ModeArg::from_str(text, true).map_err(|_| {
                    Error::Usage(format!(
                        "{}: mode={text} is not a save mode (overwrite, append, error-if-exists, ignore)",
                        file.path.display()
                    ))
                })?),
            };
            let args = JobArgs {
                query: Some(file.path.clone()),
                table: Some(file.header.table.clone()),
                partition_by: Some(file.header.partition_by.clone()),
                write: crate::cli::WriteArgs {
                    mode,
                    ..job_args.write.clone()
                },
                ..job_args.clone()
            };
            let definition = crate::settings::JobDefinition {
                name: "run",
                query_name: "",
                query: "",
                table: "",
                partition_by: &[],
            };
            let mut job = JobSettings::from_args(&definition, &args, topic)?;
            job.name = file
                .path
                .file_stem()
                .map_or_else(|| "output".into(), |s| s.to_string_lossy().into_owned());
            Ok(job)
        })
        .collect()
}
