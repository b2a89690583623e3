//! Spark's table commands that DataFusion lacks or answers in its own terms, for `bnetl sql`:
//!
//! - `DESCRIBE [TABLE] [EXTENDED | FORMATTED] t` (and `DESC`): Spark's `col_name, data_type,
//!   comment` rows, with Spark's type names (`string`, `bigint`, `timestamp`), not Arrow's
//!   (`Utf8View` is how DataFusion reads a Parquet string, not a type analysts know); the
//!   partition columns again under `# Partition Information`, and with `EXTENDED` a
//!   `# Detailed Table Information` section. DataFusion's own `DESCRIBE t` printed Arrow types,
//!   and `DESCRIBE TABLE t` did not parse.
//! - `DESCRIBE t column`: the column's `info_name, info_value` rows; `SHOW COLUMNS IN t`:
//!   its columns' names in `col_name` (DataFusion's answer was its catalog view, with Arrow
//!   types).
//! - `SHOW PARTITIONS t`: one row per partition, its folder path (`event_type=purchase_sword`,
//!   escaped as the folders are), sorted; a table without partition columns is an error, as
//!   in Spark. DataFusion took it for `SHOW` of a variable.
//!
//! - `EXPLAIN EXTENDED` and `EXPLAIN FORMATTED`: DataFusion's `EXPLAIN` ([`plain_explain`]),
//!   which did not parse them.
//!
//! The commands are recognized from the statement's tokens ([`recognize`]); anything else goes
//! to DataFusion's planner as before.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::{Column, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::sink::partition::hive_path;

/// A Spark table command of a `bnetl sql` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `DESCRIBE [TABLE] [EXTENDED | FORMATTED] table [column]`.
    Describe {
        table: String,
        extended: bool,
        column: Option<String>,
    },
    /// `SHOW PARTITIONS table`.
    ShowPartitions { table: String },
    /// `SHOW COLUMNS {IN | FROM} table`.
    ShowColumns { table: String },
}

impl Command {
    /// The table the command is about.
    pub fn table(&self) -> &str {
        match self {
            Command::Describe { table, .. }
            | Command::ShowPartitions { table }
            | Command::ShowColumns { table } => table,
        }
    }
}

/// The command `sql` is, when it is one of [`Command`]'s (comments, blanks and a final `;`
/// allowed). The table is one name, quoted or not, taken as written (bnetl does not fold the
/// case of names). `None` for anything else, such as `DESCRIBE t column`.
pub fn recognize(sql: &str, dialect: &dyn Dialect) -> Option<Command> {
    let tokens = Tokenizer::new(dialect, sql).tokenize().ok()?;
    let mut words = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
        .peekable();
    let keyword = |token: Option<&Token>, keywords: &[Keyword]| match token {
        Some(Token::Word(word)) if word.quote_style.is_none() => keywords.contains(&word.keyword),
        _ => false,
    };
    let command = match words.next() {
        first if keyword(first.as_ref(), &[Keyword::DESCRIBE, Keyword::DESC]) => {
            if keyword(words.peek(), &[Keyword::TABLE]) {
                words.next();
            }
            let extended = keyword(words.peek(), &[Keyword::EXTENDED, Keyword::FORMATTED]);
            if extended {
                words.next();
            }
            let table = table_name(&mut words)?;
            let column = match words.next() {
                Some(Token::Word(word)) => Some(word.value),
                Some(_) => return None,
                None => None,
            };
            Command::Describe {
                table,
                extended,
                column,
            }
        }
        first
            if keyword(first.as_ref(), &[Keyword::SHOW])
                && keyword(words.peek(), &[Keyword::PARTITIONS]) =>
        {
            words.next();
            Command::ShowPartitions {
                table: table_name(&mut words)?,
            }
        }
        first
            if keyword(first.as_ref(), &[Keyword::SHOW])
                && keyword(words.peek(), &[Keyword::COLUMNS]) =>
        {
            words.next();
            if !keyword(words.next().as_ref(), &[Keyword::IN, Keyword::FROM]) {
                return None;
            }
            Command::ShowColumns {
                table: table_name(&mut words)?,
            }
        }
        _ => return None,
    };
    words.next().is_none().then_some(command)
}

/// `sql` in DataFusion's words when it is Spark's `EXPLAIN EXTENDED` or `EXPLAIN FORMATTED`:
/// the plain `EXPLAIN`, which prints the logical and physical plans (Spark's `EXTENDED` adds
/// the parsed and analyzed ones, which DataFusion does not keep). `None` for anything else.
pub fn plain_explain(sql: &str, dialect: &dyn Dialect) -> Option<String> {
    let tokens = Tokenizer::new(dialect, sql).tokenize_with_location().ok()?;
    let mut words = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)));
    let is = |token: &Token, keyword: &[Keyword]| matches!(token, Token::Word(w) if w.quote_style.is_none() && keyword.contains(&w.keyword));
    let first = words.next()?;
    let mode = words.next()?;
    if !is(&first.token, &[Keyword::EXPLAIN])
        || !is(&mode.token, &[Keyword::EXTENDED, Keyword::FORMATTED])
    {
        return None;
    }
    let at = byte_offset(sql, mode.span.start.line, mode.span.start.column)?;
    let end = byte_offset(sql, mode.span.end.line, mode.span.end.column)?;
    Some(format!("{}{}", &sql[..at], &sql[end..]))
}

/// The byte offset in `text` of the tokenizer's (1-based) `line` and `column` (in characters).
fn byte_offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut at = (1, 1);
    for (offset, c) in text.char_indices() {
        if at == (line, column) {
            return Some(offset);
        }
        at = if c == '\n' {
            (at.0 + 1, 1)
        } else {
            (at.0, at.1 + 1)
        };
    }
    (at == (line, column)).then_some(text.len())
}

/// The table a name of `tokens` gives (`t`, `public.t`, `datafusion.public.t`: bnetl's
/// tables are in DataFusion's default catalog and schema); `None` for another name.
fn table_name<I: Iterator<Item = Token>>(tokens: &mut std::iter::Peekable<I>) -> Option<String> {
    let mut parts = Vec::new();
    loop {
        match tokens.next()? {
            Token::Word(word) => parts.push(word.value),
            _ => return None,
        }
        if tokens.next_if_eq(&Token::Period).is_none() {
            break;
        }
    }
    let table = parts.pop()?;
    let qualifier: Vec<&str> = parts.iter().map(String::as_str).collect();
    matches!(qualifier[..], [] | ["public"] | ["datafusion", "public"]).then_some(table)
}

/// Spark SQL's name of an Arrow type, as `DESCRIBE` and `printSchema` show it.
pub fn spark_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Null => "void".into(),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => format!("array<{}>", spark_type(item.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), spark_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                spark_type(kv[0].data_type()),
                spark_type(kv[1].data_type())
            ),
            other => other.to_string(),
        },
        DataType::Dictionary(_, values) => spark_type(values),
        DataType::Duration(TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond) => {
            "interval day to second".into()
        }
        other => other.to_string().to_lowercase(),
    }
}

/// `DESCRIBE` of `table` (registered in `ctx`): a row per column, then the partition columns
/// under `# Partition Information`, then, when `extended`, `details` under `# Detailed Table
/// Information`, as Spark prints them.
pub async fn describe(
    ctx: &SessionContext,
    table: &str,
    partition_columns: &[String],
    extended: bool,
    details: &[(&str, String)],
) -> Result<DataFrame> {
    let schema = provider_schema(ctx, table).await?;
    let mut rows: Vec<(String, String, Option<String>)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), spark_type(f.data_type()), None))
        .collect();
    let header = |text: &str| (text.to_owned(), String::new(), Some(String::new()));
    if !partition_columns.is_empty() {
        rows.push(header("# Partition Information"));
        rows.push((
            "# col_name".to_owned(),
            "data_type".to_owned(),
            Some("comment".to_owned()),
        ));
        for column in partition_columns {
            let field = schema.field_with_name(column)?;
            rows.push((column.clone(), spark_type(field.data_type()), None));
        }
    }
    if extended {
        rows.push(header(""));
        rows.push(header("# Detailed Table Information"));
        for (name, value) in details {
            rows.push(((*name).to_owned(), value.clone(), Some(String::new())));
        }
    }
    text_result(
        ctx,
        vec![
            (
                "col_name",
                StringArray::from_iter_values(rows.iter().map(|r| &r.0)),
            ),
            (
                "data_type",
                StringArray::from_iter_values(rows.iter().map(|r| &r.1)),
            ),
            ("comment", rows.iter().map(|r| r.2.as_deref()).collect()),
        ],
    )
}

/// `DESCRIBE table column`: the column's name, Spark type and comment as `info_name`,
/// `info_value` rows, and with `extended` the statistics Spark shows (none is computed, so
/// each is `NULL`, as Spark shows them for a table never analyzed).
pub async fn describe_column(
    ctx: &SessionContext,
    table: &str,
    column: &str,
    extended: bool,
) -> Result<DataFrame> {
    let schema = provider_schema(ctx, table).await?;
    let field = schema.field_with_name(column).map_err(|_| {
        DataFusionError::Plan(format!("column '{column}' not found in table '{table}'"))
    })?;
    let mut rows = vec![
        ("col_name", field.name().clone()),
        ("data_type", spark_type(field.data_type())),
        ("comment", "NULL".to_owned()),
    ];
    if extended {
        for statistic in [
            "min",
            "max",
            "num_nulls",
            "distinct_count",
            "avg_col_len",
            "max_col_len",
            "histogram",
        ] {
            rows.push((statistic, "NULL".to_owned()));
        }
    }
    text_result(
        ctx,
        vec![
            (
                "info_name",
                StringArray::from_iter_values(rows.iter().map(|r| r.0)),
            ),
            (
                "info_value",
                StringArray::from_iter_values(rows.iter().map(|r| &r.1)),
            ),
        ],
    )
}

/// `SHOW COLUMNS IN table`: its column names, in order, in a column `col_name`.
pub async fn show_columns(ctx: &SessionContext, table: &str) -> Result<DataFrame> {
    let schema = provider_schema(ctx, table).await?;
    let names = StringArray::from_iter_values(schema.fields().iter().map(|f| f.name()));
    text_result(ctx, vec![("col_name", names)])
}

/// `SHOW PARTITIONS` of `table`: the folder path of each of its partitions (of the table as
/// `ctx` reads it: its committed files), sorted, in a column `partition`.
pub async fn show_partitions(
    ctx: &SessionContext,
    table: &str,
    partition_columns: &[String],
) -> Result<DataFrame> {
    provider_schema(ctx, table).await?;
    if partition_columns.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "SHOW PARTITIONS is not allowed on a table that is not partitioned: {table}"
        )));
    }
    let values: Vec<Expr> = partition_columns
        .iter()
        .map(|c| cast(Expr::Column(Column::new_unqualified(c)), DataType::Utf8).alias(c))
        .collect();
    let batches = ctx
        .table(TableReference::bare(table))
        .await?
        .select(values)?
        .distinct()?
        .collect()
        .await?;
    let mut paths = Vec::new();
    for batch in &batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| c.as_string::<i32>())
            .collect();
        for row in 0..batch.num_rows() {
            let values: Vec<Option<String>> = columns
                .iter()
                .map(|c| c.is_valid(row).then(|| c.value(row).to_owned()))
                .collect();
            paths.push(hive_path(partition_columns, &values));
        }
    }
    // `a=` and `a=__HIVE_DEFAULT_PARTITION__` are one folder.
    paths.sort();
    paths.dedup();
    text_result(ctx, vec![("partition", StringArray::from(paths))])
}

/// A result of text columns, each with its name (nullable when it holds a null).
fn text_result(ctx: &SessionContext, columns: Vec<(&str, StringArray)>) -> Result<DataFrame> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, values)| Field::new(*name, DataType::Utf8, values.null_count() > 0))
        .collect();
    let arrays = columns
        .into_iter()
        .map(|(_, values)| Arc::new(values) as arrow::array::ArrayRef)
        .collect();
    ctx.read_batch(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// The schema of the table `table` of `ctx`; a plan error naming it when there is none.
async fn provider_schema(ctx: &SessionContext, table: &str) -> Result<arrow::datatypes::SchemaRef> {
    match ctx.table_provider(TableReference::bare(table)).await {
        Ok(provider) => Ok(provider.schema()),
        Err(_) => Err(DataFusionError::Plan(format!("table '{table}' not found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    #[test]
    fn sparks_forms_of_the_commands_are_recognized_and_nothing_else() {
        let describe = |table: &str, extended| {
            Some(Command::Describe {
                table: table.to_owned(),
                extended,
                column: None,
            })
        };
        let cases = [
            ("DESCRIBE purchases", describe("purchases", false)),
            ("desc table purchases;", describe("purchases", false)),
            (
                "DESCRIBE TABLE EXTENDED \"Sales 2026\"",
                describe("Sales 2026", true),
            ),
            ("-- a note\nDESCRIBE FORMATTED `t`", describe("t", true)),
            (
                "SHOW PARTITIONS purchases",
                Some(Command::ShowPartitions {
                    table: "purchases".to_owned(),
                }),
            ),
            ("DESCRIBE public.purchases", describe("purchases", false)),
            (
                "SHOW PARTITIONS datafusion.public.purchases",
                Some(Command::ShowPartitions {
                    table: "purchases".to_owned(),
                }),
            ),
            ("DESCRIBE other.purchases", None),
            (
                "DESCRIBE purchases Host",
                Some(Command::Describe {
                    table: "purchases".to_owned(),
                    extended: false,
                    column: Some("Host".to_owned()),
                }),
            ),
            ("DESCRIBE purchases Host extra", None),
            (
                "SHOW COLUMNS IN purchases",
                Some(Command::ShowColumns {
                    table: "purchases".to_owned(),
                }),
            ),
            ("SHOW COLUMNS purchases", None),
            ("DESCRIBE SELECT 1", None),
            ("SHOW TABLES", None),
            ("SELECT * FROM purchases", None),
            ("DESCRIBE", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(recognize(sql, &GenericDialect {}), expected, "{sql}");
        }
    }

    #[test]
    fn sparks_explain_modes_become_the_plain_explain() {
        let dialect = GenericDialect {};
        assert_eq!(
            plain_explain(
                "EXPLAIN EXTENDED SELECT 'a''b' AS \"x y\" FROM t -- note",
                &dialect
            )
            .as_deref(),
            Some("EXPLAIN  SELECT 'a''b' AS \"x y\" FROM t -- note")
        );
        assert_eq!(
            plain_explain("-- why\nexplain\n  formatted SELECT 1", &dialect).as_deref(),
            Some("-- why\nexplain\n   SELECT 1")
        );
        assert_eq!(plain_explain("EXPLAIN SELECT 1", &dialect), None);
        assert_eq!(plain_explain("SELECT extended FROM t", &dialect), None);
    }

    #[test]
    fn arrow_types_are_shown_by_their_spark_names() {
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        let cases = [
            (DataType::Utf8View, "string"),
            (DataType::BinaryView, "binary"),
            (DataType::Int32, "int"),
            (DataType::Int64, "bigint"),
            (DataType::Float64, "double"),
            (DataType::Date32, "date"),
            (
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "timestamp",
            ),
            (DataType::List(item), "array<bigint>"),
            (
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", DataType::Binary, true),
                    ]
                    .into(),
                ),
                "struct<key:string,value:binary>",
            ),
        ];
        for (data_type, spark) in cases {
            assert_eq!(spark_type(&data_type), spark, "{data_type}");
        }
    }
}
