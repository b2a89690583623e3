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
    key_delimiter: Option<Vec<u8>>,
    partition: Option<i32>,
    error: Option<std::io::Error>,
}

/// Splits `line` at the first `delimiter` into key and value; a line without it has no key.
fn split_key(mut line: Vec<u8>, delimiter: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    match line.windows(delimiter.len()).position(|w| w == delimiter) {
        Some(at) if !delimiter.is_empty() => {
            let value = line.split_off(at + delimiter.len());
            line.truncate(at);
            (Some(line), value)
        }
        _ => (None, line),
    }
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
                let (key, value) = match &self.key_delimiter {
                    Some(delimiter) => split_key(line, delimiter),
                    None => (None, line),
                };
                Some(Record {
                    key,
                    value,
                    timestamp_ms: now_ms(),
                    partition: self.partition,
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
        key_delimiter: args.key_delimiter.as_ref().map(|d| d.as_bytes().to_vec()),
        partition: args.partition,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_delimiter_like_kcat() {
        assert_eq!(
            split_key(b"player-1:{\"a\":1}".to_vec(), b":"),
            (Some(b"player-1".to_vec()), b"{\"a\":1}".to_vec())
        );
        assert_eq!(
            split_key(b"k::v".to_vec(), b"::"),
            (Some(b"k".to_vec()), b"v".to_vec())
        );
        assert_eq!(
            split_key(b"no key here".to_vec(), b"|"),
            (None, b"no key here".to_vec())
        );
        assert_eq!(
            split_key(b":v".to_vec(), b":"),
            (Some(Vec::new()), b"v".to_vec())
        );
    }
}
