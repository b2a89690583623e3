//! `CAST(b AS STRING)` (and `TRY_CAST`) of binary as Spark casts it: bytes that are not
//! UTF-8 become U+FFFD.
//!
//! Spark's Kafka idiom is `CAST(value AS STRING)`, and `_bad_records.value` holds, by design,
//! messages that may not be UTF-8. Arrow's cast fails the whole statement at the first such
//! value (`Encountered non-UTF-8 data`), so the bad records could not be read as text.
//! [`BinaryTextCast`], an analyzer rule, replaces a cast of binary to text with
//! [`Utf8Lossy`], which keeps valid text as it is and replaces each invalid sequence with
//! U+FFFD (Rust's `String::from_utf8_lossy`, as Java's decoder does), then casts to the
//! requested string type. Other casts are Arrow's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{DFSchema, ExprSchema, Result, exec_err, utils::take_function_args};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule: `CAST(b AS STRING)` becomes `utf8_lossy(b)` (cast to the requested
/// string type) where `b` is binary, keeping the expression's name.
#[derive(Debug, Default)]
pub struct BinaryTextCast;

impl AnalyzerRule for BinaryTextCast {
    fn name(&self) -> &str {
        "bnetl_binary_text_cast"
    }

    /// After type coercion (the casts are in place) and before the optimizer, whose
    /// simplifier would otherwise run Arrow's cast of a binary literal while planning.
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| super::rewrite_expressions(node, rewrite_cast))
            .data()
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_binary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

fn rewrite_cast(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // TRY_CAST too: in Spark a cast of binary to text never fails, so both give the text.
    let (Expr::Cast(Cast { expr: inner, field }) | Expr::TryCast(TryCast { expr: inner, field })) =
        &expr
    else {
        return Ok(Transformed::no(expr));
    };
    if !is_text(field.data_type())
        || !field.metadata().is_empty()
        || !is_binary(&inner.get_type(schema as &dyn ExprSchema)?)
    {
        return Ok(Transformed::no(expr));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(Utf8Lossy::default()));
    let text = Expr::ScalarFunction(ScalarFunction::new_udf(udf, vec![inner.as_ref().clone()]));
    Ok(Transformed::yes(match field.data_type() {
        DataType::Utf8 => text,
        other => datafusion::logical_expr::cast(text, other.clone()),
    }))
}

/// `utf8_lossy(b)`: the bytes `b` as text, each invalid UTF-8 sequence as U+FFFD.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Utf8Lossy {
    signature: Signature,
}

impl Default for Utf8Lossy {
    fn default() -> Self {
        Utf8Lossy {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Utf8Lossy {
    fn name(&self) -> &str {
        "utf8_lossy"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = take_function_args(self.name(), args.args)?;
        super::apply_unary(arg, utf8_lossy)
    }
}

/// The values of `array` as bytes, by row, when it is one of Arrow's binary types; `None`
/// for any other type.
pub fn binary_values(array: &dyn Array) -> Option<Vec<Option<&[u8]>>> {
    Some(match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().iter().collect(),
        _ => return None,
    })
}

/// Each value of the binary `array` as text, each invalid UTF-8 sequence as U+FFFD.
pub fn utf8_lossy(array: &ArrayRef) -> Result<ArrayRef> {
    if let Some(values) = binary_values(array.as_ref()) {
        let mut out = StringBuilder::with_capacity(values.len(), 0);
        for value in values {
            out.append_option(value.map(String::from_utf8_lossy));
        }
        return Ok(Arc::new(out.finish()));
    }
    match array.data_type() {
        other if is_text(other) => Ok(cast(array, &DataType::Utf8)?),
        other => exec_err!("utf8_lossy takes binary, not {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::BinaryArray;

    #[test]
    fn invalid_utf8_becomes_the_replacement_character_and_text_stays() {
        let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&b"{\"ok\":1}"[..]),
            Some(&b"\xff\xfe bad"[..]),
            None,
            Some("é".as_bytes()),
        ]));
        let text = utf8_lossy(&bytes).unwrap();
        let text = text.as_string::<i32>();
        assert_eq!(
            text.iter().collect::<Vec<_>>(),
            [
                Some("{\"ok\":1}"),
                Some("\u{fffd}\u{fffd} bad"),
                None,
                Some("é")
            ]
        );
    }
}
