//! `bnetl produce`: each input line becomes one message, byte for byte, unvalidated.

use std::io::{BufRead, BufReader, Read};
use std::time::Instant;

use crate::cli::ProduceArgs;
use crate::error::{Error, Result};
use crate::server::now_ms;
use crate::settings::Settings;
use crate::source::{Record, TopicLog};

/// Records per append transaction.
const CHUNK: usize = 64 * 1024;

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
    let TopicLog::Embedded(log) = &settings.log;
    let mut writer = log.writer()?;
    writer.ensure_topic(&settings.topic, args.partitions)?;
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let mut total = 0u64;
    loop {
        let mut line = Vec::new();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::io(format!("read {name}")))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        chunk.push(Record {
            value: line,
            timestamp_ms: now_ms(),
            ..Record::default()
        });
        if chunk.len() == CHUNK {
            writer.append(&settings.topic, &chunk)?;
            total += chunk.len() as u64;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        writer.append(&settings.topic, &chunk)?;
        total += chunk.len() as u64;
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
