//! Column chunks encoded once for every table of a run that writes the same column.
//!
//! `bnetl run` writes `extracted_events` and `transformed_events` from the same decoded batches:
//! the second holds every column of the first, as the same Arrow arrays. Encoding a column to
//! Parquet (dictionary, statistics, compression) is most of a run's time, and the result for
//! the same arrays, in the same row group, with the same column settings, is the same bytes.
//! So the unpartitioned tables of a run each write through a [`SharingWriter`]: it holds a row
//! group's batches until the row group is full, then asks the run's [`SharedChunks`] for each
//! column: the first table to ask encodes it and publishes the encoded pages, the others copy
//! them into their own files (offsets rewritten by the parquet crate's `append_column`).
//!
//! A column is shared only when its arrays are the same memory (`ArrayData::ptr_eq`, the
//! arrays held by the entry so their memory cannot be reused while it is looked up), its field
//! is equal and its column settings are; anything else is encoded by the table itself. A
//! string column of few distinct values is encoded by [`super::dictionary`] (the values,
//! statistics and page index the crate's writer gives it, without hashing each value); every
//! other column is the bytes an `ArrowWriter` writes for the same batches (unit-tested).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{Array, ArrayData, AsArray, StringArray};
use arrow::datatypes::{DataType, FieldRef, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::{Bytes, BytesMut};
use object_store::buffered::BufWriter;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves,
};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::column::page_store::{PageKey, PageStore, PageStoreArgs, PageStoreFactory};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescPtr, ColumnPath};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dictionary;

/// A column chunk's encoded bytes, dictionary page first, and what the file's footer says of
/// it, with offsets counted from the chunk's first byte.
#[derive(Debug)]
pub struct EncodedChunk {
    bytes: Bytes,
    close: ColumnCloseResult,
}

impl EncodedChunk {
    /// The chunk whose pages were put, in order, as `pages`, and that closed as `close`.
    ///
    /// The parquet crate's Arrow writer accepts a chunk's data pages before its dictionary
    /// page, which it puts where the column writer produced it (at the end, or where the
    /// dictionary overflowed), and moves it first when the chunk is written; this does the
    /// same move. None when the pages do not add up to what `close` says.
    fn from_pages(pages: Vec<Bytes>, close: ColumnCloseResult) -> Option<Self> {
        let total = usize::try_from(close.metadata.compressed_size()).ok()?;
        let data: i64 = close
            .offset_index
            .as_ref()?
            .page_locations
            .iter()
            .map(|p| i64::from(p.compressed_page_size))
            .sum();
        let dictionary_len = usize::try_from(close.metadata.compressed_size() - data).ok()?;
        // The dictionary page's blobs (header, data) are where the dictionary page offset says.
        let dictionary = match close.metadata.dictionary_page_offset() {
            Some(at) if dictionary_len > 0 => {
                let at = usize::try_from(at).ok()?;
                at..at.checked_add(dictionary_len)?
            }
            _ => 0..0,
        };
        let mut bytes = BytesMut::with_capacity(total);
        let mut data_pages = Vec::with_capacity(pages.len());
        let mut offset = 0;
        for page in &pages {
            if dictionary.contains(&offset) {
                bytes.extend_from_slice(page);
            } else {
                data_pages.push(page);
            }
            offset += page.len();
        }
        if bytes.len() != dictionary.len() {
            return None;
        }
        for page in data_pages {
            bytes.extend_from_slice(page);
        }
        if bytes.len() != total {
            return None;
        }
        let bytes = bytes.freeze();
        let close = close.update_dictionary_location(dictionary_len).ok()?;
        Some(EncodedChunk { bytes, close })
    }
}

/// Where a column chunk being shared stands.
#[derive(Debug, Clone)]
enum State {
    Encoding,
    Ready(Arc<EncodedChunk>),
    /// Its encoder gave up: each table encodes the column itself.
    Failed,
}

/// One column chunk encoded (or being encoded) by one table, for the others.
struct Entry {
    /// The writer that encodes it.
    owner: u64,
    /// The row group count (of all writers) when it was published.
    born: u64,
    field: FieldRef,
    settings: String,
    /// The arrays encoded, held so their memory is not reused while the entry is looked up.
    arrays: Vec<ArrayData>,
    /// Writers that may still ask for it.
    left: usize,
    state: watch::Receiver<State>,
}

/// The column chunks of one run that its unpartitioned tables may share.
pub struct SharedChunks {
    /// Writers taking part: an entry is kept until the others have each taken it, or until
    /// every writer has ended two more row groups (the tables read the same batches through
    /// bounded channels, so one that wants a chunk asks for it well before).
    writers: usize,
    held: Mutex<Held>,
    next_id: AtomicU64,
    /// Chunks taken from another table, over the run.
    taken: AtomicU64,
}

#[derive(Default)]
struct Held {
    entries: Vec<Entry>,
    /// Row groups ended by all writers.
    row_groups: u64,
}

impl std::fmt::Debug for SharedChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedChunks")
            .field("writers", &self.writers)
            .finish_non_exhaustive()
    }
}

/// What a writer does about one column of a row group.
enum Claim {
    /// Another table encoded it.
    Ready(Arc<EncodedChunk>),
    /// Another table is encoding it.
    Wait(watch::Receiver<State>),
    /// Encode it, then publish it for the others.
    Encode(Publish),
    /// Encode it, for this table only.
    Alone,
}

/// The right to publish a chunk; dropped unpublished, the waiting tables encode it themselves.
struct Publish(watch::Sender<State>);

impl Publish {
    fn ready(self, chunk: Arc<EncodedChunk>) {
        self.0.send_replace(State::Ready(chunk));
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        self.0.send_if_modified(|state| {
            let encoding = matches!(state, State::Encoding);
            if encoding {
                *state = State::Failed;
            }
            encoding
        });
    }
}

impl SharedChunks {
    /// Chunks shared by `writers` tables; none to share with fewer than two.
    pub fn new(writers: usize) -> Option<Arc<Self>> {
        (writers >= 2).then(|| {
            Arc::new(SharedChunks {
                writers,
                held: Mutex::new(Held::default()),
                next_id: AtomicU64::new(0),
                taken: AtomicU64::new(0),
            })
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a row group ended, and lets go of the entries too old to be asked for.
    fn row_group_ended(&self) {
        let mut held = self.held();
        held.row_groups += 1;
        let oldest = held.row_groups.saturating_sub(2 * self.writers as u64);
        held.entries.retain(|e| e.born >= oldest);
    }

    fn claim(&self, me: u64, field: &FieldRef, settings: &str, arrays: &[ArrayData]) -> Claim {
        let mut held = self.held();
        let born = held.row_groups;
        let entries = &mut held.entries;
        let found = entries.iter().position(|e| {
            e.owner != me
                && e.settings == settings
                && e.field == *field
                && e.arrays.len() == arrays.len()
                && e.arrays.iter().zip(arrays).all(|(a, b)| a.ptr_eq(b))
        });
        if let Some(at) = found {
            let entry = &mut entries[at];
            entry.left -= 1;
            let state = entry.state.borrow().clone();
            let waiting = entry.state.clone();
            if entry.left == 0 {
                entries.swap_remove(at);
            }
            return match state {
                State::Ready(chunk) => Claim::Ready(chunk),
                State::Encoding => Claim::Wait(waiting),
                State::Failed => Claim::Alone,
            };
        }
        let (tx, rx) = watch::channel(State::Encoding);
        entries.push(Entry {
            owner: me,
            born,
            field: Arc::clone(field),
            settings: settings.to_owned(),
            arrays: arrays.to_vec(),
            left: self.writers - 1,
            state: rx,
        });
        Claim::Encode(Publish(tx))
    }

    /// Column chunks taken from another table so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

/// Page blobs of each column chunk being encoded, kept by column so the chunk can be copied
/// into several files. The parquet crate hands a column writer's pages to its store, in the
/// order the writer produces them.
#[derive(Debug, Default)]
struct RecordedPages {
    columns: Mutex<HashMap<usize, Arc<Mutex<Vec<Bytes>>>>>,
}

impl RecordedPages {
    fn take(&self, column: usize) -> Vec<Bytes> {
        let log = self
            .columns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&column);
        log.map(|log| std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner)))
            .unwrap_or_default()
    }
}

struct RecordingStore(Arc<Mutex<Vec<Bytes>>>);

impl PageStore for RecordingStore {
    fn put(&mut self, value: Bytes) -> Result<PageKey> {
        let mut pages = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        pages.push(value);
        Ok(PageKey::new(pages.len() as u64 - 1))
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes> {
        let pages = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        usize::try_from(key.get())
            .ok()
            .and_then(|at| pages.get(at).cloned())
            .ok_or_else(|| ParquetError::General(format!("no page {}", key.get())))
    }

    fn memory_size(&self) -> usize {
        let pages = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        pages.iter().map(Bytes::len).sum()
    }
}

impl PageStoreFactory for RecordedPages {
    fn create(&self, args: &PageStoreArgs<'_>) -> Result<Box<dyn PageStore>> {
        let log = Arc::new(Mutex::new(Vec::new()));
        self.columns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(args.column_index(), Arc::clone(&log));
        Ok(Box::new(RecordingStore(log)))
    }
}

/// A Parquet file written a row group at a time, its columns shared with the run's other
/// tables through [`SharedChunks`]. Row groups are cut as `ArrowWriter` cuts them (at
/// `max_row_group_row_count` rows, or on [`SharingWriter::flush`]); a full row group is
/// encoded in a task of its own while the next one fills, so the run's read does not wait.
pub struct SharingWriter {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    object: BufWriter,
    encoder: Arc<Encoder>,
    max_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    /// The row group being encoded, and the memory its batches hold.
    encoding: Option<(RowGroupTask, usize)>,
}

/// A row group being encoded: its column chunks, in the file's order.
type RowGroupTask = JoinHandle<Result<Vec<Arc<EncodedChunk>>>>;

/// What encodes a writer's row groups.
struct Encoder {
    pages: Arc<RecordedPages>,
    schema: SchemaRef,
    /// The file's leaf columns, and its settings, for the chunks of few distinct strings
    /// encoded by [`super::dictionary`].
    columns: Vec<ColumnDescPtr>,
    props: WriterProperties,
    /// Each field's column settings, as entries compare them.
    settings: Vec<String>,
    chunks: Arc<SharedChunks>,
    id: u64,
}

impl SharingWriter {
    /// A writer of batches of `schema` into `object`, with `props`.
    pub fn try_new(
        object: BufWriter,
        schema: SchemaRef,
        props: WriterProperties,
        chunks: Arc<SharedChunks>,
    ) -> Result<Self> {
        let settings = schema
            .fields()
            .iter()
            .map(|f| column_settings(&props, f.name()))
            .collect();
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX);
        let pages = Arc::new(RecordedPages::default());
        let options = ArrowWriterOptions::new()
            .with_properties(props.clone())
            .with_page_store_factory(Arc::clone(&pages) as Arc<dyn PageStoreFactory>);
        let (file, factory) =
            ArrowWriter::try_new_with_options(Vec::new(), Arc::clone(&schema), options)?
                .into_serialized_writer()?;
        let id = chunks.next_id.fetch_add(1, Ordering::Relaxed);
        let columns = file.schema_descr().columns().to_vec();
        Ok(SharingWriter {
            file,
            factory,
            object,
            encoder: Arc::new(Encoder {
                pages,
                schema,
                columns,
                props,
                settings,
                chunks,
                id,
            }),
            max_rows: max_rows.max(1),
            pending: Vec::new(),
            pending_rows: 0,
            pending_bytes: 0,
            encoding: None,
        })
    }

    /// Bytes written to the file so far, footer excepted.
    pub fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Memory held by the row groups not written yet (the one filling and the one encoding).
    pub fn in_progress_size(&self) -> usize {
        self.pending_bytes + self.encoding.as_ref().map_or(0, |(_, bytes)| *bytes)
    }

    /// Adds `batch` to the file, ending row groups at the row limit.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let take = batch.num_rows().min(self.max_rows - self.pending_rows);
            let head = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            self.pending_bytes += head.get_array_memory_size();
            self.pending_rows += take;
            self.pending.push(head);
            if self.pending_rows >= self.max_rows {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Ends the row group: writes the one encoded before it, then starts encoding it.
    pub async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write_encoded().await?;
        let row_group = self.file.flushed_row_groups().len();
        let writers = self.factory.create_column_writers(row_group)?;
        let pending = std::mem::take(&mut self.pending);
        let task = tokio::spawn(Arc::clone(&self.encoder).row_group(row_group, pending, writers));
        self.encoding = Some((task, self.pending_bytes));
        self.pending_rows = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    /// Waits for the row group being encoded, and writes it.
    async fn write_encoded(&mut self) -> Result<()> {
        let Some((task, _)) = self.encoding.take() else {
            return Ok(());
        };
        let chunks = task
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))??;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            row_group.append_column(&chunk.bytes, chunk.close.clone())?;
        }
        row_group.close()?;
        let buffered = std::mem::take(self.file.inner_mut());
        self.object.write(Bytes::from(buffered)).await
    }

    /// Ends the last row group and the file.
    pub async fn close(mut self) -> Result<()> {
        self.flush().await?;
        self.write_encoded().await?;
        self.file.finish()?;
        let buffered = std::mem::take(self.file.inner_mut());
        self.object.write(Bytes::from(buffered)).await?;
        self.object.complete().await
    }
}

impl Drop for SharingWriter {
    fn drop(&mut self) {
        if let Some((task, _)) = self.encoding.take() {
            task.abort();
        }
    }
}

impl Encoder {
    /// Encodes row group `row_group` (`pending`) with `writers`, one per leaf column: each
    /// column taken from another table or encoded (and published). A column another table is
    /// encoding is waited for last, after this table has encoded the columns no one else took:
    /// two tables ending the same row group split its columns between them, and a table never
    /// waits while others wait for it.
    async fn row_group(
        self: Arc<Self>,
        row_group: usize,
        pending: Vec<RecordBatch>,
        writers: Vec<ArrowColumnWriter>,
    ) -> Result<Vec<Arc<EncodedChunk>>> {
        self.chunks.row_group_ended();
        let mut writers = writers.into_iter();
        let fields = self.schema.fields().len();
        let mut chunks: Vec<Vec<Arc<EncodedChunk>>> = vec![Vec::new(); fields];
        let mut waiting = Vec::new();
        let mut leaf = 0;
        let mut taken = 0;
        for (at, field) in self.schema.fields().iter().enumerate() {
            let leaves = compute_leaves(field, pending[0].column(at))?.len();
            let own: Vec<ArrowColumnWriter> = writers.by_ref().take(leaves).collect();
            let first_leaf = leaf;
            leaf += leaves;
            let claim = if leaves == 1 {
                let arrays: Vec<ArrayData> =
                    pending.iter().map(|b| b.column(at).to_data()).collect();
                self.chunks
                    .claim(self.id, field, &self.settings[at], &arrays)
            } else {
                Claim::Alone
            };
            let publish = match claim {
                Claim::Ready(chunk) => {
                    taken += 1;
                    chunks[at].push(chunk);
                    continue;
                }
                Claim::Wait(state) => {
                    waiting.push((at, first_leaf, own, state));
                    continue;
                }
                Claim::Encode(publish) => Some(publish),
                Claim::Alone => None,
            };
            chunks[at] = self.encode(&pending, at, first_leaf, own)?;
            if let (Some(publish), [chunk]) = (publish, &chunks[at][..]) {
                publish.ready(Arc::clone(chunk));
            }
        }
        for (at, first_leaf, own, mut state) in waiting {
            let done = state
                .wait_for(|s| !matches!(s, State::Encoding))
                .await
                .map(|s| s.clone());
            chunks[at] = match done {
                Ok(State::Ready(chunk)) => {
                    taken += 1;
                    vec![chunk]
                }
                _ => self.encode(&pending, at, first_leaf, own)?,
            };
        }
        self.chunks.taken.fetch_add(taken, Ordering::Relaxed);
        tracing::debug!(
            row_group,
            rows = pending.iter().map(RecordBatch::num_rows).sum::<usize>(),
            columns = fields,
            taken,
            "row group encoded"
        );
        Ok(chunks.into_iter().flatten().collect())
    }

    /// Encodes field `at` of `pending` with `writers`, one per leaf column from `first_leaf`
    /// on.
    fn encode(
        &self,
        pending: &[RecordBatch],
        at: usize,
        first_leaf: usize,
        mut writers: Vec<ArrowColumnWriter>,
    ) -> Result<Vec<Arc<EncodedChunk>>> {
        let field = self.schema.field(at);
        if writers.len() == 1
            && *field.data_type() == DataType::Utf8
            && let Some(descr) = self.columns.get(first_leaf)
        {
            let arrays: Vec<&StringArray> = pending
                .iter()
                .map(|b| b.column(at).as_string::<i32>())
                .collect();
            if let Some((bytes, close)) = dictionary::encode(&arrays, descr, &self.props)? {
                return Ok(vec![Arc::new(EncodedChunk { bytes, close })]);
            }
        }
        for batch in pending {
            let leaves = compute_leaves(field, batch.column(at))?;
            for (writer, leaf) in writers.iter_mut().zip(leaves) {
                writer.write(&leaf)?;
            }
        }
        writers
            .into_iter()
            .enumerate()
            .map(|(i, writer)| {
                let close = writer.close()?.close().clone();
                let pages = self.pages.take(first_leaf + i);
                EncodedChunk::from_pages(pages, close)
                    .map(Arc::new)
                    .ok_or_else(|| {
                        ParquetError::General(format!(
                            "the pages of column {} do not add up to its chunk",
                            field.name()
                        ))
                    })
            })
            .collect()
    }
}

/// What the encoding of column `name` depends on, besides its arrays and field.
fn column_settings(props: &WriterProperties, name: &str) -> String {
    let path = ColumnPath::from(name);
    format!(
        "{:?} {:?} {:?} {:?} {:?} {} {} {} {:?} {:?} {:?}",
        props.dictionary_enabled(&path),
        props.compression(&path),
        props.statistics_enabled(&path),
        props.encoding(&path),
        props.bloom_filter_properties(&path),
        props.data_page_size_limit(),
        props.dictionary_page_size_limit(),
        props.write_batch_size(),
        props.writer_version(),
        props.column_index_truncate_length(),
        props.statistics_truncate_length(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};
    use parquet::arrow::AsyncArrowWriter;

    /// Writer settings that exercise every page layout: row groups cut inside batches, a
    /// dictionary that overflows into plain pages, a column written plain from the start.
    fn props() -> WriterProperties {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_000))
            .set_dictionary_page_size_limit(2_048)
            .set_data_page_size_limit(4_096)
            .set_column_dictionary_enabled(ColumnPath::from("offset"), false)
            .build()
    }

    fn batches() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Utf8View, true),
            Field::new("Host", DataType::Utf8, false),
            Field::new("offset", DataType::Int64, false),
        ]));
        let batches = (0..5)
            .map(|b| {
                let rows = 0..700i64;
                let kinds: StringViewArray = rows
                    .clone()
                    .map(|r| (r % 7 != 0).then(|| format!("purchase_{}", r % 5)))
                    .collect();
                let hosts: StringArray = rows
                    .clone()
                    .map(|r| Some(format!("user{}.comcast.com", (b * 700 + r) * 7919 % 3_000)))
                    .collect();
                let offsets = Int64Array::from_iter_values(rows.map(|r| b * 700 + r));
                let columns: Vec<ArrayRef> =
                    vec![Arc::new(kinds), Arc::new(hosts), Arc::new(offsets)];
                RecordBatch::try_new(Arc::clone(&schema), columns).expect("valid batch")
            })
            .collect();
        (schema, batches)
    }

    /// The same rows in arrays of their own.
    fn copied(batch: &RecordBatch) -> RecordBatch {
        let rows = arrow::array::UInt32Array::from_iter_values(0..batch.num_rows() as u32);
        let columns = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &rows, None).expect("copied"))
            .collect();
        RecordBatch::try_new(batch.schema(), columns).expect("valid batch")
    }

    async fn written(store: &Arc<dyn ObjectStore>, name: &str) -> Bytes {
        let got = store.get(&Path::from(name)).await.expect("file written");
        got.bytes().await.expect("file read")
    }

    async fn write_sharing(
        store: &Arc<dyn ObjectStore>,
        name: &str,
        chunks: &Arc<SharedChunks>,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) {
        let object = BufWriter::new(Arc::clone(store), Path::from(name));
        let mut writer =
            SharingWriter::try_new(object, Arc::clone(schema), props(), Arc::clone(chunks))
                .expect("writer");
        for batch in batches {
            writer.write(batch).await.expect("written");
        }
        writer.close().await.expect("closed");
    }

    #[tokio::test]
    async fn tables_sharing_columns_write_the_bytes_each_would_write_alone() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (schema, batches) = batches();
        let object = BufWriter::new(Arc::clone(&store), Path::from("alone.parquet"));
        let mut alone =
            AsyncArrowWriter::try_new(object, Arc::clone(&schema), Some(props())).expect("writer");
        for batch in &batches {
            alone.write(batch).await.expect("written");
        }
        alone.close().await.expect("closed");
        let expected = written(&store, "alone.parquet").await;

        // Two tables of the same arrays: every column of every row group encoded once.
        let chunks = SharedChunks::new(2).expect("two writers share");
        tokio::join!(
            write_sharing(&store, "a.parquet", &chunks, &schema, &batches),
            write_sharing(&store, "b.parquet", &chunks, &schema, &batches),
        );
        assert_eq!(
            chunks.taken(),
            4 * 3,
            "4 row groups of 3 columns taken once each"
        );
        assert_eq!(written(&store, "a.parquet").await, expected);
        assert_eq!(written(&store, "b.parquet").await, expected);

        // The same values in other arrays: nothing shared, the same bytes.
        let chunks = SharedChunks::new(2).expect("two writers share");
        let others: Vec<_> = batches.iter().map(copied).collect();
        tokio::join!(
            write_sharing(&store, "c.parquet", &chunks, &schema, &batches),
            write_sharing(&store, "d.parquet", &chunks, &schema, &others),
        );
        assert_eq!(chunks.taken(), 0);
        assert_eq!(written(&store, "c.parquet").await, expected);
        assert_eq!(written(&store, "d.parquet").await, expected);
    }

    #[test]
    fn one_table_shares_with_no_one() {
        assert!(SharedChunks::new(1).is_none());
        assert!(SharedChunks::new(0).is_none());
    }
}
