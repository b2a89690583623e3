//! `bnetl run`: the seed's pipeline in one read. The topic is snapshotted and read once
//! (spilled, as a job's replay is), decoded once into a local Arrow IPC file of events, and
//! every output (`extract`, `transform`, `filtered-writes`: their shipped queries and tables;
//! or the files of `--queries DIR`, see [`crate::transform::outputs`]) replays that file
//! through its query into its own table, committed as that table's next version.
//!
//! Exactly-once per output: with `--incremental`, the read starts at the smallest offset any
//! output has not committed, and each output takes only the offsets above its own committed
//! ones (events and bad records alike) and commits exactly that range. Outputs commit one
//! after another; a run killed between two commits leaves the later outputs behind, and the
//! next `--incremental` run gives them what they lack and the others nothing twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Int32Type, Int64Type, SchemaRef};
use arrow::ipc::writer::StreamWriter;
use clap::ValueEnum;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tempfile::NamedTempFile;
use tokio_util::sync::CancellationToken;

use crate::cli::{JobArgs, ModeArg, RunArgs};
use crate::commands::job::{self, JobSummary};
use crate::commands::{extract, filtered_writes, transform};
use crate::decode::{EventDecoder, Quarantined};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::settings::{JobSettings, Settings};
use crate::sink;
use crate::source::offsets::OffsetSpec;
use crate::source::{self, OffsetRange};
use crate::temp_ipc;
use crate::transform::outputs;
use crate::transform::session::OpenStream;

/// Runs the pipeline's outputs over one read; a summary per output committed.
pub async fn run(
    settings: &Settings,
    args: &RunArgs,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Vec<JobSummary>> {
    let started = Instant::now();
    let run_id = uuid::Uuid::now_v7().to_string();
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

    // Each output's table, and the offsets it already holds (with --incremental).
    let mut outputs = Vec::new();
    for job in &jobs {
        let Some(table) =
            sink::TableRun::begin(&settings.warehouse, &job.table, job.mode, &run_id).await?
        else {
            eprintln!(
                "run: table {} exists; nothing written to it (--mode ignore)",
                job.table.name
            );
            continue;
        };
        let holds = job::resume_offsets(job, &table, &settings.topic)?;
        outputs.push((job, table, holds));
    }
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let mut bounds = jobs[0].bounds.clone();
    if args.write.incremental {
        bounds.starting = read_start(outputs.iter().map(|(_, _, holds)| holds.as_ref()));
    }

    let log = settings.log.clone();
    let topic = settings.topic.clone();
    let read_bounds = bounds.clone();
    let snapshot = job::blocking(move || source::snapshot(&log, &topic, &read_bounds)).await??;
    tracing::info!(topic = settings.topic, ranges = ?snapshot.ranges, "snapshotted offsets");
    let read = crate::settings::ReadSettings {
        bounds,
        include_headers: jobs[0].include_headers,
        schema: jobs[0].schema.clone(),
    };
    let events = decode_once(settings, &read, &snapshot.ranges, progress, cancel).await?;

    let mut summaries = Vec::new();
    for (job, mut table, holds) in outputs {
        let output_started = Instant::now();
        let ranges = output_ranges(&snapshot.ranges, holds.as_ref());
        let open = events.replay(holds.clone());
        let staged = async {
            job::write_events(
                job,
                &mut table,
                Arc::clone(&events.schema),
                open,
                progress,
                cancel,
            )
            .await?;
            let bad = events.bad.batches()?.map(move |batch| {
                batch.and_then(|b| {
                    above(&b, 1, 2, holds.as_ref()).map_err(crate::decode::DecodeError::Arrow)
                })
            });
            table.write_bad_records(bad, cancel).await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = staged.await {
            table.abort().await;
            return Err(e);
        }
        if cancel.is_cancelled() {
            table.abort().await;
            return Err(Error::Interrupted);
        }
        let (commit, written) = table
            .commit(&job.name, &settings.topic, job::committed(&ranges))
            .await?;
        summaries.push(JobSummary {
            job: job.name.clone(),
            topic: settings.topic.clone(),
            messages: ranges.iter().map(|r| (r.end - r.start) as u64).sum(),
            // The one read's, shared by every output.
            bytes: events.bytes,
            bad_records: commit.bad_records,
            lost_offsets: snapshot.lost.iter().map(|l| l.skipped()).sum(),
            ranges,
            written,
            mode: commit.mode,
            version: commit.version,
            elapsed: output_started.elapsed(),
        });
    }
    tracing::info!(
        outputs = summaries.len(),
        seconds = started.elapsed().as_secs_f64(),
        "pipeline run done"
    );
    Ok(summaries)
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

/// Where the one read starts: each partition at the smallest offset an output has not
/// committed; the earliest offset as soon as one output holds nothing of the topic.
fn read_start<'a>(holds: impl Iterator<Item = Option<&'a BTreeMap<i32, i64>>>) -> OffsetSpec {
    let mut start: Option<BTreeMap<i32, i64>> = None;
    for held in holds {
        let Some(held) = held else {
            return OffsetSpec::Earliest;
        };
        start = Some(match start {
            None => held.clone(),
            // A partition one output does not name starts at the earliest offset for it.
            Some(so_far) => so_far
                .into_iter()
                .filter_map(|(p, o)| held.get(&p).map(|&h| (p, o.min(h))))
                .collect(),
        });
    }
    start.map_or(OffsetSpec::Earliest, OffsetSpec::Resume)
}

/// The offsets of the read an output takes: above what it holds.
fn output_ranges(read: &[OffsetRange], holds: Option<&BTreeMap<i32, i64>>) -> Vec<OffsetRange> {
    read.iter()
        .map(|r| {
            let held = holds.and_then(|h| h.get(&r.partition)).copied();
            let start = held.map_or(r.start, |h| h.clamp(r.start, r.end));
            OffsetRange { start, ..*r }
        })
        .collect()
}

/// The rows of `batch` whose offset (column `offset_at`, partition in `partition_at`) is at or
/// above what the output holds in that partition.
fn above(
    batch: &RecordBatch,
    partition_at: usize,
    offset_at: usize,
    holds: Option<&BTreeMap<i32, i64>>,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let Some(holds) = holds.filter(|h| !h.is_empty()) else {
        return Ok(batch.clone());
    };
    let partitions = batch.column(partition_at).as_primitive::<Int32Type>();
    let offsets = batch.column(offset_at).as_primitive::<Int64Type>();
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let held = holds
                .get(&partitions.value(row))
                .copied()
                .unwrap_or(i64::MIN);
            Some(offsets.value(row) >= held)
        })
        .collect();
    filter_record_batch(batch, &keep)
}

/// The read's events, decoded once, and its bad records.
struct DecodedEvents {
    schema: SchemaRef,
    file: Arc<NamedTempFile>,
    bad: Quarantined,
    bytes: u64,
    partition_at: usize,
    offset_at: usize,
}

impl DecodedEvents {
    /// The events again, from the file, without those an output already holds.
    fn replay(&self, holds: Option<BTreeMap<i32, i64>>) -> OpenStream {
        let (schema, file) = (Arc::clone(&self.schema), Arc::clone(&self.file));
        let (partition_at, offset_at) = (self.partition_at, self.offset_at);
        Arc::new(move || {
            let batches = temp_ipc::read(&file, "the decoded events file")
                .map_err(|e| DataFusionError::External(e.source));
            let holds = holds.clone();
            let stream: futures::stream::BoxStream<'static, _> = match batches {
                Ok(reader) => futures::stream::iter(reader.map(move |batch| {
                    batch
                        .and_then(|b| above(&b, partition_at, offset_at, holds.as_ref()))
                        .map_err(DataFusionError::from)
                }))
                .boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            };
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream))
        })
    }
}

/// A temp Arrow IPC file of decoded events, being written.
struct EventsFile {
    file: NamedTempFile,
    writer: StreamWriter<BufWriter<File>>,
}

fn file_error(action: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Io {
        action: action.to_owned(),
        source: std::io::Error::other(source),
    }
}

fn from_temp_ipc(e: temp_ipc::TempIpcError) -> Error {
    Error::Io {
        action: e.action,
        source: std::io::Error::other(e.source),
    }
}

impl EventsFile {
    fn create(schema: &SchemaRef) -> Result<Self> {
        let (file, writer) = temp_ipc::create("bnetl-events-", "the decoded events file", schema)
            .map_err(from_temp_ipc)?;
        Ok(EventsFile { file, writer })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| file_error("write the decoded events file", e))
    }

    fn finish(mut self) -> Result<NamedTempFile> {
        self.writer
            .finish()
            .map_err(|e| file_error("finish the decoded events file", e))?;
        Ok(self.file)
    }
}

/// Reads `ranges` once and decodes every event once into a temp Arrow IPC file: while
/// reading, with the first batch's schema (or the declared one) as a job does; if a later
/// batch would change that schema, it reads again, spilling, and decodes with the schema of
/// the whole read.
async fn decode_once(
    settings: &Settings,
    read: &crate::settings::ReadSettings,
    ranges: &[OffsetRange],
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<DecodedEvents> {
    let mut file: Option<EventsFile> = None;
    let decoded = job::decode_while_reading(settings, read, ranges, progress, cancel, |batch| {
        if file.is_none() {
            file = Some(EventsFile::create(&batch.schema())?);
        }
        file.as_mut().expect("created above").write(batch)
    })
    .await?;
    let (schema, file, bad, bytes) = match decoded {
        Some(done) => {
            let schema = done.schema.arrow();
            let file = match file {
                Some(file) => file,
                None => EventsFile::create(&schema)?,
            };
            (schema, file.finish()?, done.bad, done.bytes)
        }
        None => {
            drop(file);
            tracing::info!(
                "the decode while reading is not usable (a batch changed the inferred schema): reading again to decode with the whole schema"
            );
            let scan = job::scan_once(settings, read, ranges, progress, cancel).await?;
            let schema = Arc::new(scan.inference.finish(read.include_headers));
            let decoder = EventDecoder::new(Arc::clone(&schema), &settings.topic);
            let arrow_schema = schema.arrow();
            let mut file = EventsFile::create(&arrow_schema)?;
            let open = job::decode_spill(
                scan.spill.clone(),
                decoder,
                progress.reading("decode", &settings.topic, ranges),
            );
            let mut decoded = open();
            while let Some(batch) = decoded.next().await {
                file.write(&batch.map_err(|e| file_error("decode the events", e))?)?;
            }
            (arrow_schema, file.finish()?, scan.bad, scan.bytes)
        }
    };
    let index = |name: &str| {
        schema
            .index_of(name)
            .map_err(|e| file_error("find the metadata columns", e))
    };
    Ok(DecodedEvents {
        partition_at: index("partition")?,
        offset_at: index("offset")?,
        schema,
        file: Arc::new(file),
        bad,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_starts_where_the_most_behind_output_is() {
        let a: BTreeMap<i32, i64> = [(0, 10), (1, 5)].into();
        let b: BTreeMap<i32, i64> = [(0, 4), (1, 9)].into();
        assert_eq!(
            read_start([Some(&a), Some(&b)].into_iter()),
            OffsetSpec::Resume([(0, 4), (1, 5)].into())
        );
        assert_eq!(
            read_start([Some(&a), None].into_iter()),
            OffsetSpec::Earliest
        );
        let only_0: BTreeMap<i32, i64> = [(0, 7)].into();
        assert_eq!(
            read_start([Some(&a), Some(&only_0)].into_iter()),
            OffsetSpec::Resume([(0, 7)].into())
        );
    }

    #[test]
    fn each_output_takes_the_offsets_above_what_it_holds() {
        let read = [OffsetRange {
            partition: 0,
            start: 4,
            end: 20,
        }];
        let holds: BTreeMap<i32, i64> = [(0, 10)].into();
        assert_eq!(output_ranges(&read, Some(&holds))[0].start, 10);
        assert_eq!(output_ranges(&read, None)[0].start, 4);
        let ahead: BTreeMap<i32, i64> = [(0, 30)].into();
        assert_eq!(output_ranges(&read, Some(&ahead))[0].start, 20);
    }
}
