//! `bnetl produce`: each input line becomes one message, byte for byte, unvalidated.

use std::io::{BufRead, BufReader, Read};
use std::time::Instant;

use crate::cli::ProduceArgs;
use crate::error::{Error, Result};
use crate::server::now_ms;
use crate::settings::Settings;
use crate::source::{Record, TopicLog};

/// Records per append transaction on the embedded log.
const CHUNK: usize = 64 * 1024;

/// The input's lines as records (without their `\n`); a read error ends the iteration and is
/// kept in `error`.
struct Lines {
    reader: Box<dyn BufRead>,
    error: Option<std::io::Error>,
}

impl Iterator for Lines {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Some(Record {
                    value: line,
                    timestamp_ms: now_ms(),
                    ..Record::default()
                })
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Appends the lines of the input to the topic; returns how many.
pub fn run(settings: &Settings, args: &ProduceArgs) -> Result<u64> {
    let started = Instant::now();
    let (input, name): (Box<dyn Read>, String) = match args.input.as_deref() {
        None => (Box::new(std::io::stdin().lock()), "stdin".into()),
        Some(path) if path.as_os_str() == "-" => {
            (Box::new(std::io::stdin().lock()), "stdin".into())
        }
        Some(path) => {
            let file =
                std::fs::File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
            (Box::new(file), path.display().to_string())
        }
    };
    let mut lines = Lines {
        reader: Box::new(BufReader::with_capacity(1 << 20, input)),
        error: None,
    };
    let total = match &settings.log {
        TopicLog::Embedded(log) => {
            let mut writer = log.writer()?;
            writer.ensure_topic(&settings.topic, args.partitions)?;
            let mut total = 0u64;
            loop {
                let chunk: Vec<Record> = lines.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                writer.append(&settings.topic, &chunk)?;
                total += chunk.len() as u64;
            }
            total
        }
        TopicLog::Kafka(log) => log.produce_all(&settings.topic, lines.by_ref())?,
    };
    if let Some(e) = lines.error {
        // Everything before the failed read is stored; say how much.
        return Err(Error::io(format!(
            "read {name} after {total} lines were produced"
        ))(e));
    }
    if !settings.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "produce: {total} messages from {name} -> {} in {}; {secs:.2} s, {:.0} messages/s",
            settings.topic,
            settings.log.describe(),
            total as f64 / secs.max(1e-9)
        );
    }
    Ok(total)
}
