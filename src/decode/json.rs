//! JSON messages → Arrow: one parse per message (repeats excepted), values kept as borrowed
//! raw JSON text.
//!
//! [`scan`] validates each message, feeds [`SchemaInference`] and keeps the bad ones aside;
//! [`EventDecoder`] builds the columns of a schema, and [`EventDecoder::decode_checked`] does
//! both at once, recording in a [`Conformance`] whether inference would still give that schema.
//! All use [`ObjectReader`], so a message is bad in one exactly when it is bad in the others;
//! it reads the common flat objects itself and leaves the rest to serde_json. The decoder
//! does not parse again an event whose bytes are the previous message's (a game's clients
//! send runs of the same action, as `ab` does), or those of one of the batch's first distinct
//! events ([`Recent`]): it appends the fields it read from that one.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::schema::{ColumnType, EventSchema, JsonKind, SchemaInference, header_fields};
use super::{BadRecord, DecodeError};
use crate::source::Message;

/// The first distinct events of a batch, by their bytes: their fields' raw values by column.
/// Events of a game repeat (the same action of the same client sends the same bytes), so a
/// message is looked up before it is parsed; after [`Recent::TRIAL`] lookups that found less
/// than one in ten, the batch stops looking.
struct Recent<'a> {
    events: foldhash::HashMap<&'a [u8], (Vec<Option<&'a str>>, Escapes)>,
    looking: bool,
    lookups: usize,
    found: usize,
}

impl<'a> Recent<'a> {
    /// Distinct events remembered per batch.
    const CAPACITY: usize = 256;
    /// Lookups after which a batch that finds too few stops looking.
    const TRIAL: usize = 512;

    fn new(looking: bool) -> Self {
        Recent {
            events: foldhash::HashMap::default(),
            looking,
            lookups: 0,
            found: 0,
        }
    }

    /// The escapes of the event of bytes `value`, its fields put in `slots`, when remembered.
    fn find(&mut self, value: &[u8], slots: &mut [Option<&'a str>]) -> Option<Escapes> {
        if !self.looking {
            return None;
        }
        self.lookups += 1;
        if let Some((fields, escapes)) = self.events.get(value) {
            self.found += 1;
            slots.copy_from_slice(fields);
            return Some(*escapes);
        }
        if self.lookups >= Self::TRIAL && self.found * 10 < self.lookups {
            self.looking = false;
            self.events = foldhash::HashMap::default();
        }
        None
    }

    fn remember(&mut self, value: &'a [u8], slots: &[Option<&'a str>], escapes: Escapes) {
        if self.looking && self.events.len() < Self::CAPACITY {
            self.events.insert(value, (slots.to_vec(), escapes));
        }
    }
}

/// The columns of the fields of the last event decoded, by position.
#[derive(Default)]
struct FieldOrder(Vec<Option<usize>>);

impl FieldOrder {
    /// The column of field `name`, the `position`-th of its event.
    fn column_of(&mut self, schema: &EventSchema, position: usize, name: &str) -> Option<usize> {
        if let Some(Some(column)) = self.0.get(position)
            && same_bytes(
                schema.json_columns[*column].json_name.as_bytes(),
                name.as_bytes(),
            )
        {
            return Some(*column);
        }
        let column = schema.column_of(name);
        if position >= self.0.len() {
            self.0.resize(position + 1, None);
        }
        self.0[position] = column;
        column
    }
}

/// `a == b` for short byte strings (events' field names, messages, header values), compared in
/// place a word at a time (the slice comparison calls libc's `memcmp`, which cost more than the
/// comparison itself here).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_tail) = a.as_chunks::<8>();
    let (b_words, b_tail) = b.as_chunks::<8>();
    a_words
        .iter()
        .zip(b_words)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_tail.iter().zip(b_tail).all(|(x, y)| x == y)
}

/// Reads messages as JSON objects, one after another, keeping the space of the fields'
/// spans from one message to the next.
#[derive(Debug, Default)]
pub struct ObjectReader {
    spans: Vec<FieldSpan>,
}

impl ObjectReader {
    /// Parses `value` as one JSON object and calls `on_field` for each top-level field with
    /// its value's raw JSON text, in order (a repeated key is reported again; the decoder keeps
    /// the last, as Python's `json` does). Returns [`Escapes::None`] when the message was read
    /// by [`flat_fields`], so no raw string value holds an escape, and why the message is not
    /// an event otherwise.
    ///
    /// A flat object whose keys and strings have no escapes (the game API's events) is read
    /// by [`flat_fields`]; anything else, errors included, by serde_json, so both give the
    /// same fields and the same errors.
    pub fn fields<'a>(
        &mut self,
        value: Option<&'a [u8]>,
        mut on_field: impl FnMut(Cow<'a, str>, &'a str),
    ) -> Result<Escapes, String> {
        let bytes = match value {
            None => return Err("null value (tombstone)".to_owned()),
            Some([]) => return Err("empty message".to_owned()),
            Some(bytes) => bytes,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        if flat_fields(text.as_bytes(), &mut self.spans).is_some() {
            for span in &self.spans {
                on_field(Cow::Borrowed(&text[span.name()]), &text[span.value()]);
            }
            return Ok(Escapes::None);
        }
        serde_fields(text, on_field)?;
        Ok(Escapes::Maybe)
    }
}

/// The fields of `text` as serde_json reads them (every message that is not a flat object).
fn serde_fields<'a>(
    text: &'a str,
    mut on_field: impl FnMut(Cow<'a, str>, &'a str),
) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    ObjectFields(&mut on_field)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| format!("not a JSON object: {e}"))
}

/// Whether the raw string values [`ObjectReader::fields`] gave may hold escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// None does: a string value's text is the text between its quotes.
    None,
    /// Some may: a string value is unescaped when it holds a backslash.
    Maybe,
}

/// Where a field's name (without its quotes) and its value's raw text are in the message.
#[derive(Debug, Clone, Copy)]
struct FieldSpan {
    name: (u32, u32),
    value: (u32, u32),
}

impl FieldSpan {
    fn name(&self) -> std::ops::Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(&self) -> std::ops::Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

/// The fields of `json` when it is a JSON object whose values are strings, numbers, `true`,
/// `false` or `null`, whose keys and strings hold no escape and no control character: Some,
/// with the fields' spans in `spans`. None for anything else (nested values, escapes, every
/// error), which serde_json then reads. What this accepts is valid JSON, read as serde_json
/// reads it (a differential test holds it).
fn flat_fields(json: &[u8], spans: &mut Vec<FieldSpan>) -> Option<()> {
    spans.clear();
    if json.len() > u32::MAX as usize {
        return None;
    }
    let at = |i: usize| json.get(i).copied();
    let mut i = skip_whitespace(json, 0);
    if at(i)? != b'{' {
        return None;
    }
    i = skip_whitespace(json, i + 1);
    if at(i)? == b'}' {
        i += 1;
    } else {
        loop {
            if at(i)? != b'"' {
                return None;
            }
            let name_end = string_end(json, i + 1)?;
            let name = (i as u32 + 1, name_end as u32);
            i = skip_whitespace(json, name_end + 1);
            if at(i)? != b':' {
                return None;
            }
            i = skip_whitespace(json, i + 1);
            let start = i;
            i = match at(i)? {
                b'"' => string_end(json, i + 1)? + 1,
                b't' => literal_end(json, i, b"true")?,
                b'f' => literal_end(json, i, b"false")?,
                b'n' => literal_end(json, i, b"null")?,
                b'-' | b'0'..=b'9' => number_end(json, i)?,
                _ => return None,
            };
            spans.push(FieldSpan {
                name,
                value: (start as u32, i as u32),
            });
            i = skip_whitespace(json, i);
            match at(i)? {
                b',' => i = skip_whitespace(json, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_whitespace(json, i) == json.len()).then_some(())
}

/// The first position from `i` that is not JSON whitespace.
fn skip_whitespace(json: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = json.get(i) {
        i += 1;
    }
    i
}

/// The position of the quote closing a string whose text starts at `i`, when the text has no
/// escape and no control character before it.
fn string_end(json: &[u8], i: usize) -> Option<usize> {
    let rest = json.get(i..)?;
    let stop = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    (rest[stop] == b'"').then_some(i + stop)
}

/// The position after `literal` at `i`.
fn literal_end(json: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    json.get(i..)?
        .starts_with(literal)
        .then_some(i + literal.len())
}

/// True when `text` is one JSON number, as an event writes a number (`2`, `-0`, `2.50`,
/// `1e3`), nothing around it.
pub fn is_json_number(text: &str) -> bool {
    number_end(text.as_bytes(), 0) == Some(text.len())
}

/// The position after the JSON number at `i` (`-`, then `0` or digits not starting with `0`,
/// then an optional fraction and exponent, each with at least one digit).
fn number_end(json: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        while json.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    if json.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match json.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i + 1),
        _ => return None,
    };
    if json.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = json.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = json.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
    }
    Some(i)
}

struct ObjectFields<'f, F>(&'f mut F);

impl<'de, F: FnMut(Cow<'de, str>, &'de str)> DeserializeSeed<'de> for ObjectFields<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(Cow<'de, str>, &'de str)> Visitor<'de> for ObjectFields<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(FieldName(name)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            (self.0)(name, value.get());
        }
        Ok(())
    }
}

/// A field name, borrowed from the message unless it had escapes.
struct FieldName<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(FieldName(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// First pass over a batch: feeds field kinds to `inference` and returns the bad messages.
pub fn scan(messages: &[Message], inference: &mut SchemaInference) -> Vec<BadRecord> {
    let mut bad = Vec::new();
    let mut reader = ObjectReader::default();
    for message in messages {
        let parsed = reader.fields(message.value.as_deref(), |name, value| {
            inference.observe(&name, JsonKind::of_raw(value));
        });
        if let Err(error) = parsed {
            bad.push(BadRecord::new(message, error));
        }
    }
    bad
}

/// Second pass: decodes messages into batches of one fixed [`EventSchema`]. Messages that are
/// not JSON objects are skipped here; [`scan`] reported them.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    schema: Arc<EventSchema>,
    topic: String,
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
}

impl ColumnBuilder {
    fn new(column_type: ColumnType, rows: usize) -> Self {
        match column_type {
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, rows * 16)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
        }
    }

    /// Appends one raw JSON value (or null when absent). Returns false when the value does
    /// not fit the column's type (it is null there): a string for a number, a number for a
    /// boolean, a fraction for an integer. A string column takes anything.
    fn append(&mut self, raw: Option<&str>, escapes: Escapes) -> bool {
        let raw = raw.filter(|r| *r != "null");
        match self {
            ColumnBuilder::Utf8(b) => {
                match raw {
                    None => b.append_null(),
                    Some(r) if r.starts_with('"') => match unquote(r, escapes) {
                        Some(s) => b.append_value(s),
                        None => b.append_null(),
                    },
                    Some(r) => b.append_value(r),
                }
                true
            }
            ColumnBuilder::Int64(b) => {
                let value = raw.and_then(|r| r.parse().ok());
                b.append_option(value);
                raw.is_none() || value.is_some()
            }
            ColumnBuilder::Float64(b) => {
                let value = raw
                    .filter(|r| !r.starts_with('"'))
                    .and_then(|r| r.parse::<f64>().ok());
                b.append_option(value);
                raw.is_none() || value.is_some()
            }
            ColumnBuilder::Boolean(b) => {
                let value = match raw {
                    Some("true") => Some(true),
                    Some("false") => Some(false),
                    _ => None,
                };
                b.append_option(value);
                raw.is_none() || value.is_some()
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

/// A JSON object of rescued fields, each value as it was in the message.
fn rescued_json(fields: &[(Cow<'_, str>, &str)]) -> String {
    let mut object = String::from("{");
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            object.push(',');
        }
        object.push_str(&serde_json::Value::String(name.to_string()).to_string());
        object.push(':');
        object.push_str(value);
    }
    object.push('}');
    object
}

/// The text of a JSON string literal, unescaped only when it has escapes.
fn unquote(raw: &str, escapes: Escapes) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if escapes == Escapes::Maybe && inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Builders of the Kafka metadata columns, in [`super::schema::METADATA_COLUMNS`] order.
struct MetadataColumns {
    keys: BinaryBuilder,
    topics: StringBuilder,
    partitions: Int32Builder,
    offsets: Int64Builder,
    timestamps: TimestampMillisecondBuilder,
    timestamp_types: Int32Builder,
    headers: Option<ListBuilder<StructBuilder>>,
}

impl MetadataColumns {
    fn new(rows: usize, include_headers: bool) -> Self {
        let headers = include_headers.then(|| {
            let header = StructBuilder::new(
                header_fields(),
                vec![
                    Box::new(StringBuilder::new()),
                    Box::new(BinaryBuilder::new()),
                ],
            );
            ListBuilder::with_capacity(header, rows).with_field(Arc::new(Field::new_list_field(
                DataType::Struct(header_fields()),
                false,
            )))
        });
        MetadataColumns {
            keys: BinaryBuilder::with_capacity(rows, 0),
            topics: StringBuilder::with_capacity(rows, rows * 8),
            partitions: Int32Builder::with_capacity(rows),
            offsets: Int64Builder::with_capacity(rows),
            timestamps: TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"),
            timestamp_types: Int32Builder::with_capacity(rows),
            headers,
        }
    }

    fn append(&mut self, topic: &str, message: &Message) {
        self.keys.append_option(message.key.as_deref());
        self.topics.append_value(topic);
        self.partitions.append_value(message.partition);
        self.offsets.append_value(message.offset);
        self.timestamps.append_value(message.timestamp_ms);
        self.timestamp_types.append_value(message.timestamp_type);
        if let Some(list) = &mut self.headers {
            let header = list.values();
            for (key, value) in &message.headers {
                header
                    .field_builder::<StringBuilder>(0)
                    .expect("headers field 0 is a string")
                    .append_value(key);
                header
                    .field_builder::<BinaryBuilder>(1)
                    .expect("headers field 1 is binary")
                    .append_option(value.as_deref());
                header.append(true);
            }
            list.append(true);
        }
    }

    fn finish(mut self, arrays: &mut Vec<ArrayRef>) {
        arrays.push(Arc::new(self.keys.finish()));
        arrays.push(Arc::new(self.topics.finish()));
        arrays.push(Arc::new(self.partitions.finish()));
        arrays.push(Arc::new(self.offsets.finish()));
        arrays.push(Arc::new(self.timestamps.finish()));
        arrays.push(Arc::new(self.timestamp_types.finish()));
        if let Some(mut headers) = self.headers {
            arrays.push(Arc::new(headers.finish()));
        }
    }
}

/// What [`EventDecoder::decode_checked`] saw: per column of the decoder's schema, the kinds of
/// its values (as [`SchemaInference`] keeps them), whether a field outside the schema appeared,
/// and the bad messages.
#[derive(Debug, Clone)]
pub struct Conformance {
    masks: Vec<u8>,
    new_field: bool,
    /// Messages that are not JSON objects, as [`scan`] reports them.
    pub bad: Vec<BadRecord>,
}

impl Conformance {
    /// Nothing seen yet, for a decoder of `schema`.
    pub fn new(schema: &EventSchema) -> Self {
        Conformance {
            masks: vec![0; schema.json_columns.len()],
            new_field: false,
            bad: Vec::new(),
        }
    }

    /// Adds what `other` saw (after these messages, with the same schema) to this.
    pub fn absorb(&mut self, other: Conformance) {
        for (mask, other) in self.masks.iter_mut().zip(other.masks) {
            *mask |= other;
        }
        self.new_field |= other.new_field;
        self.bad.extend(other.bad);
    }

    /// Adds what was seen to `inference`, as if [`scan`] had read the same messages. A field
    /// outside the schema is not known by name here: the caller scans that batch again.
    pub fn merge_into(&self, schema: &EventSchema, inference: &mut SchemaInference) {
        for (column, &mask) in schema.json_columns.iter().zip(&self.masks) {
            inference.observe_mask(&column.json_name, mask);
        }
    }

    /// True when inference over the messages behind `inference` and everything seen here
    /// still gives `schema`: no new field and no type that would change.
    pub fn holds(
        &self,
        schema: &EventSchema,
        inference: &SchemaInference,
        include_headers: bool,
    ) -> bool {
        if self.new_field {
            return false;
        }
        let mut merged = inference.clone();
        self.merge_into(schema, &mut merged);
        merged.finish(include_headers).json_columns == schema.json_columns
    }
}

impl EventDecoder {
    /// A decoder producing batches of `schema` for messages of `topic`.
    pub fn new(schema: Arc<EventSchema>, topic: &str) -> Self {
        EventDecoder {
            schema,
            topic: topic.to_owned(),
        }
    }

    /// The schema of the batches this decoder produces.
    pub fn schema(&self) -> &EventSchema {
        &self.schema
    }

    /// Decodes `messages` into one batch, skipping messages that are not JSON objects.
    pub fn decode(&self, messages: &[Message]) -> Result<RecordBatch, DecodeError> {
        self.decode_with(messages, None)
    }

    /// Decodes `messages` as [`EventDecoder::decode`] does, and also does [`scan`]'s work: the
    /// bad messages are added to `seen.bad`, and the kinds of the values to `seen`, so that the
    /// caller can tell whether inference over these messages would still give this schema.
    pub fn decode_checked(
        &self,
        messages: &[Message],
        seen: &mut Conformance,
    ) -> Result<RecordBatch, DecodeError> {
        self.decode_with(messages, Some(seen))
    }

    fn decode_with(
        &self,
        messages: &[Message],
        mut seen: Option<&mut Conformance>,
    ) -> Result<RecordBatch, DecodeError> {
        let rows = messages.len();
        let mut columns: Vec<ColumnBuilder> = self
            .schema
            .json_columns
            .iter()
            .map(|c| ColumnBuilder::new(c.column_type, rows))
            .collect();
        let mut metadata = MetadataColumns::new(rows, self.schema.include_headers());
        let rescues = self.schema.rescues();
        let mut rescued_column = rescues.then(|| StringBuilder::with_capacity(rows, 0));
        let mut slots: Vec<Option<&str>> = vec![None; columns.len()];
        // Events of one topic mostly list their fields in the same order: the column of the
        // k-th field of the previous event is tried first, by name, before the hash lookup.
        let mut order = FieldOrder::default();
        let mut reader = ObjectReader::default();
        // A message of the same bytes as an event already read has the same fields, kinds and
        // escapes: the previous event's are still in the slots, and the batch's first
        // distinct events are remembered (while they are found often enough to pay for the
        // lookups). A decode that keeps rescued data reads every message.
        let mut last: Option<(&[u8], Escapes)> = None;
        let mut recent = Recent::new(!rescues);
        for message in messages {
            let value = message.value.as_deref();
            let repeated = match (last, value) {
                (_, _) if rescues => None,
                (_, None) => None,
                (Some((last_value, escapes)), Some(value)) if same_bytes(last_value, value) => {
                    Some(escapes)
                }
                (_, Some(value)) => recent.find(value, &mut slots),
            };
            if let Some(escapes) = repeated {
                last = value.map(|v| (v, escapes));
                for (builder, slot) in columns.iter_mut().zip(&slots) {
                    builder.append(*slot, escapes);
                }
                metadata.append(&self.topic, message);
                continue;
            }
            last = None;
            slots.iter_mut().for_each(|s| *s = None);
            let mut rescued: Vec<(Cow<'_, str>, &str)> = Vec::new();
            let mut seen = seen.as_deref_mut();
            let mut position = 0;
            let parsed = reader.fields(value, |name, value| {
                let column = order.column_of(&self.schema, position, &name);
                position += 1;
                match (column, seen.as_deref_mut()) {
                    (Some(i), Some(seen)) => {
                        slots[i] = Some(value);
                        seen.masks[i] |= JsonKind::of_raw(value).bit();
                    }
                    (Some(i), None) => slots[i] = Some(value),
                    (None, seen) => {
                        if rescues {
                            rescued.push((name, value));
                        } else if let Some(seen) = seen {
                            seen.new_field = true;
                        }
                    }
                }
            });
            let escapes = match parsed {
                Ok(escapes) => {
                    last = value.map(|v| (v, escapes));
                    if let Some(value) = value {
                        recent.remember(value, &slots, escapes);
                    }
                    escapes
                }
                Err(error) => {
                    if let Some(seen) = seen {
                        seen.bad.push(BadRecord::new(message, error));
                    }
                    continue;
                }
            };
            for ((builder, slot), column) in columns
                .iter_mut()
                .zip(&slots)
                .zip(&self.schema.json_columns)
            {
                if !builder.append(*slot, escapes)
                    && rescues
                    && let Some(value) = slot
                {
                    rescued.push((Cow::Borrowed(column.json_name.as_str()), value));
                }
            }
            if let Some(column) = rescued_column.as_mut() {
                if rescued.is_empty() {
                    column.append_null();
                } else {
                    column.append_value(rescued_json(&rescued));
                }
            }
            metadata.append(&self.topic, message);
        }
        let mut arrays: Vec<ArrayRef> = columns.iter_mut().map(ColumnBuilder::finish).collect();
        if let Some(mut column) = rescued_column {
            arrays.push(Arc::new(column.finish()));
        }
        metadata.finish(&mut arrays);
        RecordBatch::try_new(self.schema.arrow(), arrays).map_err(DecodeError::Arrow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use bytes::Bytes;

    fn message(offset: i64, value: &[u8]) -> Message {
        Message {
            partition: 0,
            offset,
            timestamp_ms: 1_530_000_000_000 + offset,
            timestamp_type: 0,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
        }
    }

    fn fixture(name: &str) -> Vec<Message> {
        let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read(&path).unwrap();
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        text.split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, line)| message(i as i64, line))
            .collect()
    }

    fn decode_all(messages: &[Message]) -> (RecordBatch, Vec<BadRecord>) {
        let mut inference = SchemaInference::default();
        let bad = scan(messages, &mut inference);
        let decoder = EventDecoder::new(Arc::new(inference.finish(false)), "events");
        (decoder.decode(messages).unwrap(), bad)
    }

    fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
        batch
            .column_by_name(column)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    /// Fields as serde_json alone reads them (the path every message took before
    /// [`flat_fields`]), or its error.
    fn serde_only_fields(json: &[u8]) -> Result<Vec<(String, String)>, String> {
        let text = std::str::from_utf8(json).map_err(|e| e.to_string())?;
        let mut fields = Vec::new();
        serde_fields(text, |name, value| {
            fields.push((name.into_owned(), value.to_owned()))
        })?;
        Ok(fields)
    }

    fn parsed_fields(json: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut fields = Vec::new();
        ObjectReader::default().fields(Some(json), |name, value| {
            fields.push((name.into_owned(), value.to_owned()))
        })?;
        Ok(fields)
    }

    #[test]
    fn a_string_ends_at_its_first_quote_backslash_or_control_byte_wherever_it_falls() {
        // Every stopping byte at every position of strings spanning up to three words, after
        // plain ASCII and after multi-byte UTF-8 text.
        for fill in [b'a', 0xc3, 0x7f, 0xff] {
            for len in 0..24 {
                for stop in [b'"', b'\\', 0x00, 0x1f] {
                    let mut text = vec![fill; len];
                    text.push(stop);
                    text.extend_from_slice(b"\"tail");
                    let expected = (stop == b'"').then_some(1 + len);
                    let mut json = vec![b'"'];
                    json.extend_from_slice(&text);
                    assert_eq!(
                        string_end(&json, 1),
                        expected,
                        "fill {fill:#x} len {len} stop {stop:#x}"
                    );
                }
                let unterminated = vec![fill; len];
                assert_eq!(string_end(&unterminated, 0), None);
            }
        }
    }

    #[test]
    fn field_names_compare_as_bytes_do() {
        let names = [
            "",
            "a",
            "Host",
            "Accept",
            "event_type",
            "User-Agent",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    same_bytes(a.as_bytes(), b.as_bytes()),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn flat_objects_read_as_serde_json_reads_them() {
        let seeds: &[&str] = &[
            r#"{"Host": "user1.comcast.com", "event_type": "default", "Accept": "*/*"}"#,
            r#" {"a":1,"b":-0.5e+3,"c":true,"d":false,"e":null,"f":"x","a":"again"} "#,
            "{\t\"n\" :\r\n 10 , \"z\":0}",
            r#"{}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":"tab\there"}"#,
            r#"{"\u0041":"b"}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1,2]}"#,
            r#"{"a":"b",}"#,
            r#"{"a" "b"}"#,
            r#"{"a":"b"}x"#,
            r#"{"a":tru}"#,
            r#"{"a":truex}"#,
            r#"["a"]"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"é":"ü"}"#,
        ];
        let alphabet = b" \t\"\\{}[]:,-+.0123456789eEtrufalsnx\x01";
        let mut inputs: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
        let too_many: Vec<String> = (0..=40).map(|i| format!("\"f{i}\":{i}")).collect();
        inputs.push(format!("{{{}}}", too_many.join(",")).into_bytes());
        for seed in seeds.iter().take(3) {
            let seed = seed.as_bytes();
            for i in 0..seed.len() {
                let mut cut = seed.to_vec();
                cut.remove(i);
                inputs.push(cut);
                for &b in alphabet {
                    let mut changed = seed.to_vec();
                    changed[i] = b;
                    inputs.push(changed);
                    let mut grown = seed.to_vec();
                    grown.insert(i, b);
                    inputs.push(grown);
                }
            }
        }
        let mut fast = 0;
        for input in &inputs {
            let mut spans = Vec::new();
            if flat_fields(input, &mut spans).is_some() {
                fast += 1;
                assert!(
                    serde_only_fields(input).is_ok(),
                    "{:?}",
                    String::from_utf8_lossy(input)
                );
            }
            assert_eq!(
                parsed_fields(input),
                serde_only_fields(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert!(
            fast > 1000,
            "{fast} of {} read by flat_fields",
            inputs.len()
        );
    }

    #[test]
    fn seed_events_decode_into_their_header_columns() {
        let (batch, bad) = decode_all(&fixture("seed_sample.jsonl"));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(
            strings(&batch, "event_type"),
            [
                Some("default"),
                Some("purchase_sword"),
                Some("purchase_shield"),
                Some("join_guild")
            ]
            .map(|s| s.map(str::to_owned))
        );
        assert_eq!(
            strings(&batch, "Host")[0].as_deref(),
            Some("user1.comcast.com")
        );
        assert_eq!(
            strings(&batch, "User-Agent")[1].as_deref(),
            Some("ApacheBench/2.3")
        );
        // A header only one event has is null in the others.
        assert_eq!(
            strings(&batch, "Cache-Control"),
            [None, None, Some("no-cache".to_owned()), None]
        );
    }

    #[test]
    fn fields_in_a_changing_order_land_in_their_columns() {
        let messages = [
            message(0, br#"{"event_type":"a","Host":"h0","n":1}"#),
            message(1, br#"{"event_type":"b","Host":"h1","n":2}"#),
            message(2, br#"{"n":3,"event_type":"c","Host":"h2"}"#),
            message(3, br#"{"Host":"h3","event_type":"d"}"#),
            message(
                4,
                br#"{"event_type":"e","n":5,"Host":"h4","event_type":"f"}"#,
            ),
        ];
        let (batch, bad) = decode_all(&messages);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            strings(&batch, "event_type"),
            ["a", "b", "c", "d", "f"].map(|s| Some(s.to_owned()))
        );
        assert_eq!(
            strings(&batch, "Host"),
            ["h0", "h1", "h2", "h3", "h4"].map(|s| Some(s.to_owned()))
        );
        let n = batch
            .column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), None, Some(5)]
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_offsets_and_reasons() {
        let (batch, bad) = decode_all(&fixture("malformed.jsonl"));
        let offsets: Vec<i64> = bad.iter().map(|b| b.offset).collect();
        let reasons: Vec<&str> = bad.iter().map(|b| b.error.as_str()).collect();
        // Lines 0, 3 and 8 are good events; everything else is quarantined.
        assert_eq!(offsets, [1, 2, 4, 5, 6, 7, 9], "{reasons:#?}");
        assert!(reasons[0].contains("not a JSON object"), "{}", reasons[0]);
        assert!(
            reasons.iter().any(|r| r.contains("invalid UTF-8")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("empty message")),
            "{reasons:?}"
        );
        assert_eq!(batch.num_rows(), 3);
        let batch_offsets = batch
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(batch_offsets.values(), &[0, 3, 8]);
    }

    #[test]
    fn conflicting_types_keep_json_text_and_escapes_are_decoded() {
        let messages = [
            message(
                0,
                br#"{"event_type":"purchase_sword","level":3,"price":10,"meta":{"a":1}}"#,
            ),
            message(
                1,
                br#"{"event_type":"purchase_sword","level":"three","price":9.5,"meta":null}"#,
            ),
            message(
                2,
                br#"{"event_type":"say\"hi\"\u00e9","level":true,"event_type":"last_wins"}"#,
            ),
        ];
        let (batch, bad) = decode_all(&messages);
        assert!(bad.is_empty());
        assert_eq!(
            strings(&batch, "level"),
            [Some("3"), Some("three"), Some("true")].map(|s| s.map(str::to_owned))
        );
        assert_eq!(
            strings(&batch, "meta"),
            [Some("{\"a\":1}".to_owned()), None, None]
        );
        assert_eq!(
            strings(&batch, "event_type")[2].as_deref(),
            Some("last_wins")
        );
        let price = batch.column_by_name("price").unwrap();
        assert_eq!(price.data_type(), &arrow::datatypes::DataType::Float64);
        assert_eq!(
            price
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(1),
            9.5
        );
        assert!(batch.column_by_name("Accept").unwrap().is_null(0));
    }

    #[test]
    fn metadata_columns_follow_sparks_kafka_source_and_headers_are_opt_in() {
        let mut with_headers = message(7, br#"{"event_type":"default"}"#);
        with_headers.key = Some(Bytes::from_static(b"player-1"));
        with_headers.headers = vec![
            ("trace".into(), Some(b"t1".to_vec())),
            ("none".into(), None),
        ];
        let messages = [message(6, br#"{"event_type":"default"}"#), with_headers];
        let mut inference = SchemaInference::default();
        scan(&messages, &mut inference);
        let decoder = EventDecoder::new(Arc::new(inference.finish(true)), "events");
        let batch = decoder.decode(&messages).unwrap();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names[4..], super::super::schema::METADATA_COLUMNS);
        assert!(batch.column_by_name("key").unwrap().is_null(0));
        assert_eq!(
            batch
                .column_by_name("key")
                .unwrap()
                .as_binary::<i32>()
                .value(1),
            b"player-1"
        );
        assert_eq!(strings(&batch, "topic")[1].as_deref(), Some("events"));
        let headers = batch.column_by_name("headers").unwrap().as_list::<i32>();
        assert_eq!(headers.value(0).len(), 0);
        let second = headers.value(1);
        let second = second.as_struct();
        assert_eq!(second.column(0).as_string::<i32>().value(1), "none");
        assert!(second.column(1).is_null(1));
        assert_eq!(second.column(1).as_binary::<i32>().value(0), b"t1");
    }

    #[test]
    fn escaped_field_names_are_matched_after_unescaping() {
        let messages = [message(
            0,
            br#"{"Ho\u0073t":"a.example","event_type":"default"}"#,
        )];
        let (batch, _) = decode_all(&messages);
        assert_eq!(strings(&batch, "Host")[0].as_deref(), Some("a.example"));
    }

    #[test]
    fn a_repeated_message_decodes_as_it_does_alone() {
        let escaped = br#"{"event_type":"default","Host":"a\u002eexample","n":1}"#;
        let flat = br#"{"event_type":"purchase_sword","Host":"b.example","n":2.5}"#;
        let values: [&[u8]; 9] = [
            escaped,
            escaped,
            flat,
            flat,
            b"not json",
            b"not json",
            flat,
            escaped,
            escaped,
        ];
        let messages: Vec<Message> = values
            .iter()
            .enumerate()
            .map(|(i, v)| message(i as i64, v))
            .collect();
        let mut inference = SchemaInference::default();
        assert_eq!(scan(&messages, &mut inference).len(), 2);
        let schema = Arc::new(inference.finish(false));
        let decoder = EventDecoder::new(Arc::clone(&schema), "events");
        let mut seen = Conformance::new(&schema);
        let together = decoder.decode_checked(&messages, &mut seen).unwrap();
        assert_eq!(seen.bad.len(), 2);
        assert!(seen.holds(&schema, &inference, false));
        assert_eq!(together, decoded_one_by_one(&decoder, &messages));
        assert_eq!(
            strings(&together, "Host"),
            [
                "a.example",
                "a.example",
                "b.example",
                "b.example",
                "b.example",
                "a.example",
                "a.example"
            ]
            .map(|h| Some(h.to_owned()))
        );

        // Past the distinct events a batch remembers, and past the lookups after which a
        // batch that finds too few stops looking: every message still decodes as it does alone.
        let messages: Vec<Message> = (0..700)
            .chain((0..700).rev())
            .chain([3, 3, 699, 1])
            .enumerate()
            .map(|(i, n)| {
                let value = format!(r#"{{"event_type":"e{n}","n":{n}}}"#);
                message(i as i64, value.as_bytes())
            })
            .collect();
        let mut inference = SchemaInference::default();
        assert!(scan(&messages, &mut inference).is_empty());
        let decoder = EventDecoder::new(Arc::new(inference.finish(false)), "events");
        let together = decoder.decode(&messages).unwrap();
        assert_eq!(together, decoded_one_by_one(&decoder, &messages));
    }

    /// `messages` decoded each in a batch of its own, in one batch.
    fn decoded_one_by_one(decoder: &EventDecoder, messages: &[Message]) -> RecordBatch {
        let alone: Vec<RecordBatch> = messages
            .iter()
            .map(|m| decoder.decode(std::slice::from_ref(m)).unwrap())
            .collect();
        arrow::compute::concat_batches(&decoder.schema().arrow(), &alone).unwrap()
    }

    #[test]
    fn conformance_tells_whether_inference_would_still_give_the_schema() {
        let first = [message(0, br#"{"event_type":"a","n":1,"gone":null}"#)];
        let mut inference = SchemaInference::default();
        assert!(scan(&first, &mut inference).is_empty());
        let schema = Arc::new(inference.finish(false));
        let decoder = EventDecoder::new(Arc::clone(&schema), "events");
        let holds = |later: &[u8]| {
            let mut seen = Conformance::new(&schema);
            decoder
                .decode_checked(&[message(1, later)], &mut seen)
                .unwrap();
            seen.holds(&schema, &inference, false)
        };
        // Same fields, nulls, absent fields, a core column, bad messages: the schema holds.
        assert!(holds(br#"{"event_type":"b","n":7}"#));
        assert!(holds(br#"{"n":null,"Host":"h"}"#));
        assert!(holds(b"not json"));
        // A new field, an int widened to a float or a string, a type for a null-only field:
        // inference over the whole read would give another schema.
        assert!(!holds(br#"{"event_type":"b","level":3}"#));
        assert!(!holds(br#"{"n":1.5}"#));
        assert!(!holds(br#"{"n":"x"}"#));
        assert!(!holds(br#"{"gone":true}"#));
        // Bad messages are reported as scan reports them.
        let mut seen = Conformance::new(&schema);
        decoder
            .decode_checked(&[message(2, b"[1]"), message(3, b"")], &mut seen)
            .unwrap();
        assert_eq!(seen.bad.len(), 2);
    }
}
