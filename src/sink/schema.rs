//! A table's schema across runs: what a run's output becomes when the table already has one.
//!
//! A table's schema is part of its committed state: each commit records its columns, their
//! Arrow types and the version that added each ([`TableColumn`]). A run that appends (or
//! `--incremental`) reconciles its output with that schema, with Databricks Auto Loader's
//! policies ([`SchemaEvolution`]), so that every file of the table agrees on every column's
//! type and Spark, DuckDB and bnetl keep reading it:
//!
//! * **A column the table has**: same type, taken as it is. Another type: each value is cast to
//!   the table's type and kept there if the cast is lossless (cast back, it gives the same
//!   value: `7` fits a string column as `"7"`, `"5"` fits a `BIGINT` column as `5`); a value that
//!   does not fit (`"lots"` for a `BIGINT`, `5.5` for a `BIGINT`) is null in its column and kept,
//!   with its field name, in the row's [`RESCUED_DATA`] column: a JSON object such as
//!   `{"amount":"lots"}`.
//! * **A column the table lacks**: added as a new nullable column at the end
//!   (`add-new-columns`, the default), or its values rescued (`rescue`), or the run refused
//!   before writing anything (`fail-on-new-columns`), or dropped (`none`: the table's schema is
//!   fixed and new fields are ignored; type misfits are still rescued).
//! * **A column the run lacks**: null in the run's rows.
//! * [`RESCUED_DATA`] itself is added (as a string column) the first time a value is rescued.
//!
//! An overwrite replaces the table, so its schema becomes the run's, as Spark's overwrite does
//! (columns keep the version that added them when their type is unchanged).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, new_null_array};
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{CastOptions, can_cast_types, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

use super::SinkError;

pub use crate::decode::schema::RESCUED_DATA;

/// What an append does with columns the table does not have yet (Auto Loader's
/// `cloudFiles.schemaEvolutionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaEvolution {
    /// New columns are added to the table.
    #[default]
    AddNewColumns,
    /// The table's schema stays; the values of new columns go to `_rescued_data`.
    Rescue,
    /// A run with a new column fails before writing anything.
    FailOnNewColumns,
    /// The table's schema stays; new columns are ignored.
    None,
}

impl std::fmt::Display for SchemaEvolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SchemaEvolution::AddNewColumns => "add-new-columns",
            SchemaEvolution::Rescue => "rescue",
            SchemaEvolution::FailOnNewColumns => "fail-on-new-columns",
            SchemaEvolution::None => "none",
        })
    }
}

/// One column of a table's committed schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    /// Column name.
    pub name: String,
    /// Arrow type, as Arrow prints it (`Int64`, `Utf8`, `Timestamp(ms, "UTC")`).
    #[serde(rename = "type")]
    pub data_type: String,
    /// The table version that added the column.
    pub since: u64,
}

impl TableColumn {
    /// Its Arrow type; Err names the column and the type the log records.
    pub fn arrow_type(&self) -> Result<DataType, String> {
        DataType::from_str(&self.data_type).map_err(|e| {
            format!(
                "column {} has an unknown type {}: {e}",
                self.name, self.data_type
            )
        })
    }

    fn field(&self) -> Result<Field, String> {
        self.arrow_type().map(|t| Field::new(&self.name, t, true))
    }
}

/// How a run's schema changed the table's, for the run's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// Columns this run added, with their types.
    pub added: Vec<(String, DataType)>,
    /// Per column, the values rescued into [`RESCUED_DATA`].
    pub rescued: BTreeMap<String, u64>,
    /// Columns of the run that were ignored (`--schema-evolution none`).
    pub ignored: Vec<String>,
}

impl Drift {
    /// One line per change, for logs and summaries; empty when nothing changed.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .added
            .iter()
            .map(|(name, t)| format!("added column {name} ({t})"))
            .collect();
        lines.extend(
            self.rescued
                .iter()
                .map(|(name, n)| format!("rescued {n} value(s) of {name} into {RESCUED_DATA}")),
        );
        lines.extend(
            self.ignored
                .iter()
                .map(|name| format!("ignored new column {name} (--schema-evolution none)")),
        );
        lines
    }
}

/// Where one column of the written schema comes from.
#[derive(Debug, Clone)]
enum Source {
    /// The run's column, as it is.
    Take(usize),
    /// The run's column, cast to the table's type; values that do not fit are rescued.
    Cast(usize),
    /// Not in the run: nulls.
    Null,
    /// The rescued data: the run's own (if it has the column) plus what this batch rescues.
    Rescued(Option<usize>),
}

/// A run's output reconciled with its table's schema: the schema its files are written with,
/// and the per-batch mapping to it.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// The schema the run's files are written with: the table's after this run.
    pub schema: SchemaRef,
    /// The table's columns after this run, for its commit.
    pub columns: Vec<TableColumn>,
    sources: Vec<Source>,
    /// Run columns whose every value is rescued (new columns under `rescue`).
    rescue_all: Vec<usize>,
    run_schema: SchemaRef,
    /// What changed so far.
    pub drift: Drift,
}

impl Reconciled {
    /// Reconciles a run writing `run` as version `version` of `table` (whose committed
    /// columns are `table_columns`; empty for a new table or one written before schemas were
    /// committed). `replace`: the run replaces the table (overwrite), so its schema wins.
    pub fn new(
        table: &str,
        table_columns: &[TableColumn],
        run: &SchemaRef,
        version: u64,
        replace: bool,
        policy: SchemaEvolution,
    ) -> Result<Self, SinkError> {
        let corrupt = |reason: String| SinkError::Corrupt {
            path: format!("the schema in the commit log of table {table}"),
            reason,
        };
        if replace || table_columns.is_empty() {
            let columns = run
                .fields()
                .iter()
                .map(|f| {
                    let data_type = f.data_type().to_string();
                    let since = table_columns
                        .iter()
                        .find(|c| c.name == *f.name() && c.data_type == data_type)
                        .map_or(version, |c| c.since);
                    TableColumn {
                        name: f.name().clone(),
                        data_type,
                        since,
                    }
                })
                .collect();
            let schema = Arc::new(Schema::new(
                run.fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            ));
            return Ok(Reconciled {
                schema,
                columns,
                sources: (0..run.fields().len()).map(Source::Take).collect(),
                rescue_all: Vec::new(),
                run_schema: Arc::clone(run),
                drift: Drift::default(),
            });
        }
        let mut columns = table_columns.to_vec();
        let mut fields = Vec::with_capacity(columns.len());
        let mut sources = Vec::with_capacity(columns.len());
        for column in table_columns {
            let field = column.field().map_err(corrupt)?;
            let source = match run.index_of(&column.name) {
                Ok(i) if column.name == RESCUED_DATA => Source::Rescued(Some(i)),
                Err(_) if column.name == RESCUED_DATA => Source::Rescued(None),
                Ok(i) if run.field(i).data_type() == field.data_type() => Source::Take(i),
                Ok(i) => Source::Cast(i),
                Err(_) => Source::Null,
            };
            fields.push(field);
            sources.push(source);
        }
        let mut drift = Drift::default();
        let mut rescue_all = Vec::new();
        let new: Vec<(usize, &Arc<Field>)> = run
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !table_columns.iter().any(|c| c.name == *f.name()))
            .collect();
        if policy == SchemaEvolution::FailOnNewColumns && !new.is_empty() {
            return Err(SinkError::NewColumns {
                table: table.to_owned(),
                columns: new
                    .iter()
                    .map(|(_, f)| format!("{} ({})", f.name(), f.data_type()))
                    .collect(),
            });
        }
        for (i, field) in new {
            match policy {
                SchemaEvolution::AddNewColumns | SchemaEvolution::FailOnNewColumns => {
                    columns.push(TableColumn {
                        name: field.name().clone(),
                        data_type: field.data_type().to_string(),
                        since: version,
                    });
                    fields.push(field.as_ref().clone().with_nullable(true));
                    sources.push(if field.name() == RESCUED_DATA {
                        Source::Rescued(Some(i))
                    } else {
                        Source::Take(i)
                    });
                    drift
                        .added
                        .push((field.name().clone(), field.data_type().clone()));
                }
                SchemaEvolution::Rescue => rescue_all.push(i),
                SchemaEvolution::None => drift.ignored.push(field.name().clone()),
            }
        }
        Ok(Reconciled {
            schema: Arc::new(Schema::new(fields)),
            columns,
            sources,
            rescue_all,
            run_schema: Arc::clone(run),
            drift,
        })
    }

    /// True when the written schema may need a rescued-data column it does not have yet: some
    /// values may not fit (a text column takes every number and boolean losslessly).
    fn may_rescue(&self) -> bool {
        let may_misfit = |i: usize, to: &DataType| {
            let from = self.run_schema.field(i).data_type();
            !(to == &DataType::Utf8 && (from.is_primitive() || from == &DataType::Boolean))
        };
        !self.rescue_all.is_empty()
            || self
                .sources
                .iter()
                .zip(self.schema.fields())
                .any(|(s, f)| matches!(s, Source::Cast(i) if may_misfit(*i, f.data_type())))
    }

    /// Adds the rescued-data column to the written schema (it becomes a table column).
    fn add_rescued_column(&mut self, version: u64) {
        self.columns.push(TableColumn {
            name: RESCUED_DATA.to_owned(),
            data_type: DataType::Utf8.to_string(),
            since: version,
        });
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(RESCUED_DATA, DataType::Utf8, true));
        self.schema = Arc::new(Schema::new(fields));
        self.sources.push(Source::Rescued(None));
        self.drift
            .added
            .push((RESCUED_DATA.to_owned(), DataType::Utf8));
    }

    /// Prepares the written schema before the first batch: a run that may rescue values gets
    /// the rescued-data column up front, so all its files share one schema.
    pub fn with_rescue_column(mut self, version: u64) -> Self {
        if self.may_rescue() && !self.sources.iter().any(|s| matches!(s, Source::Rescued(_))) {
            self.add_rescued_column(version);
        }
        self
    }

    /// One batch of the run's output in the written schema; counts what it rescued.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        let in_place = self
            .sources
            .iter()
            .enumerate()
            .all(|(at, s)| matches!(s, Source::Take(i) if *i == at));
        if in_place && self.rescue_all.is_empty() && self.sources.len() == batch.num_columns() {
            return RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec());
        }
        let rows = batch.num_rows();
        let mut rescued: Vec<Option<serde_json::Map<String, serde_json::Value>>> = vec![None; rows];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.sources.len());
        let mut rescued_at = None;
        for (source, field) in self.sources.iter().zip(self.schema.fields()) {
            let column = match *source {
                Source::Take(i) => Arc::clone(batch.column(i)),
                Source::Null => new_null_array(field.data_type(), rows),
                Source::Cast(i) => {
                    let original = batch.column(i);
                    let (cast, misfits) = cast_keeping(original, field.data_type())?;
                    if let Some(misfits) = misfits {
                        let name = self.run_schema.field(i).name();
                        let mut count = 0;
                        for row in misfits {
                            rescue(&mut rescued[row], name, original, row)?;
                            count += 1;
                        }
                        *self.drift.rescued.entry(name.clone()).or_default() += count;
                    }
                    cast
                }
                Source::Rescued(own) => {
                    rescued_at = Some((columns.len(), own));
                    new_null_array(&DataType::Utf8, rows)
                }
            };
            columns.push(column);
        }
        for &i in &self.rescue_all {
            let original = batch.column(i);
            let name = self.run_schema.field(i).name();
            let mut count = 0;
            for row in (0..rows).filter(|&r| original.is_valid(r)) {
                rescue(&mut rescued[row], name, original, row)?;
                count += 1;
            }
            if count > 0 {
                *self.drift.rescued.entry(name.clone()).or_default() += count;
            }
        }
        if rescued_at.is_none() && rescued.iter().any(Option::is_some) {
            // Unreachable by `with_rescue_column`; a value is never dropped silently.
            return Err(ArrowError::InvalidArgumentError(format!(
                "values do not fit the table's schema and it has no {RESCUED_DATA} column"
            )));
        }
        if let Some((at, own)) = rescued_at {
            let own = own.map(|i| batch.column(i).as_string_opt::<i32>().cloned());
            let mut out = StringBuilder::with_capacity(rows, 0);
            for (row, fields) in rescued.into_iter().enumerate() {
                let before = own
                    .as_ref()
                    .and_then(|o| o.as_ref())
                    .filter(|o| o.is_valid(row))
                    .map(|o| o.value(row));
                match (before, fields) {
                    (None, None) => out.append_null(),
                    (Some(text), None) => out.append_value(text),
                    (before, Some(mut fields)) => {
                        if let Some(serde_json::Value::Object(earlier)) =
                            before.and_then(|t| serde_json::from_str(t).ok())
                        {
                            for (k, v) in earlier {
                                fields.entry(k).or_insert(v);
                            }
                        }
                        out.append_value(serde_json::Value::Object(fields).to_string());
                    }
                }
            }
            columns[at] = Arc::new(out.finish());
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }
}

/// `array` cast to `to`, a value that cannot be cast becoming null.
fn cast_safely(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(array, to, &safe)
}

/// `array` cast to `to`, and the rows whose value does not survive the cast (non-null, and
/// null or different once cast back); `None` when every value fits.
fn cast_keeping(
    array: &ArrayRef,
    to: &DataType,
) -> Result<(ArrayRef, Option<Vec<usize>>), ArrowError> {
    // A boolean is not a number: `true` would cast to 1 and back.
    let bool_and_number = (array.data_type() == &DataType::Boolean) != (to == &DataType::Boolean)
        && array.data_type() != &DataType::Utf8
        && to != &DataType::Utf8;
    if bool_and_number || !can_cast_types(array.data_type(), to) {
        let misfits: Vec<usize> = (0..array.len()).filter(|&r| array.is_valid(r)).collect();
        let nulls = new_null_array(to, array.len());
        return Ok((nulls, (!misfits.is_empty()).then_some(misfits)));
    }
    if array.data_type() == &DataType::Utf8 && to.is_numeric() {
        return parse_keeping(array, to);
    }
    let cast = cast_safely(array, to)?;
    let lost: Vec<bool> = if can_cast_types(to, array.data_type()) {
        let back = cast_safely(&cast, array.data_type())?;
        let differs = distinct(array, &back)?;
        (0..array.len())
            .map(|r| array.is_valid(r) && differs.value(r))
            .collect()
    } else {
        (0..array.len())
            .map(|r| array.is_valid(r) && cast.is_null(r))
            .collect()
    };
    let misfits: Vec<usize> = lost
        .iter()
        .enumerate()
        .filter_map(|(r, &l)| l.then_some(r))
        .collect();
    if misfits.is_empty() {
        return Ok((cast, None));
    }
    // The misfits are null in their column: their value lives in the rescued data.
    let keep = arrow::array::BooleanArray::from(lost.iter().map(|l| !l).collect::<Vec<_>>());
    let cast = arrow::compute::nullif(&cast, &arrow::compute::not(&keep)?)?;
    Ok((cast, Some(misfits)))
}

/// Text `array` read as numbers of type `to`, and the rows whose text is not one.
///
/// A run's column is text when its values mixed types (`2` and `"cheap"`), and the text of a
/// number is kept as the event wrote it: `2`, `2.50`, `1e3`. Each fits a numeric column when
/// it is a JSON number of that type, whatever its spelling (casting `2.0` back to text would
/// not give `2`), as the same value fits when the run's column is numeric: for an integer
/// column, a number with a zero fraction (`2.0`) fits as the number `2.0` does. Other text
/// Arrow would read as a number (`NaN`, `Infinity`, ` 4 `) does not fit.
fn parse_keeping(
    array: &ArrayRef,
    to: &DataType,
) -> Result<(ArrayRef, Option<Vec<usize>>), ArrowError> {
    // Only the text of a JSON number is a number: not `NaN`, `Infinity`, ` 4 ` or `0x10`,
    // which Arrow's cast would also read.
    let not_number: arrow::array::BooleanArray = array
        .as_string::<i32>()
        .iter()
        .map(|t| Some(t.is_some_and(|t| !crate::decode::json::is_json_number(t))))
        .collect();
    let numbers = &arrow::compute::nullif(array, &not_number)?;
    let mut cast = cast_safely(numbers, to)?;
    if to.is_integer() && (0..array.len()).any(|r| numbers.is_valid(r) && cast.is_null(r)) {
        let float = cast_safely(numbers, &DataType::Float64)?;
        let (integral, _) = cast_keeping(&float, to)?;
        cast =
            arrow::compute::kernels::zip::zip(&arrow::compute::is_null(&cast)?, &integral, &cast)?;
    }
    // A misfit is text that is null once cast: not a JSON number, or not one of this type.
    let misfits: Vec<usize> = (0..array.len())
        .filter(|&r| array.is_valid(r) && cast.is_null(r))
        .collect();
    Ok((cast, (!misfits.is_empty()).then_some(misfits)))
}

/// Adds `array[row]`, as JSON, under `name` to a row's rescued fields.
fn rescue(
    fields: &mut Option<serde_json::Map<String, serde_json::Value>>,
    name: &str,
    array: &ArrayRef,
    row: usize,
) -> Result<(), ArrowError> {
    fields
        .get_or_insert_with(serde_json::Map::new)
        .insert(name.to_owned(), json_value(array, row)?);
    Ok(())
}

/// One Arrow value as JSON: numbers and booleans as themselves, anything else as its text.
fn json_value(array: &ArrayRef, row: usize) -> Result<serde_json::Value, ArrowError> {
    use arrow::datatypes::{Float64Type, Int32Type, Int64Type};
    Ok(match array.data_type() {
        DataType::Boolean => serde_json::Value::Bool(array.as_boolean().value(row)),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Float64 => {
            serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(row))
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            serde_json::Value::String(formatter.value(row).to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn table(fields: &[(&str, DataType)]) -> Vec<TableColumn> {
        fields
            .iter()
            .map(|(n, t)| TableColumn {
                name: (*n).to_owned(),
                data_type: t.to_string(),
                since: 1,
            })
            .collect()
    }

    #[test]
    fn every_type_bnetl_writes_round_trips_through_its_committed_name() {
        let types = [
            DataType::Utf8,
            DataType::Int64,
            DataType::Int32,
            DataType::Float64,
            DataType::Boolean,
            DataType::Binary,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
            crate::decode::schema::headers_type(),
        ];
        for t in types {
            assert_eq!(DataType::from_str(&t.to_string()).unwrap(), t, "{t}");
        }
    }

    #[test]
    fn values_that_do_not_fit_are_rescued_and_new_columns_added() {
        let run = schema(&[("amount", DataType::Utf8), ("color", DataType::Utf8)]);
        let columns = table(&[("amount", DataType::Int64)]);
        let mut r = Reconciled::new("t", &columns, &run, 2, false, SchemaEvolution::default())
            .unwrap()
            .with_rescue_column(2);
        let batch = RecordBatch::try_new(
            run,
            vec![
                Arc::new(StringArray::from(vec![Some("5"), Some("lots"), None])),
                Arc::new(StringArray::from(vec![Some("red"), None, None])),
            ],
        )
        .unwrap();
        let out = r.apply(&batch).unwrap();
        let names: Vec<_> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["amount", "color", RESCUED_DATA]);
        let amount = out.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(amount.iter().collect::<Vec<_>>(), [Some(5), None, None]);
        let rescued = out.column(2).as_string::<i32>();
        assert_eq!(
            rescued.iter().collect::<Vec<_>>(),
            [None, Some(r#"{"amount":"lots"}"#), None]
        );
        assert_eq!(r.drift.rescued["amount"], 1);
        assert_eq!(r.columns.last().unwrap().name, RESCUED_DATA);
        assert_eq!(r.columns[1].since, 2);
    }

    #[test]
    fn numbers_fit_a_string_column_and_fractions_do_not_fit_an_integer_one() {
        let to_text = Arc::new(Int64Array::from(vec![7, -1])) as ArrayRef;
        let (cast, misfits) = cast_keeping(&to_text, &DataType::Utf8).unwrap();
        assert!(misfits.is_none());
        assert_eq!(cast.as_string::<i32>().value(0), "7");
        let fractions = Arc::new(Float64Array::from(vec![6.0, 5.5])) as ArrayRef;
        let (cast, misfits) = cast_keeping(&fractions, &DataType::Int64).unwrap();
        assert_eq!(misfits, Some(vec![1]));
        assert!(cast.is_null(1) && cast.is_valid(0));
        let flags = Arc::new(arrow::array::BooleanArray::from(vec![true])) as ArrayRef;
        let (_, misfits) = cast_keeping(&flags, &DataType::Int64).unwrap();
        assert_eq!(misfits, Some(vec![0]), "true is not 1");
    }

    #[test]
    fn the_text_of_a_number_fits_a_numeric_column_whatever_its_spelling() {
        // A run whose `price` mixed numbers and strings keeps their text; the numbers among
        // them still fit the table's DOUBLE (before, "2" came back as "2.0" and was rescued).
        let mixed = Arc::new(StringArray::from(vec![
            Some("2"),
            Some("cheap"),
            Some("2.50"),
            Some("1e3"),
            None,
        ])) as ArrayRef;
        let (cast, misfits) = cast_keeping(&mixed, &DataType::Float64).unwrap();
        assert_eq!(misfits, Some(vec![1]));
        let prices = cast.as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(
            prices.iter().collect::<Vec<_>>(),
            [Some(2.0), None, Some(2.5), Some(1000.0), None]
        );
        let counts = Arc::new(StringArray::from(vec![
            "5", "2.0", "5.5", "lots", "-0", " 4 ", "0x10", "+5",
        ])) as ArrayRef;
        let (cast, misfits) = cast_keeping(&counts, &DataType::Int64).unwrap();
        assert_eq!(misfits, Some(vec![2, 3, 5, 6, 7]));
        let counts = cast.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(
            counts.iter().collect::<Vec<_>>(),
            [Some(5), Some(2), None, None, Some(0), None, None, None]
        );
        // Words Arrow would read as numbers are text, not JSON numbers.
        let words = Arc::new(StringArray::from(vec!["NaN", "Infinity", "-inf", "1.5"])) as ArrayRef;
        let (cast, misfits) = cast_keeping(&words, &DataType::Float64).unwrap();
        assert_eq!(misfits, Some(vec![0, 1, 2]));
        assert_eq!(cast.null_count(), 3);
    }

    #[test]
    fn policies_decide_what_new_columns_become() {
        let run = schema(&[("a", DataType::Utf8), ("b", DataType::Int64)]);
        let columns = table(&[("a", DataType::Utf8)]);
        let err = Reconciled::new(
            "t",
            &columns,
            &run,
            2,
            false,
            SchemaEvolution::FailOnNewColumns,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("b (Int64)") && err.contains("table t"),
            "{err}"
        );
        let ignored =
            Reconciled::new("t", &columns, &run, 2, false, SchemaEvolution::None).unwrap();
        assert_eq!(ignored.columns.len(), 1);
        assert_eq!(ignored.drift.ignored, ["b"]);
        let mut rescued = Reconciled::new("t", &columns, &run, 2, false, SchemaEvolution::Rescue)
            .unwrap()
            .with_rescue_column(2);
        let batch = RecordBatch::try_new(
            run,
            vec![
                Arc::new(StringArray::from(vec!["x"])),
                Arc::new(Int64Array::from(vec![3])),
            ],
        )
        .unwrap();
        let out = rescued.apply(&batch).unwrap();
        assert_eq!(out.num_columns(), 2);
        assert_eq!(out.column(1).as_string::<i32>().value(0), r#"{"b":3}"#);
    }

    #[test]
    fn an_overwrite_takes_the_runs_schema_and_keeps_when_columns_appeared() {
        let run = schema(&[("a", DataType::Int64), ("c", DataType::Utf8)]);
        let columns = table(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let r = Reconciled::new("t", &columns, &run, 5, true, SchemaEvolution::default()).unwrap();
        assert_eq!(r.columns[0].since, 1);
        assert_eq!(r.columns[1].since, 5);
        assert_eq!(r.columns.len(), 2);
    }
}
