//! `bnetl sql`: a statement over the warehouse tables, printed as a table, CSV or JSON lines.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

use crate::cli::{OutputFormat, SqlArgs};
use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::transform::QueryError;
use crate::transform::queries::Query;
use crate::transform::session;

/// Runs `args.query` over the warehouse and prints the result on stdout.
pub async fn run(settings: &Settings, args: &SqlArgs) -> Result<()> {
    let ctx = session::new_context();
    let tables = session::register_warehouse(&ctx, &settings.warehouse).await?;
    let batches = query(&ctx, &args.query, &tables).await?;
    let mut out = std::io::stdout().lock();
    print(&mut out, &batches, args.format, args.truncate)
        .map_err(Error::io("write the result to stdout"))
}

/// Plans and collects one statement. A planning failure names the tables that exist.
pub async fn query(ctx: &SessionContext, sql: &str, tables: &[String]) -> Result<Vec<RecordBatch>> {
    let statement = Query {
        name: format!("statement (warehouse tables: {})", tables.join(", ")),
        sql: sql.to_owned(),
    };
    let frame = statement.plan(ctx).await?;
    let batches = frame
        .collect()
        .await
        .map_err(|source| QueryError::Execute {
            name: "statement".into(),
            source,
        })?;
    Ok(batches)
}

/// Writes `batches` in `format`.
pub fn print(
    out: &mut impl Write,
    batches: &[RecordBatch],
    format: OutputFormat,
    truncate: usize,
) -> std::io::Result<()> {
    match format {
        OutputFormat::Table => out.write_all(show(batches, truncate).as_bytes()),
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                writer.write(batch).map_err(std::io::Error::other)?;
            }
            Ok(())
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(out);
            for batch in batches {
                writer.write(batch).map_err(std::io::Error::other)?;
            }
            writer.finish().map_err(std::io::Error::other)
        }
    }
}

/// Renders batches as Spark's `DataFrame.show(truncate)` does: values longer than `truncate`
/// characters are cut to `truncate - 3` plus `...`, and cells are right-aligned (left-aligned
/// when `truncate` is 0), with `null` for nulls.
pub fn show(batches: &[RecordBatch], truncate: usize) -> String {
    let Some(first) = batches.first() else {
        return String::new();
    };
    let schema = first.schema();
    let options = FormatOptions::default()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let cut = |text: String| -> String {
        let chars = text.chars().count();
        if truncate == 0 || chars <= truncate {
            text
        } else if truncate < 4 {
            text.chars().take(truncate).collect()
        } else {
            text.chars().take(truncate - 3).collect::<String>() + "..."
        }
    };
    let mut rows: Vec<Vec<String>> = vec![
        schema
            .fields()
            .iter()
            .map(|f| cut(f.name().clone()))
            .collect(),
    ];
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()
            .unwrap_or_default();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| cut(f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..schema.fields().len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    let separator: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(*w)))
        .collect::<String>()
        + "+\n";
    let line = |row: &[String]| -> String {
        let cells: String = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| {
                if truncate > 0 {
                    format!("|{cell:>w$}")
                } else {
                    format!("|{cell:<w$}")
                }
            })
            .collect();
        cells + "|\n"
    };
    let mut text = separator.clone();
    text.push_str(&line(&rows[0]));
    text.push_str(&separator);
    for row in &rows[1..] {
        text.push_str(&line(row));
    }
    text.push_str(&separator);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("event_type", DataType::Utf8, true),
            Field::new("event_count", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("default"),
                    Some("purchase_shield"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![37, 29, 1])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn table_output_matches_sparks_show() {
        let expected = "\
+---------------+-----------+
|     event_type|event_count|
+---------------+-----------+
|        default|         37|
|purchase_shield|         29|
|           null|          1|
+---------------+-----------+
";
        assert_eq!(show(&[batch()], 20), expected);
    }

    #[test]
    fn long_values_are_truncated_like_show() {
        let text = show(&[batch()], 10);
        assert!(text.contains("|purchas...|"), "{text}");
        let untruncated = show(&[batch()], 0);
        assert!(
            untruncated.contains("|default        |37         |"),
            "{untruncated}"
        );
    }

    #[test]
    fn csv_has_a_header_row() {
        let mut out = Vec::new();
        print(&mut out, &[batch()], OutputFormat::Csv, 20).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event_type,event_count\ndefault,37\npurchase_shield,29\n,1\n"
        );
    }
}
