//! Transform stage: DataFusion SQL over the decoded events and the warehouse tables.

pub mod binary_text;
pub mod get_json_object;
pub mod outputs;
pub mod queries;
pub mod result_names;
pub mod session;
pub mod spark_commands;
pub mod spark_format;
pub mod starts_with;
pub mod utc_date;

use arrow::array::ArrayRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan};

/// The methods of a `ScalarUDFImpl` that wraps one of DataFusion's functions (its field
/// `builtin`) and hands them on unchanged: name and aliases (registered, it replaces the
/// builtin), signature and return type. The wrapper writes the methods it changes.
macro_rules! delegate_to_builtin {
    () => {
        fn name(&self) -> &str {
            self.builtin.name()
        }

        fn aliases(&self) -> &[String] {
            self.builtin.aliases()
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            self.builtin.signature()
        }

        fn return_type(
            &self,
            args: &[arrow::datatypes::DataType],
        ) -> datafusion::common::Result<arrow::datatypes::DataType> {
            self.builtin.return_type(args)
        }

        fn return_field_from_args(
            &self,
            args: datafusion::logical_expr::ReturnFieldArgs,
        ) -> datafusion::common::Result<arrow::datatypes::FieldRef> {
            self.builtin.return_field_from_args(args)
        }
    };
}
pub(crate) use delegate_to_builtin;

/// `plan` with each of its expressions rewritten bottom-up by `rewrite`, which types them
/// against the node's inputs; each keeps its name. A node without inputs (a scan, whose own
/// filters are the optimizer's) is left as it is. The rules that replace Arrow's casts
/// ([`utc_date`], [`binary_text`]) rewrite each node with it.
pub(crate) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> datafusion::common::Result<Transformed<Expr>>,
) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    if plan.inputs().is_empty() {
        return Ok(Transformed::no(plan));
    }
    let schema = merge_schema(&plan.inputs());
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|expr| {
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(if rewritten.transformed {
            rewritten.update_data(|e| name.restore(e))
        } else {
            rewritten
        })
    })
}

/// A one-argument function's result: `f` over the argument's array, or over a scalar as an
/// array of one, back to a scalar. The functions that replace Arrow's casts ([`utc_date`],
/// [`binary_text`]) are invoked through it.
pub(crate) fn apply_unary(
    arg: ColumnarValue,
    f: impl Fn(&ArrayRef) -> datafusion::common::Result<ArrayRef>,
) -> datafusion::common::Result<ColumnarValue> {
    Ok(match arg {
        ColumnarValue::Array(array) => ColumnarValue::Array(f(&array)?),
        ColumnarValue::Scalar(scalar) => {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&f(&scalar.to_array()?)?, 0)?)
        }
    })
}

/// Failures planning or running SQL.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("cannot read query {name} from {path}")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("query {name} is invalid{hint}")]
    Plan {
        name: String,
        /// What to try, when bnetl can tell (led by a space), or empty.
        hint: String,
        #[source]
        source: DataFusionError,
    },
    #[error(
        "query {name} would write ({kind}), and bnetl's SQL only reads: tables are written by extract, transform and filtered-writes; `bnetl sql --output FILE` saves a result to a file"
    )]
    Writes { name: String, kind: String },
    #[error("query {name} failed")]
    Execute {
        name: String,
        #[source]
        source: DataFusionError,
    },
    #[error("cannot register table {table} from {location}")]
    Register {
        table: String,
        location: String,
        #[source]
        source: DataFusionError,
    },
    #[error("warehouse {location} does not exist (write a table first: bnetl extract)")]
    NoWarehouse { location: String },
}

impl QueryError {
    /// True when the user's SQL or arguments are at fault (exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            QueryError::Plan { .. }
                | QueryError::Writes { .. }
                | QueryError::Read { .. }
                | QueryError::NoWarehouse { .. }
        )
    }
}
