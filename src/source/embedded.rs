//! The embedded topic log: Kafka's model (topics, partitions, offsets, timestamps, keys,
//! headers) in one SQLite database under the data dir.
//!
//! SQLite in WAL mode gives what the pipeline needs without a home-made file format: appends are
//! transactions (an acknowledged record survives a crash; `synchronous=FULL` also survives power
//! loss), and a batch reader sees a consistent snapshot while a server keeps appending. Offsets
//! come from a per-partition `next_offset` counter, so they only ever increase, even if old
//! records are deleted.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::offsets::Watermark;
use super::{Message, OffsetRange, Record, SourceError, decode_headers, encode_headers};

/// File name of the embedded log inside the data dir.
pub const LOG_FILE: &str = "topics.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS partitions (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic     TEXT    NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    key       BLOB,
    value     BLOB,
    headers   BLOB,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
";

/// How long a connection waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle on the embedded log of one data dir. Cheap to clone; connections are opened per use.
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    path: PathBuf,
}

impl EmbeddedLog {
    /// The log stored in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedLog {
            path: data_dir.into().join(LOG_FILE),
        }
    }

    /// Path of the SQLite file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_reader(&self, topic: &str) -> Result<Connection, SourceError> {
        if !self.path.exists() {
            return Err(SourceError::UnknownTopic {
                topic: topic.to_owned(),
                log: format!("embedded log {} (no such file)", self.path.display()),
            });
        }
        let open = |source| SourceError::Open {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        Ok(conn)
    }

    /// Opens a writer, creating the data dir and the database when missing.
    pub fn writer(&self) -> Result<LogWriter, SourceError> {
        let open = |source| SourceError::Open {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                open(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", dir.display())),
                ))
            })?;
        }
        let conn = Connection::open(&self.path).map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        conn.execute_batch(
            "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        )
        .map_err(open)?;
        conn.execute_batch(SCHEMA).map_err(open)?;
        Ok(LogWriter {
            conn,
            next_partition: 0,
        })
    }

    /// The `[low, high)` watermarks of every partition of `topic`, read in one transaction.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermark>, SourceError> {
        let conn = self.open_reader(topic)?;
        let watermarks = |source| SourceError::Watermarks {
            topic: topic.to_owned(),
            source,
        };
        // One read transaction, so low and high come from the same state of the log.
        let tx = conn.unchecked_transaction().map_err(watermarks)?;
        let mut ranges = Vec::new();
        {
            let mut stmt = tx
                .prepare(
                    "SELECT p.partition, p.next_offset,
                            (SELECT MIN(r.offset) FROM records r
                              WHERE r.topic = p.topic AND r.partition = p.partition)
                       FROM partitions p WHERE p.topic = ?1 ORDER BY p.partition",
                )
                .map_err(watermarks)?;
            let rows = stmt
                .query_map(params![topic], |row| {
                    let partition: i32 = row.get(0)?;
                    let high: i64 = row.get(1)?;
                    let low: Option<i64> = row.get(2)?;
                    Ok(Watermark {
                        partition,
                        low: low.unwrap_or(high),
                        high,
                    })
                })
                .map_err(watermarks)?;
            for range in rows {
                ranges.push(range.map_err(watermarks)?);
            }
        }
        tx.finish().map_err(watermarks)?;
        if ranges.is_empty() {
            return Err(SourceError::UnknownTopic {
                topic: topic.to_owned(),
                log: format!("embedded log {}", self.path.display()),
            });
        }
        Ok(ranges)
    }

    /// Per partition, the first offset whose timestamp is at least `timestamp_ms`, as Kafka's
    /// offsets-for-times answers it.
    pub fn offsets_for_times(
        &self,
        topic: &str,
        timestamp_ms: i64,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Option<i64>>, SourceError> {
        let conn = self.open_reader(topic)?;
        let err = |source| SourceError::Watermarks {
            topic: topic.to_owned(),
            source,
        };
        let mut stmt = conn
            .prepare(
                "SELECT MIN(offset) FROM records
                  WHERE topic = ?1 AND partition = ?2 AND timestamp >= ?3",
            )
            .map_err(err)?;
        let mut answer = BTreeMap::new();
        for &partition in partitions {
            let offset: Option<i64> = stmt
                .query_row(params![topic, partition, timestamp_ms], |row| row.get(0))
                .map_err(err)?;
            answer.insert(partition, offset);
        }
        Ok(answer)
    }

    /// Reads `ranges` of `topic` in offset order; see [`super::TopicLog::read`].
    pub fn read(
        &self,
        topic: &str,
        ranges: &[OffsetRange],
        batch_rows: usize,
        on_batch: &mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let conn = self.open_reader(topic)?;
        let batch_rows = batch_rows.max(1);
        for range in ranges.iter().filter(|r| !r.is_empty()) {
            let read_err = |source| SourceError::Read {
                topic: topic.to_owned(),
                partition: range.partition,
                start: range.start,
                source,
            };
            let mut stmt = conn
                .prepare_cached(
                    "SELECT offset, timestamp, key, value, headers FROM records
                      WHERE topic = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
                      ORDER BY offset",
                )
                .map_err(read_err)?;
            let mut rows = stmt
                .query(params![topic, range.partition, range.start, range.end])
                .map_err(read_err)?;
            let mut batch = Vec::with_capacity(batch_rows.min(range.len() as usize));
            let mut last = None;
            while let Some(row) = rows.next().map_err(read_err)? {
                let message = Message {
                    partition: range.partition,
                    offset: row.get(0).map_err(read_err)?,
                    timestamp_ms: row.get(1).map_err(read_err)?,
                    timestamp_type: 0,
                    key: row.get(2).map_err(read_err)?,
                    value: row.get(3).map_err(read_err)?,
                    headers: decode_headers(
                        row.get_ref(4)
                            .map_err(read_err)?
                            .as_blob_or_null()
                            .ok()
                            .flatten(),
                    ),
                };
                last = Some(message.offset);
                batch.push(message);
                if batch.len() >= batch_rows {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_rows));
                    if on_batch(full).is_break() {
                        return Ok(());
                    }
                }
            }
            if !batch.is_empty() && on_batch(batch).is_break() {
                return Ok(());
            }
            // The snapshot said records exist up to `end`; a read that stops short means they
            // were deleted underneath us, which must not pass for a complete read.
            if last.is_none_or(|offset| !range.is_done_after(offset)) {
                return Err(SourceError::Incomplete {
                    topic: topic.to_owned(),
                    partition: range.partition,
                    reached: last.map_or(range.start, |o| o + 1),
                    end: range.end,
                });
            }
        }
        Ok(())
    }
}

/// An open write connection to the embedded log. Not `Sync`: one thread owns it.
pub struct LogWriter {
    conn: Connection,
    next_partition: i32,
}

impl LogWriter {
    /// Creates `topic` with `partitions` partitions unless it exists. Returns its partition count.
    pub fn ensure_topic(&mut self, topic: &str, partitions: i32) -> Result<i32, SourceError> {
        let err = |source| SourceError::Append {
            topic: topic.to_owned(),
            count: 0,
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let count = ensure_topic_in(&tx, topic, partitions).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(count)
    }

    /// Appends `records` to `topic` in one transaction and returns each record's
    /// `(partition, offset)`. Creates the topic with one partition if it does not exist (as
    /// Kafka's `auto.create.topics.enable`). Records with a key go to the key's partition;
    /// records without one go to one partition per call, rotating between calls (sticky
    /// partitioning, as Kafka's producer does per batch).
    pub fn append(
        &mut self,
        topic: &str,
        records: &[Record],
    ) -> Result<Vec<(i32, i64)>, SourceError> {
        let err = |source| SourceError::Append {
            topic: topic.to_owned(),
            count: records.len(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let partitions = ensure_topic_in(&tx, topic, 1).map_err(err)?;
        let sticky = self.next_partition.rem_euclid(partitions);
        self.next_partition = self.next_partition.wrapping_add(1);
        let mut next: Vec<i64> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT next_offset FROM partitions WHERE topic = ?1 ORDER BY partition",
                )
                .map_err(err)?;
            let rows = stmt
                .query_map(params![topic], |row| row.get(0))
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        let mut assigned = Vec::with_capacity(records.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO records (topic, partition, offset, timestamp, key, value, headers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            for record in records {
                let partition = match (record.partition, &record.key) {
                    (Some(p), _) if (0..partitions).contains(&p) => p,
                    (Some(p), _) => {
                        return Err(SourceError::NoSuchPartition {
                            topic: topic.to_owned(),
                            partition: p,
                            partitions,
                        });
                    }
                    (None, Some(key)) => key_partition(key, partitions),
                    (None, None) => sticky,
                };
                let slot = &mut next[partition as usize];
                let offset = *slot;
                *slot += 1;
                let headers = encode_headers(&record.headers);
                insert
                    .execute(params![
                        topic,
                        partition,
                        offset,
                        record.timestamp_ms,
                        record.key,
                        record.value,
                        headers
                    ])
                    .map_err(err)?;
                assigned.push((partition, offset));
            }
            let mut update = tx
                .prepare_cached(
                    "UPDATE partitions SET next_offset = ?3 WHERE topic = ?1 AND partition = ?2",
                )
                .map_err(err)?;
            for (partition, next_offset) in next.iter().enumerate() {
                update
                    .execute(params![topic, partition as i64, next_offset])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(assigned)
    }
}

fn ensure_topic_in(conn: &Connection, topic: &str, partitions: i32) -> rusqlite::Result<i32> {
    let existing: Option<i32> = conn
        .query_row(
            "SELECT COUNT(*) FROM partitions WHERE topic = ?1",
            params![topic],
            |row| row.get(0),
        )
        .optional()?
        .filter(|&n| n > 0);
    if let Some(n) = existing {
        return Ok(n);
    }
    let partitions = partitions.max(1);
    for partition in 0..partitions {
        conn.execute(
            "INSERT INTO partitions (topic, partition, next_offset) VALUES (?1, ?2, 0)",
            params![topic, partition],
        )?;
    }
    Ok(partitions)
}

/// Partition for a keyed record: stable across runs (SipHash with fixed keys).
fn key_partition(key: &[u8], partitions: i32) -> i32 {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % partitions.max(1) as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> Record {
        Record {
            value: value.as_bytes().to_vec(),
            timestamp_ms: 1_700_000_000_000,
            ..Record::default()
        }
    }

    fn ranges(log: &EmbeddedLog, topic: &str) -> Vec<OffsetRange> {
        log.watermarks(topic)
            .unwrap()
            .iter()
            .map(|w| OffsetRange {
                partition: w.partition,
                start: w.low,
                end: w.high,
            })
            .collect()
    }

    fn read_all(log: &EmbeddedLog, topic: &str, ranges: &[OffsetRange]) -> Vec<Message> {
        let mut out = Vec::new();
        log.read(topic, ranges, 2, &mut |batch| {
            out.extend(batch);
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn appended_records_get_consecutive_offsets_and_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let mut writer = log.writer().unwrap();
        let first = writer
            .append("events", &[record("a"), record("b")])
            .unwrap();
        let second = writer.append("events", &[record("{not json")]).unwrap();
        assert_eq!(first, vec![(0, 0), (0, 1)]);
        assert_eq!(second, vec![(0, 2)]);

        let ranges = ranges(&log, "events");
        assert_eq!(
            ranges,
            vec![OffsetRange {
                partition: 0,
                start: 0,
                end: 3
            }]
        );
        let messages = read_all(&log, "events", &ranges);
        let values: Vec<_> = messages.iter().map(|m| m.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            vec![b"a".to_vec(), b"b".to_vec(), b"{not json".to_vec()]
        );
        assert_eq!(messages[2].offset, 2);
        assert_eq!(messages[2].timestamp_ms, 1_700_000_000_000);
    }

    #[test]
    fn snapshot_excludes_records_appended_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let mut writer = log.writer().unwrap();
        writer.append("events", &[record("1")]).unwrap();
        let ranges = ranges(&log, "events");
        writer.append("events", &[record("2")]).unwrap();
        assert_eq!(read_all(&log, "events", &ranges).len(), 1);
    }

    #[test]
    fn unkeyed_batches_rotate_over_partitions_and_keys_stick_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let mut writer = log.writer().unwrap();
        assert_eq!(writer.ensure_topic("t", 3).unwrap(), 3);
        for _ in 0..3 {
            writer.append("t", &[record("x")]).unwrap();
        }
        let ranges = ranges(&log, "t");
        assert!(ranges.iter().all(|r| r.len() == 1), "{ranges:?}");
        let keyed = Record {
            key: Some(b"player-1".to_vec()),
            ..record("y")
        };
        let a = writer.append("t", std::slice::from_ref(&keyed)).unwrap();
        let b = writer.append("t", &[keyed]).unwrap();
        assert_eq!(a[0].0, b[0].0);
    }

    #[test]
    fn unknown_topic_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let err = log.watermarks("events").unwrap_err().to_string();
        assert!(err.contains("topic events does not exist"), "{err}");
        log.writer()
            .unwrap()
            .append("other", &[record("1")])
            .unwrap();
        let err = log.watermarks("events").unwrap_err().to_string();
        assert!(err.contains("topic events does not exist"), "{err}");
    }

    #[test]
    fn headers_and_keys_round_trip_and_times_map_to_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let with_headers = Record {
            key: Some(b"k".to_vec()),
            headers: vec![
                ("trace".into(), Some(b"abc".to_vec())),
                ("empty".into(), None),
            ],
            timestamp_ms: 2_000,
            ..record("x")
        };
        let mut writer = log.writer().unwrap();
        writer.append("events", &[record("a")]).unwrap();
        writer
            .append("events", std::slice::from_ref(&with_headers))
            .unwrap();
        let messages = read_all(&log, "events", &ranges(&log, "events"));
        assert_eq!(messages[1].headers, with_headers.headers);
        assert_eq!(messages[1].key.as_deref(), Some(&b"k"[..]));
        assert!(messages[0].headers.is_empty());
        let times = log.offsets_for_times("events", 1_500, &[0]).unwrap();
        assert_eq!(times[&0], Some(0), "record() is stamped 1_700_000_000_000");
        let times = log
            .offsets_for_times("events", 1_700_000_000_001, &[0])
            .unwrap();
        assert_eq!(times[&0], None);
    }

    #[test]
    fn a_read_that_stops_short_of_the_snapshot_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        log.writer()
            .unwrap()
            .append("events", &[record("1")])
            .unwrap();
        let beyond = [OffsetRange {
            partition: 0,
            start: 0,
            end: 5,
        }];
        let err = log
            .read("events", &beyond, 10, &mut |_| ControlFlow::Continue(()))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SourceError::Incomplete {
                    reached: 1,
                    end: 5,
                    ..
                }
            ),
            "{err}"
        );
    }
}
