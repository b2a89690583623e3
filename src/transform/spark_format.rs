//! `date_format(ts, 'yyyy-MM-dd')` as Spark reads its pattern.
//!
//! DataFusion's `date_format` (`to_char`) takes chrono's `%` patterns; a Spark pattern such as
//! `yyyy-MM-dd` has no `%`, so every value came out as the pattern's own text, and a `GROUP BY
//! date_format(...)` put every row in one group, with no error. [`DateFormat`] is DataFusion's
//! function, except that a pattern without `%` (one for all rows) is read as Spark's datetime
//! pattern (<https://spark.apache.org/docs/latest/sql-ref-datetime-pattern.html>) and handed on
//! as the chrono pattern that prints the same; a pattern letter that has no chrono equivalent
//! here is an error naming it. Patterns with `%` are DataFusion's, as before.

use std::sync::Arc;

use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl};

/// DataFusion's `to_char` (alias `date_format`), reading a pattern without `%` as Spark's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    builtin: Arc<ScalarUDF>,
}

impl DateFormat {
    /// The function, to register in place of DataFusion's.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(DateFormat {
            builtin: datafusion::functions::datetime::to_char(),
        })
    }
}

impl ScalarUDFImpl for DateFormat {
    super::delegate_to_builtin!();

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let spark = match args.args.get(1) {
            Some(ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(pattern))
                | ScalarValue::LargeUtf8(Some(pattern))
                | ScalarValue::Utf8View(Some(pattern)),
            )) if !pattern.contains('%') => pattern.clone(),
            _ => return self.builtin.invoke_with_args(args),
        };
        match chrono_pattern(&spark) {
            Ok(chrono) => {
                args.args[1] = ColumnarValue::Scalar(ScalarValue::Utf8(Some(chrono)));
                self.builtin.invoke_with_args(args)
            }
            Err(reason) => plan_err!(
                "date_format: the pattern {spark:?} is read as Spark's datetime pattern, and {reason} (or give a chrono pattern with %, as '%Y-%m-%d')"
            ),
        }
    }
}

/// The chrono pattern that prints what Spark's datetime `pattern` prints; Err says which
/// letter has no equivalent here.
pub fn chrono_pattern(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        if c == '\'' {
            // '' is a quote; 'text' is text, '' inside it a quote.
            if run >= 2 && i + 1 < chars.len() && chars[i + 1] == '\'' {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (None, _) => return Err("a quoted text is not closed".to_owned()),
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(&x), _) => {
                        push_literal(&mut out, x);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let chrono = match (c, run) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M' | 'L', 1) => "%-m",
            ('M' | 'L', 2) => "%m",
            ('M' | 'L', 3) => "%b",
            ('M' | 'L', 4) => "%B",
            ('d', 1) => "%-d",
            ('d', 2) => "%d",
            ('D', 1 | 2) => "%-j",
            ('D', 3) => "%j",
            ('H', 1) => "%-H",
            ('H', 2) => "%H",
            ('h', 1) => "%-I",
            ('h', 2) => "%I",
            ('m', 1) => "%-M",
            ('m', 2) => "%M",
            ('s', 1) => "%-S",
            ('s', 2) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('a', 1) => "%p",
            ('E', 1..=3) => "%a",
            ('E', 4) => "%A",
            ('z', 1..=3) => "%Z",
            ('Z', 1..=3) => "%z",
            ('X' | 'x', 3) => "%:z",
            _ => {
                return Err(format!(
                    "{} has no chrono equivalent here",
                    std::iter::repeat_n(c, run).collect::<String>()
                ));
            }
        };
        out.push_str(chrono);
        i += run;
    }
    Ok(out)
}

/// `c` as text in a chrono pattern (`%` doubled).
fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use arrow::datatypes::DataType;

    #[test]
    fn spark_patterns_become_the_chrono_patterns_that_print_the_same() {
        for (spark, chrono) in [
            ("yyyy-MM-dd", "%Y-%m-%d"),
            ("yyyy-MM-dd HH:mm:ss.SSS", "%Y-%m-%d %H:%M:%S.%3f"),
            ("MM/dd/yy h:mm a", "%m/%d/%y %-I:%M %p"),
            ("EEE, d MMM yyyy", "%a, %-d %b %Y"),
            ("EEEE MMMM", "%A %B"),
            ("'week of' yyyy-MM-dd", "week of %Y-%m-%d"),
            ("yyyy'T'HH 'o''clock' 100%", "%YT%H o'clock 100%%"),
            ("''", "'"),
            ("DDD XXX Z", "%j %:z %z"),
        ] {
            assert_eq!(chrono_pattern(spark).as_deref(), Ok(chrono), "{spark}");
        }
        assert!(chrono_pattern("yyyy-ww").unwrap_err().contains("ww"));
        assert!(chrono_pattern("'open").is_err());
    }

    async fn formatted(sql: &str) -> Result<Vec<String>> {
        let ctx = crate::transform::session::new_context();
        let mut values = Vec::new();
        for batch in ctx.sql(sql).await?.collect().await? {
            let column = cast(batch.column(0), &DataType::Utf8)?;
            values.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_owned),
            );
        }
        Ok(values)
    }

    #[tokio::test]
    async fn date_format_reads_spark_patterns_and_keeps_chrono_ones() {
        let at = "TIMESTAMP '2024-03-05 10:11:12.345'";
        for (pattern, expected) in [
            ("MM/dd/yyyy HH:mm", "03/05/2024 10:11"),
            ("yyyy-MM-dd", "2024-03-05"),
            ("%Y-%m", "2024-03"),
        ] {
            for function in ["date_format", "to_char"] {
                let sql = format!("SELECT {function}({at}, '{pattern}')");
                assert_eq!(formatted(&sql).await.unwrap(), [expected], "{sql}");
            }
        }
        let err = formatted(&format!("SELECT date_format({at}, 'yyyy-ww')"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ww has no chrono equivalent"), "{err}");
    }
}
