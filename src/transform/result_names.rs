//! Spark's names for the result columns a statement did not name: `count(1)` for
//! `COUNT(*)`, `count(Host)` for `COUNT(Host)`, `2` for the literal `2`, where DataFusion
//! names them `count(*)`, `count(purchases.Host)` and `Int64(2)`. The seed's walkthrough
//! prints `count(1)` over its first count, and analysts' scripts read the headers.
//!
//! Only the forms above change (a qualifier of one of the statement's tables, a typed literal,
//! `count(*)`), so a column the statement names or aliases keeps its name; the rest of a
//! made-up name stays DataFusion's (`a + Int64(1)` becomes `a + 1`, where Spark says
//! `(a + 1)`). Used by `bnetl sql` only: a job's table keeps the column names it was written
//! with.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;

/// The literal types DataFusion writes around a value in a made-up name (`Int64(2)`).
const VALUE_TYPES: [&str; 11] = [
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
    "Boolean",
];
/// The same for text, whose value is quoted (`Utf8("x")`).
const TEXT_TYPES: [&str; 3] = ["Utf8View", "LargeUtf8", "Utf8"];

/// Spark's names of the result columns of `plan`, when some differ from DataFusion's and
/// they stay distinct; `None` otherwise.
pub fn spark_names(plan: &LogicalPlan) -> Option<Vec<String>> {
    let mut qualifiers = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => qualifiers.push(scan.table_name.table().to_owned()),
            LogicalPlan::SubqueryAlias(alias) => qualifiers.push(alias.alias.table().to_owned()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let fields = plan.schema().fields();
    let names: Vec<String> = fields
        .iter()
        .map(|field| spark_name(field.name(), &qualifiers))
        .collect();
    let changed = names
        .iter()
        .zip(fields)
        .any(|(name, field)| name != field.name());
    let distinct = names
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == names.len();
    (changed && distinct).then_some(names)
}

/// Spark's form of DataFusion's made-up name `name`, the tables of whose statement are
/// `qualifiers`.
fn spark_name(name: &str, qualifiers: &[String]) -> String {
    let name = name.replace("count(*)", "count(1)");
    let mut out = String::with_capacity(name.len());
    let mut rest = name.as_str();
    while let Some(c) = rest.chars().next() {
        let at_word = !out
            .chars()
            .next_back()
            .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.');
        if at_word && let Some((value, after)) = literal(rest) {
            out.push_str(value);
            rest = after;
            continue;
        }
        if at_word
            && let Some(after) = qualifiers
                .iter()
                .find_map(|q| rest.strip_prefix(q.as_str())?.strip_prefix('.'))
        {
            rest = after;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The value of the typed literal at the start of `text` (`Int64(2)`: `2`, `Utf8("x")`: `x`),
/// and the text after it.
fn literal(text: &str) -> Option<(&str, &str)> {
    for kind in VALUE_TYPES {
        if let Some(inner) = text.strip_prefix(kind).and_then(|t| t.strip_prefix('(')) {
            let end = inner.find([')', '('])?;
            return (inner.as_bytes()[end] == b')').then(|| (&inner[..end], &inner[end + 1..]));
        }
    }
    for kind in TEXT_TYPES {
        if let Some(inner) = text.strip_prefix(kind).and_then(|t| t.strip_prefix("(\"")) {
            let end = inner.find("\")")?;
            return Some((&inner[..end], &inner[end + 2..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_names_take_sparks_form() {
        let tables = ["purchases".to_owned(), "e".to_owned()];
        for (datafusion, spark) in [
            ("count(*)", "count(1)"),
            ("count(purchases.Host)", "count(Host)"),
            ("count(DISTINCT e.Host)", "count(DISTINCT Host)"),
            ("Int64(2)", "2"),
            ("Float64(1.5)", "1.5"),
            ("Boolean(true)", "true"),
            ("Utf8(\"a b\")", "a b"),
            ("max(purchases.level) + Int64(1)", "max(level) + 1"),
            ("Host", "Host"),
            ("purchasesX.Host", "purchasesX.Host"),
            ("my_e.Host", "my_e.Host"),
            ("MyInt64(2)", "MyInt64(2)"),
        ] {
            assert_eq!(spark_name(datafusion, &tables), spark, "{datafusion}");
        }
    }
}
