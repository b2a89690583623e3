//! `CAST(ts AS DATE)` of a UTC (or zoneless) timestamp as a division instead of a calendar
//! conversion per row.
//!
//! Arrow's cast converts each value through chrono and, for a zoned timestamp, its time zone
//! (4% of `bnetl run`'s CPU for the shipped transform's `event_date`). In UTC the day is the
//! timestamp divided by the length of a day, rounded down. [`UtcDateCast`], an optimizer rule,
//! replaces such casts with [`utc_date`], which computes exactly that and hands any value
//! outside ±90 million days (chrono's range ends near ±95 million) to Arrow's cast, so results
//! and errors are Arrow's. Other zones and types keep Arrow's cast.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ExprSchema, Result, utils::take_function_args};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Days either side of 1970-01-01 computed by division; beyond them Arrow's cast decides.
const FAST_DAYS: i64 = 90_000_000;

/// Time zones that are UTC under another name.
const UTC_NAMES: [&str; 3] = ["UTC", "+00:00", "Etc/UTC"];

/// The optimizer rule: `CAST(x AS DATE)` becomes `utc_date(x)` where `x` is a timestamp in
/// UTC or without a zone, keeping the expression's name.
#[derive(Debug, Default)]
pub struct UtcDateCast;

impl OptimizerRule for UtcDateCast {
    fn name(&self) -> &str {
        "bnetl_utc_date_cast"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        super::rewrite_expressions(plan, rewrite_cast)
    }
}

fn rewrite_cast(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(Cast { expr: inner, field }) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let in_utc = matches!(
        inner.get_type(schema as &dyn ExprSchema)?,
        DataType::Timestamp(_, tz) if tz.as_deref().is_none_or(|tz| UTC_NAMES.contains(&tz))
    );
    if *field.data_type() != DataType::Date32 || !field.metadata().is_empty() || !in_utc {
        return Ok(Transformed::no(expr));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(UtcDate::default()));
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(udf, vec![inner.as_ref().clone()]),
    )))
}

/// `utc_date(ts)`: the UTC day of a timestamp, as `CAST(ts AS DATE)` gives it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UtcDate {
    signature: Signature,
}

impl Default for UtcDate {
    fn default() -> Self {
        UtcDate {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UtcDate {
    fn name(&self) -> &str {
        "utc_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = take_function_args(self.name(), args.args)?;
        super::apply_unary(arg, utc_date)
    }
}

/// The UTC day of each timestamp of `array`: Arrow's `CAST(... AS DATE)`, computed by division.
pub fn utc_date(array: &ArrayRef) -> Result<ArrayRef> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Ok(cast(array, &DataType::Date32)?);
    };
    let per_day = 86_400
        * match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
    // Every unit is an i64 count since the epoch: Arrow's cast to Int64 reinterprets it.
    let values = cast(array, &DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    let fast = values
        .iter()
        .flatten()
        .all(|v| v.div_euclid(per_day).abs() <= FAST_DAYS);
    if !fast {
        return Ok(cast(array, &DataType::Date32)?);
    }
    // Within ±FAST_DAYS every quotient fits an i32.
    let days: Date32Array = values.unary(|v| v.div_euclid(per_day) as i32);
    Ok(Arc::new(days))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };

    fn same_as_arrow(array: ArrayRef) {
        let ours = utc_date(&array).unwrap();
        let arrows = cast(&array, &DataType::Date32).unwrap();
        assert_eq!(ours.as_ref(), arrows.as_ref(), "{:?}", array.data_type());
    }

    #[test]
    fn days_match_arrows_cast_in_every_unit_zone_and_sign() {
        let day = 86_400_i64;
        let seconds = vec![
            Some(0),
            Some(1),
            Some(-1),
            Some(day - 1),
            Some(day),
            Some(-day),
            Some(-day - 1),
            None,
            Some(1_733_540_000),
            Some(-2_208_988_800),
        ];
        for tz in [None, Some("UTC"), Some("+00:00"), Some("Etc/UTC")] {
            let scaled = |k: i64| -> Vec<Option<i64>> {
                seconds.iter().map(|s| s.map(|s| s * k + k / 2)).collect()
            };
            same_as_arrow(Arc::new(
                TimestampSecondArray::from(seconds.clone()).with_timezone_opt(tz),
            ));
            same_as_arrow(Arc::new(
                TimestampMillisecondArray::from(scaled(1_000)).with_timezone_opt(tz),
            ));
            same_as_arrow(Arc::new(
                TimestampMicrosecondArray::from(scaled(1_000_000)).with_timezone_opt(tz),
            ));
            same_as_arrow(Arc::new(
                TimestampNanosecondArray::from(scaled(1_000_000_000)).with_timezone_opt(tz),
            ));
        }
    }

    #[test]
    fn values_beyond_the_fast_range_get_arrows_answer_and_error() {
        let near = (FAST_DAYS + 1) * 86_400_000;
        same_as_arrow(Arc::new(
            TimestampMillisecondArray::from(vec![Some(near), Some(-near), None])
                .with_timezone("UTC"),
        ));
        let far: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![i64::MAX]));
        let ours = utc_date(&far).unwrap_err().to_string();
        let arrows = cast(&far, &DataType::Date32).unwrap_err().to_string();
        assert!(ours.contains(&arrows), "{ours} / {arrows}");
    }

    #[tokio::test]
    async fn sessions_cast_utc_timestamps_by_division_and_keep_other_zones() {
        use arrow::datatypes::{Field, Schema};
        let ms = |tz: &str| DataType::Timestamp(TimeUnit::Millisecond, Some(tz.into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", ms("UTC"), true),
            Field::new("other", ms("-05:00"), true),
        ]));
        let values = vec![Some(1_733_540_000_123), Some(-1), None];
        let batch = arrow::record_batch::RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampMillisecondArray::from(values.clone()).with_timezone("UTC")),
                Arc::new(TimestampMillisecondArray::from(values).with_timezone("-05:00")),
            ],
        )
        .unwrap();
        let ctx = super::super::session::new_context();
        let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let sql = "SELECT CAST(ts AS DATE), CAST(other AS DATE) AS other_day FROM t";
        let explained = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap();
        let shown = arrow::util::pretty::pretty_format_batches(&explained.collect().await.unwrap())
            .unwrap()
            .to_string();
        assert!(shown.contains("utc_date(t.ts)"), "{shown}");
        assert!(!shown.contains("utc_date(t.other)"), "{shown}");
        let result = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        // The rewritten cast keeps its name.
        assert_eq!(result[0].schema().field(0).name(), "t.ts");
        let shown = arrow::util::pretty::pretty_format_batches(&result)
            .unwrap()
            .to_string();
        let rows: Vec<&str> = shown.lines().skip(3).take(3).collect();
        assert_eq!(
            rows,
            [
                "| 2024-12-07 | 2024-12-06 |",
                "| 1969-12-31 | 1969-12-31 |",
                "|            |            |"
            ],
            "{shown}"
        );
    }
}
