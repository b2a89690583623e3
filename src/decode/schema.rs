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
//!
//! A schema declared with `--schema` (Spark's DDL, [`parse_ddl`]) replaces inference: its
//! columns in its order (plus the core columns it does not name, as strings), then
//! [`RESCUED_DATA`], which keeps per event, as a JSON object, every field the schema does not
//! name and every value that does not fit its column's type (Spark's `from_json` would make
//! them null). Integer types are read as `BIGINT`, floating types as `DOUBLE`.

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

/// The column that keeps, per row, as a JSON object of field name → original value, what does
/// not fit the schema (Databricks Auto Loader's name): fields a declared schema does not name,
/// and values that do not fit their column's type here or in a table's committed schema.
pub const RESCUED_DATA: &str = "_rescued_data";

/// Collects the kinds seen per field across a read; with a declared schema, it observes
/// nothing and always gives that schema.
#[derive(Debug, Default, Clone)]
pub struct SchemaInference {
    kinds: FieldMap<u8>,
    declared: Option<Arc<EventSchema>>,
}

impl SchemaInference {
    /// Inference for a read: over the messages, or none when `declared` is given.
    pub fn new(declared: Option<Arc<EventSchema>>) -> Self {
        SchemaInference {
            kinds: FieldMap::default(),
            declared,
        }
    }

    /// Records that field `name` held a value of `kind`.
    pub fn observe(&mut self, name: &str, kind: JsonKind) {
        if self.declared.is_some() {
            return;
        }
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
        if mask != 0 && self.declared.is_none() {
            *self.kinds.entry(name.to_owned()).or_insert(0) |= mask;
        }
    }

    /// The schema of everything observed so far.
    /// With `include_headers`, the schema ends with Spark's `headers` column.
    pub fn finish(&self, include_headers: bool) -> EventSchema {
        if let Some(declared) = &self.declared {
            return declared.as_ref().clone();
        }
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
    rescues: bool,
}

impl EventSchema {
    fn new(json_columns: Vec<JsonColumn>, include_headers: bool) -> Self {
        Self::with_rescue(json_columns, include_headers, false)
    }

    /// The schema of a declared `columns` (from [`parse_ddl`]): those columns, the core
    /// columns it lacks, then [`RESCUED_DATA`] and the metadata columns.
    pub fn declared(
        columns: &[(String, ColumnType)],
        include_headers: bool,
    ) -> Result<Self, String> {
        let mut json_columns: Vec<JsonColumn> = Vec::new();
        for (name, column_type) in columns {
            if METADATA_COLUMNS.contains(&name.as_str()) || name == RESCUED_DATA {
                return Err(format!(
                    "column {name} is reserved (Kafka's metadata columns and {RESCUED_DATA})"
                ));
            }
            if json_columns.iter().any(|c| c.json_name == *name) {
                return Err(format!("column {name} is declared twice"));
            }
            json_columns.push(JsonColumn {
                json_name: name.clone(),
                column: name.clone(),
                column_type: *column_type,
            });
        }
        for core in CORE_COLUMNS {
            if !json_columns.iter().any(|c| c.json_name == core) {
                json_columns.push(JsonColumn {
                    json_name: core.to_owned(),
                    column: core.to_owned(),
                    column_type: ColumnType::Utf8,
                });
            }
        }
        Ok(Self::with_rescue(json_columns, include_headers, true))
    }

    fn with_rescue(json_columns: Vec<JsonColumn>, include_headers: bool, rescues: bool) -> Self {
        let mut fields: Vec<Field> = json_columns
            .iter()
            .map(|c| Field::new(&c.column, c.column_type.data_type(), true))
            .collect();
        if rescues {
            fields.push(Field::new(RESCUED_DATA, DataType::Utf8, true));
        }
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
            rescues,
        }
    }

    /// True for a declared schema: fields it does not name and values that do not fit go to
    /// [`RESCUED_DATA`].
    pub fn rescues(&self) -> bool {
        self.rescues
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

/// Parses a schema declared in Spark's DDL (`event_type STRING, Host STRING, amount BIGINT`;
/// backticks quote names such as `` `User-Agent` ``) into columns of the types the decoder
/// writes.
pub fn parse_ddl(ddl: &str) -> Result<Vec<(String, ColumnType)>, String> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let statements = Parser::parse_sql(&GenericDialect {}, &format!("CREATE TABLE t ({ddl})"))
        .map_err(|e| {
            format!("not a list of columns such as `event_type STRING, amount BIGINT`: {e}")
        })?;
    let [Statement::CreateTable(table)] = statements.as_slice() else {
        return Err("not a list of columns such as `event_type STRING, amount BIGINT`".into());
    };
    if table.columns.is_empty() {
        return Err("no columns".into());
    }
    table
        .columns
        .iter()
        .map(|column| {
            let text = column.data_type.to_string().to_uppercase();
            let base = text.split('(').next().unwrap_or_default().trim();
            let column_type = match base {
                "STRING" | "VARCHAR" | "CHAR" | "TEXT" | "CHARACTER VARYING" => ColumnType::Utf8,
                "BIGINT" | "LONG" | "INT" | "INTEGER" | "SMALLINT" | "SHORT" | "TINYINT"
                | "BYTE" | "INT64" | "INT8" => ColumnType::Int64,
                "DOUBLE" | "FLOAT" | "REAL" | "DOUBLE PRECISION" | "FLOAT64" | "FLOAT8" => {
                    ColumnType::Float64
                }
                "BOOLEAN" | "BOOL" => ColumnType::Boolean,
                other => {
                    return Err(format!(
                        "column {}: type {other} is not supported (STRING, BIGINT, INT, DOUBLE, FLOAT, BOOLEAN are)",
                        column.name.value
                    ));
                }
            };
            Ok((column.name.value.clone(), column_type))
        })
        .collect()
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

    #[test]
    fn spark_ddl_declares_columns_of_the_decoders_types() {
        let columns = parse_ddl(
            "event_type STRING, `User-Agent` string, n BIGINT, i INT, x DOUBLE, ok BOOLEAN",
        )
        .unwrap();
        assert_eq!(
            columns,
            [
                ("event_type".to_owned(), ColumnType::Utf8),
                ("User-Agent".to_owned(), ColumnType::Utf8),
                ("n".to_owned(), ColumnType::Int64),
                ("i".to_owned(), ColumnType::Int64),
                ("x".to_owned(), ColumnType::Float64),
                ("ok".to_owned(), ColumnType::Boolean),
            ]
        );
        assert!(
            parse_ddl("d DATE")
                .unwrap_err()
                .contains("type DATE is not supported")
        );
        assert!(parse_ddl("").is_err());
        let declared = EventSchema::declared(&columns, false).unwrap();
        assert!(declared.rescues());
        assert_eq!(declared.arrow().field(8).name(), RESCUED_DATA);
        assert!(
            EventSchema::declared(
                &[
                    ("n".into(), ColumnType::Utf8),
                    ("n".into(), ColumnType::Utf8)
                ],
                false
            )
            .is_err()
        );
    }
}
