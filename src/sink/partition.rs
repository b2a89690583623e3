//! Hive partitioning: `key=value/` folders, escaped as Spark escapes them, and the split of a
//! batch into one batch per partition value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringViewArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// Folder name Hive and Spark use for a null (or empty) partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The values of the partition columns of one partition, as text; `None` is null.
pub type PartitionKey = Vec<Option<String>>;

/// Escapes a partition column name or value for a path segment, with the character set of
/// Spark's `ExternalCatalogUtils.escapePathName`: `/`, `=`, `%`, quotes, wildcards and control
/// characters become `%XX`, so a value can never leave its table folder or split a segment.
pub fn escape_path_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let needs_escape = c.is_ascii_control()
            || matches!(
                c,
                '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '{' | '[' | ']' | '^'
            );
        if needs_escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The folder path (`k1=v1/k2=v2`) of one partition.
pub fn hive_path(columns: &[String], values: &[Option<String>]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(column, value)| {
            let value = match value.as_deref() {
                None | Some("") => DEFAULT_PARTITION.to_owned(),
                Some(v) => escape_path_name(v),
            };
            format!("{}={value}", escape_path_name(column))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Splits `batch` by the values of `partition_by` (rendered as text). Returns each partition's
/// values with its rows, without the partition columns (they live in the folder names).
pub fn split_by_partition(
    batch: &RecordBatch,
    partition_by: &[String],
) -> Result<Vec<(PartitionKey, RecordBatch)>, ArrowError> {
    let schema = batch.schema();
    let mut key_columns = Vec::with_capacity(partition_by.len());
    for name in partition_by {
        let column = batch.column(schema.index_of(name)?);
        key_columns.push(match column.data_type() {
            DataType::Utf8 | DataType::Utf8View => Arc::clone(column),
            _ => cast(column, &DataType::Utf8)?,
        });
    }
    let data_indices: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !partition_by.contains(schema.field(i).name()))
        .collect();
    let data = batch.project(&data_indices)?;

    let texts: Vec<Text> = key_columns.iter().map(Text::of).collect();
    // Per group (in order of first appearance) its key and rows; a row looks its key up
    // without allocating, and rows that repeat the previous row's key skip the lookup.
    let mut keys: Vec<Vec<Option<&str>>> = Vec::new();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    let mut index: HashMap<Vec<Option<&str>>, usize, foldhash::fast::RandomState> =
        HashMap::default();
    let mut key: Vec<Option<&str>> = Vec::with_capacity(texts.len());
    let mut previous = usize::MAX;
    for row in 0..batch.num_rows() {
        key.clear();
        key.extend(texts.iter().map(|t| t.value(row)));
        let group = if keys.get(previous).is_some_and(|k| *k == key) {
            previous
        } else if let Some(&group) = index.get(key.as_slice()) {
            group
        } else {
            index.insert(key.clone(), keys.len());
            keys.push(key.clone());
            rows.push(Vec::new());
            keys.len() - 1
        };
        let row =
            u32::try_from(row).map_err(|_| ArrowError::ComputeError("batch too large".into()))?;
        rows[group].push(row);
        previous = group;
    }
    if keys.len() == 1 {
        return Ok(vec![(owned(&keys[0]), data)]);
    }
    keys.iter()
        .zip(rows)
        .map(|(key, rows)| {
            let rows = UInt32Array::from(rows);
            Ok((owned(key), take_record_batch(&data, &rows)?))
        })
        .collect()
}

/// A partition column's values as text: a string column as it is, any other cast to one.
enum Text<'a> {
    Plain(&'a StringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn of(column: &'a ArrayRef) -> Self {
        match column.as_string_view_opt() {
            Some(view) => Text::View(view),
            None => Text::Plain(column.as_string::<i32>()),
        }
    }

    fn value(&self, row: usize) -> Option<&'a str> {
        match self {
            Text::Plain(a) => (!a.is_null(row)).then(|| a.value(row)),
            Text::View(a) => (!a.is_null(row)).then(|| a.value(row)),
        }
    }
}

/// The schema of the data files: `schema` without the partition columns.
pub fn data_schema(schema: &Schema, partition_by: &[String]) -> Schema {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !partition_by.contains(f.name()))
        .cloned()
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn owned(key: &[Option<&str>]) -> PartitionKey {
    key.iter().map(|v| v.map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::Field;

    #[test]
    fn values_that_could_escape_their_folder_are_escaped() {
        assert_eq!(escape_path_name("purchase_sword"), "purchase_sword");
        assert_eq!(escape_path_name("../../etc"), "..%2F..%2Fetc");
        assert_eq!(escape_path_name("a=b%c"), "a%3Db%25c");
        assert_eq!(escape_path_name("tab\there\n"), "tab%09here%0A");
        assert_eq!(escape_path_name("ü ok"), "ü ok");
    }

    #[test]
    fn hive_paths_use_the_default_partition_for_null_and_empty() {
        let cols = vec!["event_type".to_owned(), "day".to_owned()];
        assert_eq!(
            hive_path(&cols, &[Some("purchase_knife".into()), None]),
            "event_type=purchase_knife/day=__HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(
            hive_path(&cols[..1], &[Some(String::new())]),
            "event_type=__HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(hive_path(&cols[..1], &[Some("..".into())]), "event_type=..");
    }

    #[test]
    fn a_batch_splits_into_partitions_without_the_partition_column() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Utf8, true),
            Field::new("offset", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    Some("a"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![0, 1, 2, 3])),
            ],
        )
        .unwrap();
        let parts = split_by_partition(&batch, &["event_type".to_owned()]).unwrap();
        let summary: Vec<(Option<String>, Vec<i64>)> = parts
            .iter()
            .map(|(key, b)| {
                assert_eq!(b.num_columns(), 1);
                let offsets = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                (key[0].clone(), offsets.values().to_vec())
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("a".into()), vec![0, 2]),
                (Some("b".into()), vec![1]),
                (None, vec![3])
            ]
        );
    }

    #[test]
    fn view_and_number_columns_split_by_both_values_in_order_of_first_appearance() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Utf8View, true),
            Field::new("day", DataType::Int32, true),
            Field::new("offset", DataType::Int64, false),
        ]));
        let types = StringViewArray::from(vec![Some("a"), Some("a"), Some("b"), Some("a"), None]);
        let days = arrow::array::Int32Array::from(vec![Some(1), Some(2), Some(1), Some(1), None]);
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(types),
                Arc::new(days),
                Arc::new(Int64Array::from(vec![0, 1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let by = ["event_type".to_owned(), "day".to_owned()];
        let parts = split_by_partition(&batch, &by).unwrap();
        let summary: Vec<(PartitionKey, Vec<i64>)> = parts
            .iter()
            .map(|(key, b)| {
                assert_eq!(b.num_columns(), 1);
                let offsets = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
                (key.clone(), offsets.values().to_vec())
            })
            .collect();
        let key = |t: Option<&str>, d: Option<&str>| vec![t.map(String::from), d.map(String::from)];
        assert_eq!(
            summary,
            vec![
                (key(Some("a"), Some("1")), vec![0, 3]),
                (key(Some("a"), Some("2")), vec![1]),
                (key(Some("b"), Some("1")), vec![2]),
                (key(None, None), vec![4]),
            ]
        );
    }
}
