//! Filter pushdown for SQL over the topic: the conditions of a statement on the metadata
//! columns `partition`, `offset` and `timestamp` narrow the offsets read, so "the last hour"
//! or "offsets 1000 to 2000 of partition 3" reads just those messages.
//!
//! A condition narrows the read only where it can never drop a row the statement keeps
//! (the statement still filters every row itself): `partition` equal to or in a list,
//! `offset` compared with a number or `BETWEEN`, and `timestamp` from a lower bound (the first
//! offset at or after it, as Kafka's offsets-for-times gives it). An upper bound on
//! `timestamp` is not pushed down: producers' timestamps need not grow with the offset.
//! The same plan gives the columns the statement reads ([`TopicScan::columns`]), so the
//! decoded events keep only those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::SessionContext;

use crate::source::OffsetRange;

/// What the conditions of a statement say of the offsets it can keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowing {
    /// Only these partitions (none: all).
    pub partitions: Option<BTreeSet<i32>>,
    /// Offsets at or above this.
    pub min_offset: i64,
    /// Offsets below this.
    pub end_offset: i64,
    /// Records at or after this timestamp (ms since the epoch).
    pub from_timestamp: Option<i64>,
}

impl Default for Narrowing {
    fn default() -> Self {
        Narrowing {
            partitions: None,
            min_offset: i64::MIN,
            end_offset: i64::MAX,
            from_timestamp: None,
        }
    }
}

/// A metadata column a condition can narrow the read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Partition,
    Offset,
    Timestamp,
}

impl Narrowing {
    /// The narrowing of the conditions `filters`, all of which hold for every row kept.
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut narrowing = Narrowing::default();
        for filter in filters {
            narrowing.add(filter);
        }
        narrowing
    }

    /// True when `filter` narrows the read (the rest are only evaluated on the rows).
    pub fn narrows(filter: &Expr) -> bool {
        let mut probe = Narrowing::default();
        probe.add(filter);
        probe != Narrowing::default()
    }

    /// True when nothing is narrowed.
    pub fn is_everything(&self) -> bool {
        *self == Narrowing::default()
    }

    fn add(&mut self, filter: &Expr) {
        match filter {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.add(left);
                self.add(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (column, op, value) = match (meta_column(left), meta_column(right)) {
                    (Some(column), None) => (column, *op, right),
                    (None, Some(column)) => match op.swap() {
                        Some(op) => (column, op, left),
                        None => return,
                    },
                    _ => return,
                };
                let Some(value) = literal(value, column) else {
                    return;
                };
                self.compare(column, op, value);
            }
            Expr::InList(InList {
                expr,
                list,
                negated: false,
            }) if meta_column(expr) == Some(Meta::Partition) => {
                let values: Option<BTreeSet<i32>> = list
                    .iter()
                    .map(|v| literal(v, Meta::Partition).and_then(|v| i32::try_from(v).ok()))
                    .collect();
                if let Some(values) = values {
                    self.only_partitions(values);
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                let Some(column) = meta_column(expr) else {
                    return;
                };
                if let Some(low) = literal(low, column) {
                    self.compare(column, Operator::GtEq, low);
                }
                if let Some(high) = literal(high, column) {
                    self.compare(column, Operator::LtEq, high);
                }
            }
            _ => {}
        }
    }

    fn compare(&mut self, column: Meta, op: Operator, value: i64) {
        match (column, op) {
            (Meta::Partition, Operator::Eq) => {
                if let Ok(p) = i32::try_from(value) {
                    self.only_partitions([p].into());
                }
            }
            (Meta::Offset, Operator::Eq) => {
                self.min_offset = self.min_offset.max(value);
                self.end_offset = self.end_offset.min(value.saturating_add(1));
            }
            (Meta::Offset, Operator::Gt) => {
                self.min_offset = self.min_offset.max(value.saturating_add(1));
            }
            (Meta::Offset, Operator::GtEq) => self.min_offset = self.min_offset.max(value),
            (Meta::Offset, Operator::Lt) => self.end_offset = self.end_offset.min(value),
            (Meta::Offset, Operator::LtEq) => {
                self.end_offset = self.end_offset.min(value.saturating_add(1));
            }
            (Meta::Timestamp, Operator::Gt | Operator::GtEq | Operator::Eq) => {
                self.from_timestamp = Some(self.from_timestamp.map_or(value, |t| t.max(value)));
            }
            _ => {}
        }
    }

    fn only_partitions(&mut self, values: BTreeSet<i32>) {
        self.partitions = Some(match self.partitions.take() {
            None => values,
            Some(before) => before.intersection(&values).copied().collect(),
        });
    }

    /// `ranges` narrowed; `from_offsets` is where each partition reaches `from_timestamp`
    /// (`None`: no record that late).
    pub fn apply(
        &self,
        ranges: &[OffsetRange],
        from_offsets: Option<&BTreeMap<i32, Option<i64>>>,
    ) -> Vec<OffsetRange> {
        ranges
            .iter()
            .filter(|r| {
                self.partitions
                    .as_ref()
                    .is_none_or(|p| p.contains(&r.partition))
            })
            .map(|r| {
                let mut start = r.start.max(self.min_offset);
                if let Some(from) = from_offsets {
                    start = start.max(from.get(&r.partition).copied().flatten().unwrap_or(r.end));
                }
                let start = start.min(r.end);
                let end = r.end.min(self.end_offset).max(start);
                OffsetRange {
                    partition: r.partition,
                    start,
                    end,
                }
            })
            .collect()
    }
}

/// The columns a condition can narrow the read by, by name.
const NARROWING_COLUMNS: [(&str, Meta); 3] = [
    ("partition", Meta::Partition),
    ("offset", Meta::Offset),
    ("timestamp", Meta::Timestamp),
];

/// The metadata column `expr` is (through casts to a wider type).
fn meta_column(expr: &Expr) -> Option<Meta> {
    match expr {
        Expr::Column(column) => NARROWING_COLUMNS
            .iter()
            .find(|(name, _)| *name == column.name)
            .map(|(_, meta)| *meta),
        Expr::Cast(cast) => {
            let to = cast.field.data_type();
            // A timestamp cast to a date, or an integer to a timestamp, compares otherwise.
            meta_column(&cast.expr).filter(|m| match m {
                Meta::Timestamp => matches!(to, DataType::Timestamp(..)),
                Meta::Partition | Meta::Offset => to.is_integer(),
            })
        }
        _ => None,
    }
}

/// The value of literal `expr` for comparing with `column`: an integer, or a timestamp in ms
/// (rounded down: a lower bound reads a little more, never less).
fn literal(expr: &Expr, column: Meta) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    let integer = match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        _ => None,
    };
    let millis = match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000),
        ScalarValue::TimestampMillisecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(v.div_euclid(1000)),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000_000)),
        _ => None,
    };
    match column {
        Meta::Partition | Meta::Offset => integer,
        Meta::Timestamp => millis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ranges() -> Vec<OffsetRange> {
        (0..3)
            .map(|partition| OffsetRange {
                partition,
                start: 0,
                end: 100,
            })
            .collect()
    }

    fn narrowed(filters: &[Expr]) -> Vec<(i32, i64, i64)> {
        Narrowing::from_filters(filters)
            .apply(&ranges(), None)
            .iter()
            .map(|r| (r.partition, r.start, r.end))
            .collect()
    }

    #[tokio::test]
    async fn a_statement_reads_only_the_columns_its_plan_scans() {
        use arrow::datatypes::{Field, Schema};
        let sample: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("event_type", DataType::Utf8, true),
            Field::new("Host", DataType::Utf8, true),
            Field::new("partition", DataType::Int32, true),
            Field::new("offset", DataType::Int64, true),
        ]));
        let ctx = crate::transform::session::new_context();
        let columns = |sql: &'static str| {
            let (ctx, sample) = (ctx.clone(), Arc::clone(&sample));
            async move { topic_scan(&ctx, sql, "events", sample).await.columns }
        };
        let set = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            columns("SELECT event_type, COUNT(*) FROM events GROUP BY event_type").await,
            set(&["event_type"])
        );
        assert_eq!(
            columns("SELECT Host FROM events WHERE \"offset\" > 5").await,
            set(&["Host", "offset"])
        );
        assert_eq!(columns("SELECT COUNT(*) FROM events").await, set(&[]));
        let all = columns("SELECT * FROM events").await;
        assert!(all.is_none() || all == set(&["event_type", "Host", "partition", "offset"]));
        let twice = "SELECT a.Host FROM events a JOIN events b ON a.\"offset\" = b.\"offset\"";
        assert_eq!(columns(twice).await, None);
        assert_eq!(columns("SELECT nothing FROM events").await, None);
    }

    #[test]
    fn partition_and_offset_conditions_narrow_the_ranges() {
        assert_eq!(
            narrowed(&[
                col("partition").eq(lit(1i32)),
                col("offset").gt_eq(lit(10i64))
            ]),
            [(1, 10, 100)]
        );
        assert_eq!(
            narrowed(&[col("offset")
                .gt(lit(10i64))
                .and(col("offset").lt(lit(20i64)))]),
            [(0, 11, 20), (1, 11, 20), (2, 11, 20)]
        );
        assert_eq!(
            narrowed(&[col("partition").in_list(vec![lit(0i32), lit(2i32)], false)]),
            [(0, 0, 100), (2, 0, 100)]
        );
        assert_eq!(
            narrowed(&[col("offset").between(lit(5i64), lit(7i64))]),
            [(0, 5, 8), (1, 5, 8), (2, 5, 8)]
        );
        // Literal first, as `10 <= offset`.
        assert_eq!(
            narrowed(&[
                lit(90i64).lt_eq(col("offset")),
                col("partition").eq(lit(2i64))
            ]),
            [(2, 90, 100)]
        );
        // Past the end: empty ranges, not negative ones.
        assert_eq!(narrowed(&[col("offset").gt(lit(500i64))])[0], (0, 100, 100));
    }

    #[test]
    fn other_conditions_read_everything() {
        for filter in [
            col("event_type").eq(lit("purchase_sword")),
            col("offset").not_eq(lit(3i64)),
            col("partition").in_list(vec![lit(0i32)], true),
            col("offset").eq(lit(1i64)).or(col("offset").eq(lit(9i64))),
            col("timestamp").lt(lit(ScalarValue::TimestampMillisecond(Some(5), None))),
            col("offset").eq(lit("7")),
        ] {
            assert!(!Narrowing::narrows(&filter), "{filter}");
            assert_eq!(narrowed(&[filter]).len(), 3);
        }
    }

    #[test]
    fn a_timestamp_lower_bound_starts_each_partition_at_its_offset_for_that_time() {
        let from = ScalarValue::TimestampNanosecond(Some(1_700_000_000_123_456_789), None);
        let narrowing = Narrowing::from_filters(&[col("timestamp").gt_eq(lit(from))]);
        assert_eq!(narrowing.from_timestamp, Some(1_700_000_000_123));
        let offsets: BTreeMap<i32, Option<i64>> = [(0, Some(40)), (1, None), (2, Some(0))].into();
        let got: Vec<_> = narrowing
            .apply(&ranges(), Some(&offsets))
            .iter()
            .map(|r| (r.partition, r.start, r.end))
            .collect();
        assert_eq!(got, [(0, 40, 100), (1, 100, 100), (2, 0, 100)]);
    }
}

/// A stand-in for the topic's `events` while a statement is planned to learn its conditions:
/// the columns of a sample of the events, no rows, and every condition that narrows the read
/// accepted as a hint (`Inexact`: the statement still filters the rows).
#[derive(Debug)]
struct Probe {
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for Probe {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => Arc::clone(&self.schema),
        };
        Ok(Arc::new(EmptyExec::new(schema)))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if Narrowing::narrows(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}

/// What a statement reads of the topic's events: the offsets it can keep, and its columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicScan {
    /// The offsets its conditions keep.
    pub narrowing: Narrowing,
    /// The columns it reads, by name (an empty set for `COUNT(*)`); None: every column.
    pub columns: Option<BTreeSet<String>>,
}

/// What `sql` reads of `table` (the topic's events, of columns `sample`): planned against a
/// stand-in, whose scan's conditions and projection are read off the optimized plan. Every
/// offset and every column when the statement scans the table more than once or does not
/// plan (its real planning then says why).
pub async fn topic_scan(
    ctx: &SessionContext,
    sql: &str,
    table: &str,
    sample: SchemaRef,
) -> TopicScan {
    let probe = Arc::new(Probe { schema: sample });
    if ctx.register_table(table, probe).is_err() {
        return TopicScan::default();
    }
    let planned = match ctx.sql(sql).await {
        Ok(frame) => frame.into_optimized_plan().ok(),
        Err(_) => None,
    };
    let _ = ctx.deregister_table(table);
    let Some(plan) = planned else {
        return TopicScan::default();
    };
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && scan.table_name.table() == table
        {
            let columns = scan.projection.as_ref().map(|_| {
                scan.projected_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            });
            scans.push((scan.filters.clone(), columns));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    match scans.as_slice() {
        [(filters, columns)] => TopicScan {
            narrowing: Narrowing::from_filters(filters),
            columns: columns.clone(),
        },
        _ => TopicScan::default(),
    }
}
