//! Dictionary-encoded Parquet column chunks for string columns of few distinct values, encoded
//! from runs of equal values without hashing each value.
//!
//! The parquet crate's writer hashes and compares every string value into its dictionary and
//! compares every value again for the chunk's min/max, even when one value repeats row after
//! row, as the game's headers (`Host`, `User-Agent`, `Accept`, `topic`) do; upstream has no way
//! around it (arrow-rs issue #10465). [`encode`] gives a row group's column the chunk the
//! crate writes for it (a PLAIN dictionary page, then `RLE_DICTIONARY` data pages of v1 with
//! RLE definition levels, cut where the crate cuts them, the column's compression, chunk and
//! size statistics, column index and offset index, min/max truncated as the crate truncates
//! them), but looks a value up only when it differs from the previous one, and takes a page's
//! min/max over the dictionary entries it uses. It declines (and the crate's writer encodes the
//! column) whenever the chunk would not be that: settings other than the defaults it follows,
//! more distinct values than [`MAX_ENTRIES`] or than the dictionary page limit holds, a chunk
//! of nulls only. Readers see the same values, statistics and page index (unit-tested against
//! the crate's writer, and by the interop tests through DuckDB and Spark).

use arrow::array::{Array, StringArray};
use arrow::datatypes::ArrowNativeType;
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::decode::json::same_bytes;

/// Distinct values a chunk may hold to be encoded here (index width at most 12 bits).
pub const MAX_ENTRIES: usize = 4096;

/// The smallest data page size limit under which the crate's writer cuts pages by row count
/// alone for indexes of at most 12 bits (a page of 20,480 of them takes at most 34 KB).
const MIN_PAGE_SIZE_LIMIT: usize = 64 * 1024;

/// The dictionary of one chunk: its entries in first-seen order, as the crate's interner
/// numbers them.
struct Dictionary<'a> {
    entries: Vec<&'a [u8]>,
    index: foldhash::HashMap<&'a [u8], u32>,
    bytes: usize,
}

impl<'a> Dictionary<'a> {
    /// The key of `value`, added when new; None when the dictionary would outgrow its limits.
    fn key(&mut self, value: &'a [u8], page_limit: usize) -> Option<u32> {
        if let Some(key) = self.index.get(value) {
            return Some(*key);
        }
        if self.entries.len() >= MAX_ENTRIES || self.bytes + 4 + value.len() > page_limit {
            return None;
        }
        let key = u32::try_from(self.entries.len()).ok()?;
        self.entries.push(value);
        self.index.insert(value, key);
        self.bytes += 4 + value.len();
        Some(key)
    }
}

/// One data page's rows: where its values start among the chunk's non-null values, and counts.
struct PageRows {
    rows: usize,
    first_value: usize,
    values: usize,
}

/// Encodes `arrays` (a row group's batches of one string column, `descr`) as one column
/// chunk written with `props`; its bytes start with the dictionary page, and the offsets in
/// what it returns count from its first byte. None when the chunk is not one it encodes as
/// the parquet crate would (see the module's doc): the caller encodes it with the crate.
pub fn encode(
    arrays: &[&StringArray],
    descr: &ColumnDescPtr,
    props: &WriterProperties,
) -> Result<Option<(Bytes, ColumnCloseResult)>> {
    let path = descr.path();
    let compression = props.compression(path);
    if descr.physical_type() != Type::BYTE_ARRAY
        || descr.max_rep_level() != 0
        || descr.max_def_level() > 1
        || props.writer_version() != WriterVersion::PARQUET_1_0
        || !matches!(compression, Compression::SNAPPY | Compression::UNCOMPRESSED)
        || !props.dictionary_enabled(path)
        || props.statistics_enabled(path) != EnabledStatistics::Page
        || props.write_page_header_statistics(path)
        || props.bloom_filter_properties(path).is_some()
        || props.offset_index_disabled()
        || props.column_data_page_size_limit(path) < MIN_PAGE_SIZE_LIMIT
        || (descr.max_def_level() == 0 && arrays.iter().any(|a| a.null_count() > 0))
    {
        return Ok(None);
    }
    let rows: usize = arrays.iter().map(|a| a.len()).sum();
    if rows == 0 {
        return Ok(None);
    }
    let nullable = descr.max_def_level() == 1;

    // Keys of the non-null values, and definition levels of every row.
    let mut dictionary = Dictionary {
        entries: Vec::new(),
        index: foldhash::HashMap::default(),
        bytes: 0,
    };
    let page_limit = props.dictionary_page_size_limit();
    let mut keys: Vec<u32> = Vec::with_capacity(rows);
    let mut levels: Vec<u8> = Vec::with_capacity(if nullable { rows } else { 0 });
    let mut previous: Option<(&[u8], u32)> = None;
    for array in arrays {
        let data = array.value_data();
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        for (row, ends) in array.value_offsets().windows(2).enumerate() {
            if nulls.is_some_and(|n| n.is_null(row)) {
                levels.push(0);
                continue;
            }
            if nullable {
                levels.push(1);
            }
            let value = &data[ends[0].as_usize()..ends[1].as_usize()];
            let key = match previous {
                Some((last, key)) if same_bytes(last, value) => key,
                _ => {
                    let Some(key) = dictionary.key(value, page_limit) else {
                        return Ok(None);
                    };
                    previous = Some((value, key));
                    key
                }
            };
            keys.push(key);
        }
    }

    // A chunk of nulls only is left to the crate.
    if keys.is_empty() {
        return Ok(None);
    }

    let pages = page_rows(arrays, &levels, nullable, props);

    // Each page's min and max, over the entries it uses, and its values' bytes, in one pass.
    let mut stamp = vec![usize::MAX; dictionary.entries.len()];
    let mut page_bounds: Vec<Option<(&[u8], &[u8])>> = Vec::with_capacity(pages.len());
    let mut page_bytes: Vec<i64> = Vec::with_capacity(pages.len());
    for (at, page) in pages.iter().enumerate() {
        let mut bounds: Option<(&[u8], &[u8])> = None;
        let mut bytes = 0;
        let mut last = u32::MAX;
        for &key in &keys[page.first_value..page.first_value + page.values] {
            let value = dictionary.entries[key as usize];
            bytes += value.len() as i64;
            if key == last || stamp[key as usize] == at {
                continue;
            }
            last = key;
            stamp[key as usize] = at;
            bounds = Some(match bounds {
                None => (value, value),
                Some((min, max)) => (min.min(value), max.max(value)),
            });
        }
        page_bounds.push(bounds);
        page_bytes.push(bytes);
    }
    let chunk_bounds = page_bounds.iter().flatten().fold(None, |acc, (min, max)| {
        Some(match acc {
            None => (*min, *max),
            Some((lo, hi)) => (std::cmp::min(lo, *min), std::cmp::max(hi, *max)),
        })
    });
    let index_limit = props.column_index_truncate_length();
    let stats_limit = props.statistics_truncate_length();

    let mut out = TrackedWrite::new(Vec::new());
    let mut written = Written::default();
    let snappy = compression == Compression::SNAPPY;
    let mut writer = SerializedPageWriter::new(&mut out);

    // The dictionary page: PLAIN, each entry's length then its bytes.
    let mut plain = Vec::with_capacity(dictionary.bytes);
    for entry in &dictionary.entries {
        let len = u32::try_from(entry.len())
            .map_err(|_| ParquetError::General("dictionary entry too long".to_owned()))?;
        plain.extend_from_slice(&len.to_le_bytes());
        plain.extend_from_slice(entry);
    }
    let uncompressed = plain.len();
    let page = Page::DictionaryPage {
        buf: compress(plain, snappy)?,
        num_values: u32::try_from(dictionary.entries.len()).unwrap_or(u32::MAX),
        encoding: Encoding::PLAIN,
        is_sorted: false,
    };
    written.add(writer.write_page(CompressedPage::new(page, uncompressed))?);

    let width = bit_width(dictionary.entries.len());
    let mut column_index = ColumnIndexBuilder::new(Type::BYTE_ARRAY);
    let mut offset_index = OffsetIndexBuilder::new();
    let mut ascending = true;
    let mut descending = true;
    let mut last_bounds: Option<(&[u8], &[u8])> = None;
    let mut row = 0;
    for ((page, bounds), bytes) in pages.iter().zip(&page_bounds).zip(&page_bytes) {
        let page_keys = &keys[page.first_value..page.first_value + page.values];
        let mut buf = Vec::new();
        if nullable {
            let mut encoded = Vec::new();
            rle_hybrid(&levels[row..row + page.rows], 1, &mut encoded);
            let len = u32::try_from(encoded.len())
                .map_err(|_| ParquetError::General("levels too long".to_owned()))?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&encoded);
        }
        buf.push(width);
        rle_hybrid(page_keys, width, &mut buf);
        let uncompressed = buf.len();
        let num_values = u32::try_from(page.rows)
            .map_err(|_| ParquetError::General("page too long".to_owned()))?;
        let page_data = Page::DataPage {
            buf: compress(buf, snappy)?,
            num_values,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let spec = writer.write_page(CompressedPage::new(page_data, uncompressed))?;
        offset_index.append_offset_and_size(
            i64::try_from(spec.offset).unwrap_or(i64::MAX),
            i32::try_from(spec.compressed_size).unwrap_or(i32::MAX),
        );
        written.add(spec);

        let nulls = (page.rows - page.values) as i64;
        match bounds {
            None => column_index.append(true, Vec::new(), Vec::new(), nulls),
            Some((min, max)) => {
                if let Some((last_min, last_max)) = last_bounds {
                    ascending &= last_min <= *min && last_max <= *max;
                    descending &= *min <= last_min && *max <= last_max;
                }
                last_bounds = Some((min, max));
                let (low, _) = lower_bound(min, index_limit);
                let (high, _) = upper_bound(max, index_limit);
                column_index.append(false, low, high, nulls);
            }
        }
        let histogram = nullable.then(|| LevelHistogram::from(vec![nulls, page.values as i64]));
        column_index.append_histograms(&None, &histogram);
        offset_index.append_row_count(page.rows as i64);
        offset_index.append_unencoded_byte_array_data_bytes(Some(*bytes));
        row += page.rows;
    }
    writer.close()?;
    column_index.set_boundary_order(match (ascending, descending) {
        (true, _) => BoundaryOrder::ASCENDING,
        (false, true) => BoundaryOrder::DESCENDING,
        (false, false) => BoundaryOrder::UNORDERED,
    });

    let nulls = (rows - keys.len()) as u64;
    let chunk_histogram = nullable.then(|| vec![nulls as i64, keys.len() as i64]);
    let chunk_bytes: i64 = page_bytes.iter().sum();
    // `keys` is not empty, so neither are the chunk's bounds.
    let (min, max) = chunk_bounds.unwrap_or_default();
    let (min, min_cut) = lower_bound(min, stats_limit);
    let (max, max_cut) = upper_bound(max, stats_limit);
    let statistics = Statistics::ByteArray(
        ValueStatistics::new(
            Some(ByteArray::from(min)),
            Some(ByteArray::from(max)),
            None,
            Some(nulls),
            false,
        )
        .with_backwards_compatible_min_max(descr.sort_order().is_signed())
        .with_min_is_exact(!min_cut)
        .with_max_is_exact(!max_cut),
    );
    let data_pages = i32::try_from(pages.len()).unwrap_or(i32::MAX);
    let metadata = ColumnChunkMetaData::builder(descr.clone())
        .set_compression(compression)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
        ))
        .set_page_encoding_stats(vec![
            PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::RLE_DICTIONARY,
                count: data_pages,
            },
        ])
        .set_total_compressed_size(written.compressed as i64)
        .set_total_uncompressed_size(written.uncompressed as i64)
        .set_num_values(rows as i64)
        .set_data_page_offset(written.first_data_page.unwrap_or(0) as i64)
        .set_dictionary_page_offset(Some(0))
        .set_statistics(statistics)
        .set_unencoded_byte_array_data_bytes(Some(chunk_bytes))
        .set_definition_level_histogram(chunk_histogram.map(LevelHistogram::from))
        .build()?;
    let close = ColumnCloseResult {
        bytes_written: written.bytes,
        rows_written: rows as u64,
        metadata,
        bloom_filter: None,
        column_index: Some(column_index.build()?),
        offset_index: Some(offset_index.build()),
    };
    let bytes = Bytes::from(out.into_inner()?);
    Ok(Some((bytes, close)))
}

/// A lower bound of `value` of at most `limit` bytes, as Parquet writers truncate a min: cut
/// at the last character boundary within the limit. Whether it was cut; a value that cannot
/// be cut (its first character longer than the limit) is kept whole.
fn lower_bound(value: &[u8], limit: Option<usize>) -> (Vec<u8>, bool) {
    let Some(limit) = limit.filter(|l| value.len() > *l) else {
        return (value.to_vec(), false);
    };
    let Ok(text) = std::str::from_utf8(value) else {
        return (value[..limit].to_vec(), true);
    };
    match (1..=limit).rev().find(|at| text.is_char_boundary(*at)) {
        Some(at) => (value[..at].to_vec(), true),
        None => (value.to_vec(), false),
    }
}

/// An upper bound of `value` of at most `limit` bytes, as Parquet writers truncate a max: cut
/// at a character boundary at most 3 bytes short of the limit, then the last character that
/// can be is incremented (to one of the same UTF-8 length) and the characters after it
/// dropped. Whether it was cut; a value with no such bound is kept whole.
fn upper_bound(value: &[u8], limit: Option<usize>) -> (Vec<u8>, bool) {
    let Some(limit) = limit.filter(|l| value.len() > *l) else {
        return (value.to_vec(), false);
    };
    let bound = match std::str::from_utf8(value) {
        Ok(text) => (limit.saturating_sub(3)..=limit)
            .rev()
            .find(|at| text.is_char_boundary(*at))
            .and_then(|at| {
                let prefix = &text[..at];
                prefix.char_indices().rev().find_map(|(at, c)| {
                    let next = char::from_u32(u32::from(c) + 1)
                        .filter(|n| n.len_utf8() == c.len_utf8())?;
                    let mut bound = prefix.as_bytes()[..at].to_vec();
                    bound.extend_from_slice(next.encode_utf8(&mut [0; 4]).as_bytes());
                    Some(bound)
                })
            }),
        Err(_) => {
            let mut bytes = value[..limit].to_vec();
            bytes.iter().rposition(|b| *b != u8::MAX).map(|at| {
                bytes[at] += 1;
                bytes.truncate(at + 1);
                bytes
            })
        }
    };
    match bound {
        Some(bound) => (bound, true),
        None => (value.to_vec(), false),
    }
}

/// The data pages of a chunk of `arrays`, cut where the crate's column writer cuts them: it
/// takes each batch in mini-batches (of `write_batch_size` rows, or of
/// `data_page_row_count_limit` rows when the batch's definition levels are all equal), and
/// ends the page after the mini-batch that brings it to `data_page_row_count_limit` rows (the
/// index widths here keep a page far below the page size limit). `levels` are the rows'
/// definition levels when the column is `nullable`.
fn page_rows(
    arrays: &[&StringArray],
    levels: &[u8],
    nullable: bool,
    props: &WriterProperties,
) -> Vec<PageRows> {
    let row_limit = props.data_page_row_count_limit().max(1);
    let mut page_sizes = Vec::new();
    let mut filling = 0;
    for array in arrays {
        let uniform = nullable && (array.null_count() == 0 || array.null_count() == array.len());
        let step = if uniform {
            row_limit
        } else {
            props.write_batch_size().max(1)
        };
        let mut left = array.len();
        while left > 0 {
            let take = step.min(left);
            left -= take;
            filling += take;
            if filling >= row_limit {
                page_sizes.push(filling);
                filling = 0;
            }
        }
    }
    if filling > 0 {
        page_sizes.push(filling);
    }
    let mut pages = Vec::with_capacity(page_sizes.len());
    let mut first_value = 0;
    let mut start = 0;
    for rows in page_sizes {
        let end = start + rows;
        let values = if nullable {
            levels[start..end].iter().filter(|l| **l == 1).count()
        } else {
            rows
        };
        pages.push(PageRows {
            rows,
            first_value,
            values,
        });
        first_value += values;
        start = end;
    }
    pages
}

/// What the pages of a chunk add up to.
#[derive(Default)]
struct Written {
    compressed: u64,
    uncompressed: u64,
    bytes: u64,
    first_data_page: Option<u64>,
}

impl Written {
    fn add(&mut self, spec: parquet::column::page::PageWriteSpec) {
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
        self.bytes += spec.bytes_written;
        if spec.page_type == PageType::DATA_PAGE && self.first_data_page.is_none() {
            self.first_data_page = Some(spec.offset);
        }
    }
}

fn compress(buf: Vec<u8>, snappy: bool) -> Result<Bytes> {
    if !snappy {
        return Ok(Bytes::from(buf));
    }
    snap::raw::Encoder::new()
        .compress_vec(&buf)
        .map(Bytes::from)
        .map_err(|e| ParquetError::External(Box::new(e)))
}

/// Bits of a dictionary index for `entries` entries (0 for one entry, as the crate writes).
fn bit_width(entries: usize) -> u8 {
    let max = entries.saturating_sub(1) as u64;
    (u64::BITS - max.leading_zeros()) as u8
}

fn uleb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Parquet's RLE / bit-packing hybrid encoding of `values`, `width` bits each: a run of 8 or
/// more equal values as one RLE run, anything else in bit-packed groups of 8 (the last group
/// padded with zeros; readers read as many values as the page holds).
fn rle_hybrid<T: Copy + PartialEq + Into<u64>>(values: &[T], width: u8, out: &mut Vec<u8>) {
    let value_bytes = usize::from(width).div_ceil(8);
    let run_at = |i: usize| {
        let v = values[i];
        values[i..].iter().take_while(|x| **x == v).count()
    };
    let mut i = 0;
    while i < values.len() {
        let run = run_at(i);
        if run >= 8 {
            uleb128((run as u64) << 1, out);
            out.extend_from_slice(&values[i].into().to_le_bytes()[..value_bytes]);
            i += run;
            continue;
        }
        let start = i;
        let mut groups = 0u64;
        loop {
            i = (i + 8).min(values.len());
            groups += 1;
            if i >= values.len() || groups == 63 || run_at(i) >= 8 {
                break;
            }
        }
        uleb128((groups << 1) | 1, out);
        let mut bits: u64 = 0;
        let mut filled = 0u32;
        let packed = (groups * 8) as usize;
        for at in 0..packed {
            let v = if start + at < i {
                values[start + at].into()
            } else {
                0
            };
            bits |= v << filled;
            filled += u32::from(width);
            while filled >= 8 {
                out.push(bits as u8);
                bits >>= 8;
                filled -= 8;
            }
        }
        if filled > 0 {
            out.push(bits as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, RecordBatch};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::ParquetMetaData;

    fn props() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(1_000_000))
            .build()
    }

    fn schema(nullable: bool) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new(
            "Host",
            DataType::Utf8,
            nullable,
        )]))
    }

    fn batches(schema: &SchemaRef, arrays: &[StringArray]) -> Vec<RecordBatch> {
        arrays
            .iter()
            .map(|a| {
                let column: ArrayRef = Arc::new(a.clone());
                RecordBatch::try_new(Arc::clone(schema), vec![column]).expect("batch")
            })
            .collect()
    }

    /// The file the parquet crate writes for `arrays` in one row group.
    fn crate_file(schema: &SchemaRef, arrays: &[StringArray]) -> Bytes {
        let mut writer =
            ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(props())).expect("writer");
        for batch in batches(schema, arrays) {
            writer.write(&batch).expect("written");
        }
        Bytes::from(writer.into_inner().expect("closed"))
    }

    /// The file with the chunk [`encode`] gives, or None when it declines.
    fn our_file(schema: &SchemaRef, arrays: &[StringArray]) -> Option<Bytes> {
        let (mut file, _) = ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(props()))
            .expect("writer")
            .into_serialized_writer()
            .expect("file writer");
        let descr = file.schema_descr().column(0);
        let refs: Vec<&StringArray> = arrays.iter().collect();
        let (bytes, close) = encode(&refs, &descr, &props()).expect("encoded")?;
        let mut row_group = file.next_row_group().expect("row group");
        row_group.append_column(&bytes, close).expect("appended");
        row_group.close().expect("row group closed");
        file.finish().expect("finished");
        Some(Bytes::from(std::mem::take(file.inner_mut())))
    }

    fn read(file: Bytes) -> (Arc<ParquetMetaData>, RecordBatch) {
        let options = ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).expect("reader");
        let metadata = Arc::clone(builder.metadata());
        let schema = Arc::clone(builder.schema());
        let batches: Vec<RecordBatch> = builder
            .build()
            .expect("reader")
            .collect::<std::result::Result<_, _>>()
            .expect("read");
        (metadata, concat_batches(&schema, &batches).expect("concat"))
    }

    /// Readers see what they see in the crate's file: the values, the chunk's statistics,
    /// encodings and size statistics, and the page index (pages, rows, min/max, nulls).
    fn assert_reads_as_the_crates(nullable: bool, arrays: &[StringArray]) -> Statistics {
        let schema = schema(nullable);
        let ours = our_file(&schema, arrays).expect("encoded here");
        let (theirs_meta, theirs) = read(crate_file(&schema, arrays));
        let (our_meta, got) = read(ours);
        assert_eq!(got, theirs);
        let (a, b) = (
            our_meta.row_group(0).column(0),
            theirs_meta.row_group(0).column(0),
        );
        assert_eq!(a.num_values(), b.num_values());
        assert_eq!(a.statistics(), b.statistics());
        assert_eq!(a.encodings_mask(), b.encodings_mask());
        assert_eq!(a.page_encoding_stats(), b.page_encoding_stats());
        assert_eq!(a.compression(), b.compression());
        assert_eq!(
            a.unencoded_byte_array_data_bytes(),
            b.unencoded_byte_array_data_bytes()
        );
        assert_eq!(
            a.definition_level_histogram(),
            b.definition_level_histogram()
        );
        assert_eq!(
            a.repetition_level_histogram(),
            b.repetition_level_histogram()
        );
        assert!(a.dictionary_page_offset().is_some());
        let index = |m: &ParquetMetaData| m.column_index().expect("column index")[0][0].clone();
        assert_eq!(index(&our_meta), index(&theirs_meta));
        let pages = |m: &ParquetMetaData| {
            let offsets = &m.offset_index().expect("offset index")[0][0];
            let rows: Vec<i64> = offsets
                .page_locations
                .iter()
                .map(|p| p.first_row_index)
                .collect();
            (rows, offsets.unencoded_byte_array_data_bytes.clone())
        };
        assert_eq!(pages(&our_meta), pages(&theirs_meta));
        a.statistics().expect("statistics").clone()
    }

    const HOSTS: [&str; 5] = [
        "user1.comcast.com",
        "user2.att.com",
        "user3.verizon.com",
        "user4.spectrum.com",
        "user5.fios.com",
    ];

    #[test]
    fn runs_and_mixes_of_few_values_read_as_the_crates_chunk() {
        // Runs (as ab sends them), alternations, single values, across batches and pages.
        let arrays: Vec<StringArray> = (0..4)
            .map(|b| {
                (0..9_000usize)
                    .map(|r| {
                        let i = match (b + r / 1_000) % 3 {
                            0 => r / 7,
                            1 => r * 31 / 3,
                            _ => b,
                        };
                        Some(HOSTS[i % HOSTS.len()])
                    })
                    .collect()
            })
            .collect();
        assert_reads_as_the_crates(false, &arrays);
        assert_reads_as_the_crates(true, &arrays);
        // One value throughout: a dictionary of one entry, indexes of zero bits.
        let constant: Vec<StringArray> = (0..3)
            .map(|_| std::iter::repeat_n(Some("events"), 30_000).collect())
            .collect();
        assert_reads_as_the_crates(false, &constant);
        // Few rows, fewer than a bit-packed group.
        assert_reads_as_the_crates(false, &[StringArray::from(vec!["b", "a", "c"])]);
    }

    #[test]
    fn long_bounds_are_truncated_as_the_crate_truncates_them() {
        // Browsers' User-Agents, and values whose cut falls inside a character or on one that
        // cannot be incremented: the min/max in the statistics and the column index.
        let agents = [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
            "ApacheBench/2.3",
        ];
        let wide = format!("{}é{}", "z".repeat(62), "ü".repeat(10));
        let last = format!("{}{}", "\u{10FFFF}".repeat(15), "\u{10FFFF}\u{10FFFF}");
        let low = format!("{}日本語", "a".repeat(62));
        for (k, extra) in [wide, last, low].iter().enumerate() {
            // The last round has no short value: its min is cut in the chunk's statistics too.
            let arrays: Vec<StringArray> = (0..3usize)
                .map(|b| {
                    (0..12_000usize)
                        .map(|r| match (r / 50 + b) % 4 {
                            3 => Some(extra.as_str()),
                            2 if k < 2 && b == 0 => Some(agents[2]),
                            2 => Some(agents[0]),
                            i => Some(agents[i]),
                        })
                        .collect()
                })
                .collect();
            let stats = assert_reads_as_the_crates(true, &arrays);
            // Cut: the max in the first round, kept whole in the second (no character of
            // U+10FFFF can be incremented), the min in the third.
            let exact = (stats.min_is_exact(), stats.max_is_exact());
            assert_eq!(exact, [(true, false), (true, true), (false, false)][k]);
        }
    }

    #[test]
    fn nulls_read_as_the_crates_chunk_pages_of_nulls_included() {
        let sparse: StringArray = (0..25_000usize)
            .map(|r| (r % 3 != 0).then(|| HOSTS[r / 100 % HOSTS.len()]))
            .collect();
        let nulls: StringArray = std::iter::repeat_n(None::<&str>, 45_000).collect();
        let tail: StringArray = (0..5_000usize).map(|r| Some(HOSTS[r % 2])).collect();
        assert_reads_as_the_crates(true, &[sparse, nulls, tail]);
    }

    #[test]
    fn chunks_it_would_not_encode_as_the_crate_are_left_to_the_crate() {
        let schema = schema(true);
        let many: StringArray = (0..MAX_ENTRIES + 1)
            .map(|i| Some(format!("v{i}")))
            .collect();
        assert!(our_file(&schema, &[many]).is_none());
        let nulls: StringArray = vec![None::<&str>; 10].into_iter().collect();
        assert!(our_file(&schema, &[nulls]).is_none());
        let uncompressed_props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(Default::default()))
            .build();
        let (file, _) = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), None)
            .expect("writer")
            .into_serialized_writer()
            .expect("file writer");
        let a = StringArray::from(vec!["a"]);
        assert!(
            encode(&[&a], &file.schema_descr().column(0), &uncompressed_props)
                .expect("encoded")
                .is_none()
        );
    }

    #[test]
    fn the_hybrid_encoding_packs_runs_and_groups() {
        let mut out = Vec::new();
        rle_hybrid(&[3u32; 10], 2, &mut out);
        assert_eq!(out, [20, 3]);
        out.clear();
        rle_hybrid(&[1u32, 0, 1], 1, &mut out);
        assert_eq!(out, [3, 0b101]);
        assert_eq!(
            (bit_width(1), bit_width(2), bit_width(3), bit_width(4097)),
            (0, 1, 2, 13)
        );
    }
}
