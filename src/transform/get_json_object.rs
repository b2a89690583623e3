//! Spark's `get_json_object(json, path)`, which DataFusion lacks: the value at a JSONPath in
//! JSON text, as text.
//!
//! bnetl keeps JSON text where a value has no column of its own: `_rescued_data` (the values
//! that did not fit their column, `{"amount":"lots"}`), a column whose values mixed nested and
//! flat ones, and the bad records' `value` (as text, `CAST(value AS STRING)`). Analysts coming
//! from Spark read them with `get_json_object(_rescued_data, '$.amount')`.
//!
//! As Spark's: the path starts at `$` and goes down by `.name`, `['name']` and `[index]`; the
//! result is a string's text, or the JSON text of anything else (`3`, `true`, `{"n":1}`), and
//! null for JSON `null`, a path that leads nowhere, a path bnetl cannot read (wildcards, `..`)
//! and text that is not JSON.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use serde_json::value::RawValue;

/// One step of a path: a field or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// The steps of a JSONPath (`$.a['b c'][0]`); `None` when it is not one bnetl reads.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name == "*" {
                return None;
            }
            steps.push(Step::Field(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inside = &after[..end];
            let quoted = ['\'', '"'].iter().find_map(|q| {
                inside
                    .strip_prefix(*q)
                    .and_then(|s| s.strip_suffix(*q))
                    .map(str::to_owned)
            });
            steps.push(match quoted {
                Some(name) => Step::Field(name),
                None => Step::Index(inside.trim().parse().ok()?),
            });
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The value at `steps` in the JSON text `json`, as Spark's `get_json_object` returns it:
/// objects and arrays keep their fields' order, without blanks.
fn extract(json: &str, steps: &[Step]) -> Option<String> {
    let mut value: &RawValue = serde_json::from_str(json).ok()?;
    for step in steps {
        value = match step {
            Step::Field(name) => {
                let fields: std::collections::HashMap<String, &RawValue> =
                    serde_json::from_str(value.get()).ok()?;
                fields.get(name).copied()?
            }
            Step::Index(i) => {
                let items: Vec<&RawValue> = serde_json::from_str(value.get()).ok()?;
                items.get(*i).copied()?
            }
        };
    }
    let raw = value.get();
    match raw.as_bytes().first()? {
        b'n' => None,
        b'"' => serde_json::from_str(raw).ok(),
        b'{' | b'[' => Some(compact(raw)),
        _ => Some(raw.to_owned()),
    }
}

/// The JSON text `raw` without the blanks between its tokens.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// The function, registered as `get_json_object`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GetJsonObject {
    signature: Signature,
}

impl GetJsonObject {
    /// The function, to register.
    pub fn udf() -> ScalarUDF {
        let text = [DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8];
        let pairs = text
            .iter()
            .flat_map(|json| {
                text.iter()
                    .map(|path| TypeSignature::Exact(vec![json.clone(), path.clone()]))
            })
            .collect();
        ScalarUDF::new_from_impl(GetJsonObject {
            signature: Signature::one_of(pairs, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for GetJsonObject {
    fn name(&self) -> &str {
        "get_json_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [json, path] = take_function_args(self.name(), args.args)?;
        let scalar = matches!(
            (&json, &path),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        // Two scalars: one value, not the same one computed for every row.
        let rows = if scalar { 1 } else { rows };
        let text = |value: ColumnarValue| -> Result<ArrayRef> {
            Ok(cast(&value.into_array(rows)?, &DataType::Utf8)?)
        };
        let (json, path) = (text(json)?, text(path)?);
        let (json, path) = (
            arrow::array::AsArray::as_string::<i32>(&json),
            arrow::array::AsArray::as_string::<i32>(&path),
        );
        let mut out = StringBuilder::with_capacity(rows, 0);
        // A literal path (the usual case) is parsed once.
        let mut parsed: Option<(&str, Option<Vec<Step>>)> = None;
        for (json, path) in json.iter().zip(path.iter()) {
            let (Some(json), Some(path)) = (json, path) else {
                out.append_null();
                continue;
            };
            if parsed.as_ref().is_none_or(|(p, _)| *p != path) {
                parsed = Some((path, parse_path(path)));
            }
            let steps = parsed.as_ref().and_then(|(_, steps)| steps.as_deref());
            out.append_option(steps.and_then(|steps| extract(json, steps)));
        }
        let result = Arc::new(out.finish()) as ArrayRef;
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_values_as_sparks_get_json_object_returns_them() {
        let json = r#"{"amount":"lots","level":3,"vip":true,"meta":{"n":1,"tags":["a","b"]},"odd key":null,"x":1.5}"#;
        for (path, expected) in [
            ("$.amount", Some("lots")),
            ("$.level", Some("3")),
            ("$.vip", Some("true")),
            ("$.x", Some("1.5")),
            ("$.meta", Some(r#"{"n":1,"tags":["a","b"]}"#)),
            ("$.meta.n", Some("1")),
            ("$.meta.tags[1]", Some("b")),
            ("$['meta']['tags'][0]", Some("a")),
            ("$[\"amount\"]", Some("lots")),
            ("$['odd key']", None),
            ("$.missing", None),
            ("$.meta.tags[5]", None),
            ("$.amount.deeper", None),
            ("$.meta.*", None),
            ("amount", None),
        ] {
            let got = parse_path(path).and_then(|steps| extract(json, &steps));
            assert_eq!(got.as_deref(), expected, "{path}");
        }
        assert_eq!(
            extract("not json", &parse_path("$.a").unwrap()),
            None,
            "text that is not JSON"
        );
        assert_eq!(
            extract("[1,2]", &parse_path("$[1]").unwrap()).as_deref(),
            Some("2")
        );
        // Fields keep their order, blanks go, strings keep theirs.
        assert_eq!(
            extract(
                r#"{"m": {"z": 1, "a": [ "x y", "q\" " ]}}"#,
                &parse_path("$.m").unwrap()
            )
            .as_deref(),
            Some(r#"{"z":1,"a":["x y","q\" "]}"#)
        );
    }
}
