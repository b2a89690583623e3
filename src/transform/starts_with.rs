//! `starts_with` as DataFusion's, except that a prefix holding `_`, `%` or `\` stays a
//! `starts_with` call instead of becoming `LIKE 'prefix%'` with those characters escaped.
//!
//! arrow-string runs a LIKE whose pattern has an escape as a regex, compiled again for every
//! batch: `starts_with(event_type, 'purchase_')` (the shipped `filtered_writes.sql`) spent 3%
//! of a 1M-event `bnetl run`'s CPU compiling and running it (perf). A prefix without those
//! characters still becomes a LIKE, which arrow-string runs as a prefix test and which prunes
//! Parquet row groups.

use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl};
use std::sync::Arc;

/// DataFusion's `starts_with`, kept a function call when its prefix has LIKE's wildcards or
/// its escape character.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StartsWith {
    builtin: Arc<ScalarUDF>,
}

impl StartsWith {
    /// The function, to register in place of DataFusion's.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(StartsWith {
            builtin: datafusion::functions::string::starts_with(),
        })
    }
}

impl ScalarUDFImpl for StartsWith {
    super::delegate_to_builtin!();

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.builtin.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let wildcards = |prefix: &str| prefix.contains(['_', '%', '\\']);
        match args.get(1) {
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(prefix))
                | ScalarValue::LargeUtf8(Some(prefix))
                | ScalarValue::Utf8View(Some(prefix)),
                _,
            )) if wildcards(prefix) => Ok(ExprSimplifyResult::Original(args)),
            _ => self.builtin.simplify(args, info),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::compute::cast;
    use arrow::datatypes::DataType;
    use datafusion::prelude::SessionContext;

    /// The optimized plan of a `starts_with(s, prefix)` filter, and the rows it keeps.
    async fn plan_and_rows(ctx: &SessionContext, prefix: &str) -> (String, Vec<String>) {
        let sql = format!(
            "SELECT s FROM (VALUES ('purchase_sword'), ('purchaseXsword'), ('purchase'), \
             ('a%b'), ('a_b'), ('ab'), (NULL)) AS t(s) WHERE starts_with(s, '{prefix}') ORDER BY s"
        );
        let frame = ctx.sql(&sql).await.unwrap();
        let plan = frame.clone().into_optimized_plan().unwrap();
        let mut rows = Vec::new();
        for batch in frame.collect().await.unwrap() {
            let column = cast(batch.column(0), &DataType::Utf8).unwrap();
            rows.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_owned),
            );
        }
        (plan.display_indent().to_string(), rows)
    }

    #[tokio::test]
    async fn a_prefix_with_wildcards_stays_a_call_and_keeps_the_same_rows() {
        let builtin = SessionContext::new();
        let ours = crate::transform::session::new_context();
        for prefix in ["purchase_", "a%", "a_", "purchase"] {
            let (builtin_plan, builtin_rows) = plan_and_rows(&builtin, prefix).await;
            let (plan, rows) = plan_and_rows(&ours, prefix).await;
            assert_eq!(rows, builtin_rows, "{prefix}");
            assert!(builtin_plan.contains("LIKE"), "{builtin_plan}");
            if prefix == "purchase" {
                assert!(plan.contains("LIKE"), "{plan}");
            } else {
                assert!(
                    plan.contains("starts_with") && !plan.contains("LIKE"),
                    "{plan}"
                );
            }
        }
        assert_eq!(
            plan_and_rows(&ours, "purchase_").await.1,
            ["purchase_sword"]
        );
        assert_eq!(plan_and_rows(&ours, "a%").await.1, ["a%b"]);
    }
}
