//! The embedded topic log: Kafka's model (topics, partitions, offsets, timestamps, keys,
//! headers) in one SQLite database under the data dir.
//!
//! SQLite in WAL mode gives what the pipeline needs without a home-made storage engine:
//! appends are transactions (an acknowledged record survives a crash; `synchronous=FULL` also
//! survives power loss), and a batch reader sees a consistent snapshot while a server keeps
//! appending. Offsets come from a per-partition `next_offset` counter, so they only ever
//! increase.
//!
//! Records are stored the way Kafka stores them, in batches: a row of `batches` holds a run of
//! consecutive offsets of one partition (at most [`BATCH_RECORDS`] records or about
//! [`BATCH_BYTES`]), framed by [`frame`], with its largest timestamp beside it for
//! offsets-for-times. With a row per record, reading was 18% of a `bnetl run`'s CPU (perf, 1M
//! events), most of it SQLite's per-row work; with batch rows it is 10%, most of it copying
//! the messages out. A log written by bnetl before batches (a `records` table, a row per
//! record) is converted by the first writer that opens it, in one transaction; until then
//! readers read both tables.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Statement, params};

use super::offsets::Watermark;
use super::{Message, OffsetRange, Record, SourceError, decode_headers, encode_headers};

/// File name of the embedded log inside the data dir.
pub const LOG_FILE: &str = "topics.sqlite3";

/// Most records in one batch row.
pub const BATCH_RECORDS: usize = 4096;
/// A batch row is closed once its framed records reach this many bytes.
pub const BATCH_BYTES: usize = 1 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS partitions (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    topic         TEXT    NOT NULL,
    partition     INTEGER NOT NULL,
    base_offset   INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    records       BLOB    NOT NULL,
    PRIMARY KEY (topic, partition, base_offset)
);
";

const INSERT_BATCH: &str = "INSERT INTO batches
    (topic, partition, base_offset, max_timestamp, records)
    VALUES (?1, ?2, ?3, ?4, ?5)";

/// The batches holding offsets `[?3, ?4)` of a partition, in offset order: from the last batch
/// starting at or before `?3` (found through the primary key, not by a scan). Each as its base
/// offset, its row id (the records are read by row id, see [`read_blob`]) and whether its
/// records are a blob (`typeof` reads only the row's header).
const READ_BATCHES: &str = "SELECT base_offset, rowid, typeof(records) = 'blob' FROM batches
    WHERE topic = ?1 AND partition = ?2 AND base_offset < ?4
      AND base_offset >= (SELECT COALESCE(MAX(base_offset), ?3) FROM batches
                           WHERE topic = ?1 AND partition = ?2 AND base_offset <= ?3)
    ORDER BY base_offset";

/// How long a connection waits for another process's write transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The bytes of one batch row: per record its timestamp (i64), then its key, value and
/// headers, each a u32 length (`u32::MAX` for none) and that many bytes; little-endian. A
/// record's offset is the row's base offset plus its position.
mod frame {
    const NONE: u32 = u32::MAX;

    /// One record of a batch, borrowed from the row's bytes.
    pub struct Framed<'a> {
        pub timestamp_ms: i64,
        pub key: Option<&'a [u8]>,
        pub value: Option<&'a [u8]>,
        pub headers: Option<&'a [u8]>,
    }

    /// Appends one record to `out`.
    pub fn put(out: &mut Vec<u8>, record: &Framed<'_>) {
        out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
        for field in [record.key, record.value, record.headers] {
            match field {
                // A field of 4 GiB or more does not fit a SQLite blob anyway (1 GB at most).
                Some(bytes) => out.extend_from_slice(&(bytes.len() as u32).to_le_bytes()),
                None => out.extend_from_slice(&NONE.to_le_bytes()),
            }
            out.extend_from_slice(field.unwrap_or_default());
        }
    }

    /// The records of a batch row in order; an `Err` carries the byte position where the
    /// bytes stop being records, after which the iterator ends.
    pub struct Records<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Records<'a> {
        pub fn new(bytes: &'a [u8]) -> Self {
            Records { bytes, at: 0 }
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let end = self.at.checked_add(n)?;
            let taken = self.bytes.get(self.at..end)?;
            self.at = end;
            Some(taken)
        }

        fn field(&mut self) -> Option<Option<&'a [u8]>> {
            let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
            if len == NONE {
                Some(None)
            } else {
                self.take(len as usize).map(Some)
            }
        }

        fn record(&mut self) -> Option<Framed<'a>> {
            Some(Framed {
                timestamp_ms: i64::from_le_bytes(self.take(8)?.try_into().ok()?),
                key: self.field()?,
                value: self.field()?,
                headers: self.field()?,
            })
        }
    }

    impl<'a> Iterator for Records<'a> {
        type Item = Result<Framed<'a>, usize>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.at >= self.bytes.len() {
                return None;
            }
            let start = self.at;
            Some(self.record().ok_or_else(|| {
                self.at = self.bytes.len();
                start
            }))
        }
    }
}

/// Records of one partition being framed into batch rows.
struct BatchBuilder {
    partition: i32,
    base_offset: i64,
    count: i64,
    max_timestamp: i64,
    bytes: Vec<u8>,
}

impl BatchBuilder {
    fn new(partition: i32, base_offset: i64) -> Self {
        BatchBuilder {
            partition,
            base_offset,
            count: 0,
            max_timestamp: i64::MIN,
            bytes: Vec::new(),
        }
    }

    /// Adds the next offset's record; true when the batch is full.
    fn push(&mut self, record: &frame::Framed<'_>) -> bool {
        frame::put(&mut self.bytes, record);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        self.count as usize >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    /// Writes the batch (if it holds records) and starts the next one after it.
    fn insert(&mut self, insert: &mut Statement<'_>, topic: &str) -> rusqlite::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        insert.execute(params![
            topic,
            self.partition,
            self.base_offset,
            self.max_timestamp,
            self.bytes
        ])?;
        *self = BatchBuilder::new(self.partition, self.base_offset + self.count);
        Ok(())
    }
}

/// Which record tables a log has: `batches` (bnetl's), `records` (before batches).
struct Tables {
    batches: bool,
    legacy: bool,
}

fn tables(conn: &Connection) -> rusqlite::Result<Tables> {
    let has = |name: &str| {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            params![name],
            |row| row.get::<_, bool>(0),
        )
    };
    Ok(Tables {
        batches: has("batches")?,
        legacy: has("records")?,
    })
}

/// Moves the records of a log written before batches into batch rows and drops their table,
/// in one transaction.
fn convert_legacy(conn: &mut Connection) -> rusqlite::Result<()> {
    if !tables(conn)?.legacy {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut select = tx.prepare(
            "SELECT topic, partition, offset, timestamp, key, value, headers FROM records
              ORDER BY topic, partition, offset",
        )?;
        let mut insert = tx.prepare(INSERT_BATCH)?;
        let mut rows = select.query([])?;
        let mut open: Option<(String, BatchBuilder)> = None;
        while let Some(row) = rows.next()? {
            let topic = row.get_ref(0)?.as_str()?;
            let partition: i32 = row.get(1)?;
            let offset: i64 = row.get(2)?;
            let continues = open.as_ref().is_some_and(|(t, b)| {
                t == topic && b.partition == partition && b.base_offset + b.count == offset
            });
            if !continues {
                if let Some((t, mut batch)) = open.take() {
                    batch.insert(&mut insert, &t)?;
                }
                open = Some((topic.to_owned(), BatchBuilder::new(partition, offset)));
            }
            if let Some((t, batch)) = open.as_mut() {
                let full = batch.push(&frame::Framed {
                    timestamp_ms: row.get(3)?,
                    key: row.get_ref(4)?.as_blob_or_null()?,
                    value: row.get_ref(5)?.as_blob_or_null()?,
                    headers: row.get_ref(6)?.as_blob_or_null()?,
                });
                if full {
                    batch.insert(&mut insert, t)?;
                }
            }
        }
        if let Some((t, mut batch)) = open {
            batch.insert(&mut insert, &t)?;
        }
    }
    tx.execute_batch("DROP TABLE records")?;
    tx.commit()
}

/// Gathers messages into batches of `rows` for a reader's callback.
struct Batcher<'f> {
    rows: usize,
    batch: Vec<Message>,
    on_batch: &'f mut dyn FnMut(Vec<Message>) -> ControlFlow<()>,
}

impl Batcher<'_> {
    fn push(&mut self, message: Message) -> ControlFlow<()> {
        self.batch.push(message);
        if self.batch.len() >= self.rows {
            return self.flush();
        }
        ControlFlow::Continue(())
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.batch.is_empty() {
            return ControlFlow::Continue(());
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(self.rows));
        (self.on_batch)(full)
    }
}

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
        let mut conn = Connection::open(&self.path).map_err(open)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open)?;
        conn.execute_batch(
            "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
        )
        .map_err(open)?;
        conn.execute_batch(SCHEMA).map_err(open)?;
        convert_legacy(&mut conn).map_err(open)?;
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
        let held = tables(&tx).map_err(watermarks)?;
        let lowest = |table: &str, column: &str| {
            format!(
                "(SELECT MIN({column}) FROM {table} t WHERE t.topic = p.topic AND t.partition = p.partition)"
            )
        };
        let low_of = |held: bool, table: &str, column: &str| {
            if held {
                lowest(table, column)
            } else {
                "NULL".to_owned()
            }
        };
        let mut ranges = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT p.partition, p.next_offset, {}, {}
                       FROM partitions p WHERE p.topic = ?1 ORDER BY p.partition",
                    low_of(held.batches, "batches", "base_offset"),
                    low_of(held.legacy, "records", "offset"),
                ))
                .map_err(watermarks)?;
            let rows = stmt
                .query_map(params![topic], |row| {
                    let partition: i32 = row.get(0)?;
                    let high: i64 = row.get(1)?;
                    let batched: Option<i64> = row.get(2)?;
                    let legacy: Option<i64> = row.get(3)?;
                    let low = match (batched, legacy) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b).unwrap_or(high),
                    };
                    Ok(Watermark {
                        partition,
                        low,
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
        let tx = conn.unchecked_transaction().map_err(err)?;
        let held = tables(&tx).map_err(err)?;
        let mut answer = BTreeMap::new();
        for &partition in partitions {
            let mut offset = None;
            if held.legacy {
                offset = tx
                    .prepare_cached(
                        "SELECT MIN(offset) FROM records
                          WHERE topic = ?1 AND partition = ?2 AND timestamp >= ?3",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![topic, partition, timestamp_ms], |row| row.get(0))
                    })
                    .map_err(err)?;
            }
            if offset.is_none() && held.batches {
                // Every batch before the first one reaching the time is entirely earlier.
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT base_offset, records FROM batches
                          WHERE topic = ?1 AND partition = ?2 AND max_timestamp >= ?3
                          ORDER BY base_offset LIMIT 1",
                    )
                    .map_err(err)?;
                let mut rows = stmt
                    .query(params![topic, partition, timestamp_ms])
                    .map_err(err)?;
                if let Some(row) = rows.next().map_err(err)? {
                    let base: i64 = row.get(0).map_err(err)?;
                    let corrupt = |at| SourceError::CorruptBatch {
                        log: self.path.clone(),
                        topic: topic.to_owned(),
                        partition,
                        base_offset: base,
                        at,
                    };
                    let bytes = blob(row.get_ref(1).map_err(err)?).ok_or_else(|| corrupt(0))?;
                    for (i, record) in frame::Records::new(bytes).enumerate() {
                        if record.map_err(corrupt)?.timestamp_ms >= timestamp_ms {
                            offset = Some(base + i as i64);
                            break;
                        }
                    }
                }
            }
            answer.insert(partition, offset);
        }
        tx.finish().map_err(err)?;
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
        let mut out = Batcher {
            rows: batch_rows.max(1),
            batch: Vec::new(),
            on_batch,
        };
        // One read transaction: one state of the log for every range, even across a writer
        // converting a log from before batches.
        let mut tx = None;
        for range in ranges.iter().filter(|r| !r.is_empty()) {
            let read_err = |source| SourceError::Read {
                topic: topic.to_owned(),
                partition: range.partition,
                start: range.start,
                source,
            };
            let tx = match &tx {
                Some(tx) => tx,
                None => tx.insert(conn.unchecked_transaction().map_err(read_err)?),
            };
            let held = tables(tx).map_err(read_err)?;
            let mut last = None;
            if held.legacy
                && read_legacy(tx, topic, range, &mut out, &mut last)
                    .map_err(read_err)?
                    .is_break()
            {
                return Ok(());
            }
            if held.batches {
                let mut stmt = tx.prepare_cached(READ_BATCHES).map_err(read_err)?;
                let mut rows = stmt
                    .query(params![topic, range.partition, range.start, range.end])
                    .map_err(read_err)?;
                let mut records: Option<rusqlite::blob::Blob<'_>> = None;
                while let Some(row) = rows.next().map_err(read_err)? {
                    let base: i64 = row.get(0).map_err(read_err)?;
                    let row_id: i64 = row.get(1).map_err(read_err)?;
                    let corrupt = |at| SourceError::CorruptBatch {
                        log: self.path.clone(),
                        topic: topic.to_owned(),
                        partition: range.partition,
                        base_offset: base,
                        at,
                    };
                    if !row.get::<_, bool>(2).map_err(read_err)? {
                        return Err(corrupt(0));
                    }
                    // One copy of the batch; its messages' keys and values are slices of it.
                    let bytes = read_blob(tx, &mut records, row_id).map_err(read_err)?;
                    for (offset, record) in (base..).zip(frame::Records::new(&bytes)) {
                        let record = record.map_err(corrupt)?;
                        if offset < range.start {
                            continue;
                        }
                        if offset >= range.end {
                            break;
                        }
                        last = Some(offset);
                        let message = Message {
                            partition: range.partition,
                            offset,
                            timestamp_ms: record.timestamp_ms,
                            timestamp_type: 0,
                            key: record.key.map(|k| bytes.slice_ref(k)),
                            value: record.value.map(|v| bytes.slice_ref(v)),
                            headers: decode_headers(record.headers),
                        };
                        if out.push(message).is_break() {
                            return Ok(());
                        }
                    }
                }
            }
            if out.flush().is_break() {
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

/// A blob column's bytes; `None` for any other kind of value.
fn blob(value: ValueRef<'_>) -> Option<&[u8]> {
    match value {
        ValueRef::Blob(bytes) => Some(bytes),
        _ => None,
    }
}

/// The records of the batch in row `row_id`, read from the database's pages into a buffer of
/// their size: SQLite's incremental blob reading, through `handle` (opened at the first batch,
/// moved to each next row). A row value would be assembled whole by SQLite first, then copied.
fn read_blob<'c>(
    conn: &'c Connection,
    handle: &mut Option<rusqlite::blob::Blob<'c>>,
    row_id: i64,
) -> rusqlite::Result<Bytes> {
    let blob = match handle {
        Some(blob) => {
            blob.reopen(row_id)?;
            blob
        }
        None => {
            handle.insert(conn.blob_open(rusqlite::MAIN_DB, "batches", "records", row_id, true)?)
        }
    };
    let len = blob.len();
    let mut buffer = Vec::with_capacity(len);
    let read = blob
        .raw_read_at_exact(&mut buffer.spare_capacity_mut()[..len], 0)?
        .len();
    // SAFETY: `raw_read_at_exact` returned, so it initialized the first `read` (= `len`)
    // bytes of the spare capacity; zeroing them first would be a pass over every batch.
    unsafe { buffer.set_len(read) };
    Ok(Bytes::from(buffer))
}

/// Reads `range` from a log's `records` table (a row per record, before batches).
fn read_legacy(
    conn: &Connection,
    topic: &str,
    range: &OffsetRange,
    out: &mut Batcher<'_>,
    last: &mut Option<i64>,
) -> rusqlite::Result<ControlFlow<()>> {
    let mut stmt = conn.prepare_cached(
        "SELECT offset, timestamp, key, value, headers FROM records
          WHERE topic = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4
          ORDER BY offset",
    )?;
    let mut rows = stmt.query(params![topic, range.partition, range.start, range.end])?;
    while let Some(row) = rows.next()? {
        let message = Message {
            partition: range.partition,
            offset: row.get(0)?,
            timestamp_ms: row.get(1)?,
            timestamp_type: 0,
            key: row.get::<_, Option<Vec<u8>>>(2)?.map(Bytes::from),
            value: row.get::<_, Option<Vec<u8>>>(3)?.map(Bytes::from),
            headers: decode_headers(row.get_ref(4)?.as_blob_or_null().ok().flatten()),
        };
        *last = Some(message.offset);
        if out.push(message).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
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
            // Consecutive offsets of one partition go into one batch row (or a few, if large).
            let mut batches: BTreeMap<i32, BatchBuilder> = BTreeMap::new();
            let mut insert = tx.prepare_cached(INSERT_BATCH).map_err(err)?;
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
                let batch = batches
                    .entry(partition)
                    .or_insert_with(|| BatchBuilder::new(partition, offset));
                let headers = encode_headers(&record.headers);
                let full = batch.push(&frame::Framed {
                    timestamp_ms: record.timestamp_ms,
                    key: record.key.as_deref(),
                    value: Some(&record.value),
                    headers: headers.as_deref(),
                });
                if full {
                    batch.insert(&mut insert, topic).map_err(err)?;
                }
                assigned.push((partition, offset));
            }
            for batch in batches.values_mut() {
                batch.insert(&mut insert, topic).map_err(err)?;
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

    #[test]
    fn a_large_append_spans_several_batches_and_reads_resume_mid_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let n = BATCH_RECORDS * 3 + 10;
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                timestamp_ms: i as i64,
                ..record(&i.to_string())
            })
            .collect();
        log.writer().unwrap().append("events", &records).unwrap();
        let conn = Connection::open(log.path()).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 4);
        let from = BATCH_RECORDS as i64 + 7;
        let range = [OffsetRange {
            partition: 0,
            start: from,
            end: from + 5000,
        }];
        let messages = read_all(&log, "events", &range);
        assert_eq!(messages.len(), 5000);
        for (m, offset) in messages.iter().zip(from..) {
            assert_eq!(m.offset, offset);
            assert_eq!(m.value.as_deref(), Some(offset.to_string().as_bytes()));
        }
        let times = log.offsets_for_times("events", from, &[0]).unwrap();
        assert_eq!(times[&0], Some(from));
    }

    #[test]
    fn a_log_from_before_batches_is_read_and_converted_by_the_first_writer() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        let conn = Connection::open(log.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE partitions (topic TEXT NOT NULL, partition INTEGER NOT NULL,
                 next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition)) WITHOUT ROWID;
             CREATE TABLE records (topic TEXT NOT NULL, partition INTEGER NOT NULL,
                 offset INTEGER NOT NULL, timestamp INTEGER NOT NULL, key BLOB, value BLOB,
                 headers BLOB, PRIMARY KEY (topic, partition, offset)) WITHOUT ROWID;
             INSERT INTO partitions VALUES ('events', 0, 3), ('events', 1, 1);
             INSERT INTO records VALUES
                 ('events', 0, 0, 10, NULL, X'61', NULL),
                 ('events', 0, 1, 20, X'6b', X'62', X'5b5b2268222c6e756c6c5d5d'),
                 ('events', 0, 2, 30, NULL, X'63', NULL),
                 ('events', 1, 0, 40, NULL, X'64', NULL);",
        )
        .unwrap();
        drop(conn);
        let before = read_all(&log, "events", &ranges(&log, "events"));
        let summary = |messages: &[Message]| {
            messages
                .iter()
                .map(|m| {
                    (
                        m.partition,
                        m.offset,
                        m.timestamp_ms,
                        m.key.clone(),
                        m.value.clone(),
                        m.headers.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(before.len(), 4);
        assert_eq!(before[1].headers, vec![("h".to_owned(), None)]);
        assert_eq!(
            log.offsets_for_times("events", 15, &[0, 1]).unwrap()[&0],
            Some(1)
        );

        let mut writer = log.writer().unwrap();
        let conn = Connection::open(log.path()).unwrap();
        assert!(
            !tables(&conn).unwrap().legacy,
            "records converted and dropped"
        );
        let after = read_all(&log, "events", &ranges(&log, "events"));
        assert_eq!(summary(&after), summary(&before));
        assert_eq!(
            log.offsets_for_times("events", 15, &[0, 1]).unwrap()[&0],
            Some(1)
        );
        let appended = writer
            .append(
                "events",
                &[Record {
                    partition: Some(0),
                    ..record("e")
                }],
            )
            .unwrap();
        assert_eq!(appended, vec![(0, 3)]);
    }

    #[test]
    fn a_damaged_batch_is_an_error_naming_its_partition_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::new(dir.path());
        log.writer()
            .unwrap()
            .append("events", &[record("a"), record("b")])
            .unwrap();
        let conn = Connection::open(log.path()).unwrap();
        // Cut frames, and a value that is not a blob at all.
        for damage in ["substr(records, 1, 30)", "42"] {
            conn.execute(&format!("UPDATE batches SET records = {damage}"), [])
                .unwrap();
            let err = log
                .read("events", &ranges(&log, "events"), 10, &mut |_| {
                    ControlFlow::Continue(())
                })
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("events/0 from offset 0") && err.contains("damaged"),
                "{damage}: {err}"
            );
        }
    }
}
