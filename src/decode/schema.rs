//! The event schema: which columns a read produces and of which type.
//!
//! Game events are schemaless JSON objects whose fields vary (request headers, item details),
//! so the schema is inferred across the whole read. The rules, in one place:
//!
//! * **Columns**: every top-level field seen in any event, plus the core columns
//!   ([`CORE_COLUMNS`]), which exist even when no event has them so the shipped queries always
//!   plan. Fields are ordered by name, byte-wise, as Spark's JSON schema inference orders them
//!   (the seed's `printSchema()` shows `Accept, Host, User-Agent, event_type`), followed by the
//!   Kafka metadata columns [`METADATA_COLUMNS`]. A field absent from an event is null there.
//! * **Types**: all booleans → `Boolean`; all integers that fit i64 → `Int64`; integers and
//!   floats → `Float64`; anything else (strings, objects, arrays, mixed kinds) → `Utf8`.
//!   A value that is not a JSON string but lands in a `Utf8` column keeps its JSON text
//!   (`42`, `true`, `{"a":1}`), as Spark does for a string field. A field that is only ever
//!   null is `Utf8`. Core columns are always `Utf8`. Conflicts therefore never fail a run.
//! * **Reserved names**: a JSON field named like a metadata column is renamed `json_<name>`.

use std::collections::{BTreeMap, HashMap};

/// Maps keyed by field name, hashed with foldhash: these lookups run once per field per event.
type FieldMap<V> = HashMap<String, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Fields every event of the game carries; always present, always `Utf8`.
pub const CORE_COLUMNS: [&str; 4] = ["event_type", "Host", "User-Agent", "Accept"];

/// Columns bnetl adds from the record itself, after the JSON fields.
/// Named and typed as Spark's Kafka source names them (`value` is replaced by the JSON fields);
/// `headers` only exists when asked for, but its name is always reserved.
pub const METADATA_COLUMNS: [&str; 7] = [
    "key",
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestampType",
    "headers",
];

/// The kind of one JSON value, as seen while inferring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Nested,
}

impl JsonKind {
    /// Kind of a raw JSON value from its text (as serde_json's `RawValue` gives it).
    pub fn of_raw(raw: &str) -> JsonKind {
        match raw.as_bytes().first() {
            Some(b'"') => JsonKind::String,
            Some(b'{' | b'[') => JsonKind::Nested,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'n') => JsonKind::Null,
            _ if raw.parse::<i64>().is_ok() => JsonKind::Int,
            _ => JsonKind::Float,
        }
    }

    /// This kind as a bit of the per-field masks inference keeps.
    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// Column type of a JSON field in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Utf8,
    Int64,
    Float64,
    Boolean,
}

impl ColumnType {
    fn from_kinds(mask: u8) -> ColumnType {
        let without_null = mask & !JsonKind::Null.bit();
        let bool_ = JsonKind::Bool.bit();
        let int = JsonKind::Int.bit();
        let float = JsonKind::Float.bit();
        if without_null == bool_ {
            ColumnType::Boolean
        } else if without_null == int {
            ColumnType::Int64
        } else if without_null != 0 && without_null & !(int | float) == 0 {
            ColumnType::Float64
        } else {
            ColumnType::Utf8
        }
    }

    fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
        }
    }
}

/// Collects the kinds seen per field across a read.
#[derive(Debug, Default, Clone)]
pub struct SchemaInference {
    kinds: FieldMap<u8>,
}

impl SchemaInference {
    /// Records that field `name` held a value of `kind`.
    pub fn observe(&mut self, name: &str, kind: JsonKind) {
        match self.kinds.get_mut(name) {
            Some(mask) => *mask |= kind.bit(),
            None => {
                self.kinds.insert(name.to_owned(), kind.bit());
            }
        }
    }

    /// Records every kind in `mask` (bits of [`JsonKind::bit`]) for field `name`; an empty mask
    /// records nothing.
    pub fn observe_mask(&mut self, name: &str, mask: u8) {
        if mask != 0 {
            *self.kinds.entry(name.to_owned()).or_insert(0) |= mask;
        }
    }

    /// The schema of everything observed so far.
    /// With `include_headers`, the schema ends with Spark's `headers` column.
    pub fn finish(&self, include_headers: bool) -> EventSchema {
        let mut fields: BTreeMap<&str, ColumnType> = CORE_COLUMNS
            .iter()
            .map(|&name| (name, ColumnType::Utf8))
            .collect();
        for (name, &mask) in &self.kinds {
            fields
                .entry(name.as_str())
                .or_insert_with(|| ColumnType::from_kinds(mask));
        }
        let json_columns = fields
            .into_iter()
            .map(|(json_name, column_type)| {
                let mut column = json_name.to_owned();
                while METADATA_COLUMNS.contains(&column.as_str())
                    || self.renamed_clash(&column, json_name)
                {
                    column = format!("json_{column}");
                }
                JsonColumn {
                    json_name: json_name.to_owned(),
                    column,
                    column_type,
                }
            })
            .collect();
        EventSchema::new(json_columns, include_headers)
    }

    /// True when `candidate` (a renamed column) would collide with another JSON field.
    fn renamed_clash(&self, candidate: &str, json_name: &str) -> bool {
        candidate != json_name && self.kinds.contains_key(candidate)
    }
}

/// One JSON field and the column it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonColumn {
    /// Field name in the JSON object.
    pub json_name: String,
    /// Column name in the output.
    pub column: String,
    /// Column type.
    pub column_type: ColumnType,
}

/// The schema of decoded events: JSON columns then metadata columns.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// JSON columns in output order.
    pub json_columns: Vec<JsonColumn>,
    index: FieldMap<usize>,
    arrow: SchemaRef,
    include_headers: bool,
}

impl EventSchema {
    fn new(json_columns: Vec<JsonColumn>, include_headers: bool) -> Self {
        let mut fields: Vec<Field> = json_columns
            .iter()
            .map(|c| Field::new(&c.column, c.column_type.data_type(), true))
            .collect();
        fields.extend(metadata_fields(include_headers));
        let index = json_columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.json_name.clone(), i))
            .collect();
        EventSchema {
            json_columns,
            index,
            arrow: Arc::new(Schema::new(fields)),
            include_headers,
        }
    }

    /// Column index of JSON field `name`, if the schema has it.
    pub fn column_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// True when the schema ends with the `headers` column.
    pub fn include_headers(&self) -> bool {
        self.include_headers
    }

    /// The Arrow schema.
    pub fn arrow(&self) -> SchemaRef {
        Arc::clone(&self.arrow)
    }
}

fn metadata_fields(include_headers: bool) -> Vec<Field> {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("timestampType", DataType::Int32, false),
    ];
    if include_headers {
        fields.push(Field::new("headers", headers_type(), true));
    }
    fields
}

/// Spark's `headers`: `array<struct<key: string, value: binary>>`.
pub fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(header_fields()),
        false,
    )))
}

/// The fields of one header.
pub fn header_fields() -> arrow::datatypes::Fields {
    vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &EventSchema) -> Vec<String> {
        schema
            .arrow()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn seed_events_give_sparks_column_order_then_metadata() {
        let mut inference = SchemaInference::default();
        for name in ["event_type", "Host", "User-Agent", "Accept"] {
            inference.observe(name, JsonKind::String);
        }
        let schema = inference.finish(false);
        assert_eq!(
            names(&schema),
            [
                "Accept",
                "Host",
                "User-Agent",
                "event_type",
                "key",
                "topic",
                "partition",
                "offset",
                "timestamp",
                "timestampType"
            ]
        );
    }

    #[test]
    fn core_columns_exist_without_any_event() {
        let schema = SchemaInference::default().finish(false);
        assert_eq!(schema.json_columns.len(), 4);
        assert!(
            schema
                .json_columns
                .iter()
                .all(|c| c.column_type == ColumnType::Utf8)
        );
    }

    #[test]
    fn type_conflicts_widen_instead_of_failing() {
        let mut inference = SchemaInference::default();
        let cases = [
            ("only_int", vec![JsonKind::Int, JsonKind::Null]),
            ("int_float", vec![JsonKind::Int, JsonKind::Float]),
            ("flag", vec![JsonKind::Bool]),
            ("bool_int", vec![JsonKind::Bool, JsonKind::Int]),
            ("int_string", vec![JsonKind::Int, JsonKind::String]),
            ("nested", vec![JsonKind::Nested]),
            ("always_null", vec![JsonKind::Null]),
            ("event_type", vec![JsonKind::Int]),
        ];
        for (name, kinds) in &cases {
            for kind in kinds {
                inference.observe(name, *kind);
            }
        }
        let schema = inference.finish(false);
        let type_of = |name: &str| schema.json_columns[schema.column_of(name).unwrap()].column_type;
        assert_eq!(type_of("only_int"), ColumnType::Int64);
        assert_eq!(type_of("int_float"), ColumnType::Float64);
        assert_eq!(type_of("flag"), ColumnType::Boolean);
        assert_eq!(type_of("bool_int"), ColumnType::Utf8);
        assert_eq!(type_of("int_string"), ColumnType::Utf8);
        assert_eq!(type_of("nested"), ColumnType::Utf8);
        assert_eq!(type_of("always_null"), ColumnType::Utf8);
        assert_eq!(
            type_of("event_type"),
            ColumnType::Utf8,
            "core columns stay strings"
        );
    }

    #[test]
    fn json_fields_named_like_metadata_are_renamed() {
        let mut inference = SchemaInference::default();
        inference.observe("timestamp", JsonKind::String);
        inference.observe("offset", JsonKind::Int);
        inference.observe("headers", JsonKind::Nested);
        let schema = inference.finish(false);
        let columns = names(&schema);
        assert!(
            columns.contains(&"json_timestamp".to_owned()),
            "{columns:?}"
        );
        assert!(columns.contains(&"json_offset".to_owned()), "{columns:?}");
        assert!(
            columns.contains(&"json_headers".to_owned()),
            "reserved even when not included"
        );
        assert_eq!(columns.iter().filter(|c| *c == "timestamp").count(), 1);
    }

    #[test]
    fn raw_values_are_classified_by_their_text() {
        assert_eq!(JsonKind::of_raw("\"x\""), JsonKind::String);
        assert_eq!(JsonKind::of_raw("-12"), JsonKind::Int);
        assert_eq!(JsonKind::of_raw("1.5e3"), JsonKind::Float);
        assert_eq!(JsonKind::of_raw("18446744073709551615"), JsonKind::Float);
        assert_eq!(JsonKind::of_raw("true"), JsonKind::Bool);
        assert_eq!(JsonKind::of_raw("null"), JsonKind::Null);
        assert_eq!(JsonKind::of_raw("[1]"), JsonKind::Nested);
    }
}
