//! Writes with many partition values: once a run would need more open files than
//! [`super::RollPolicy::max_open_files`], the rest of its rows go through a sort by their
//! partition columns (DataFusion's external sort, which spills to the temp folder past
//! [`SORT_MEMORY`]), so each partition's rows arrive together and finished partitions' files
//! can be closed. Spark does the same when `spark.sql.maxConcurrentOutputFileWriters` is
//! reached: memory stays bounded, and a partition gets one file from before the switch and
//! one after it, not one per batch.

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext, ident};
use tokio::sync::mpsc;

/// Memory the sort may hold before it spills sorted runs to disk.
pub const SORT_MEMORY: usize = 128 << 20;

/// Where the rows to sort are sent.
pub type RowsToSort = mpsc::Sender<Result<RecordBatch, DataFusionError>>;

/// The rows sent to it, once, as the input of the sort.
struct Received {
    schema: SchemaRef,
    rows: Mutex<Option<mpsc::Receiver<Result<RecordBatch, DataFusionError>>>>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received").finish_non_exhaustive()
    }
}

impl PartitionStream for Received {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = self.rows.lock().ok().and_then(|mut r| r.take());
        let stream = futures::stream::unfold(rows, |rows| async move {
            let mut rows = rows?;
            let next = rows.recv().await?;
            Some((next, Some(rows)))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// Starts a sort of rows of `schema` by `partition_by` (nulls first): rows go into the
/// returned sender, and come out of the returned stream, grouped by partition, once the
/// sender is dropped.
pub async fn by_partition(
    schema: &SchemaRef,
    partition_by: &[String],
) -> Result<(RowsToSort, SendableRecordBatchStream), DataFusionError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(SORT_MEMORY)))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    let (tx, rx) = mpsc::channel(2);
    let input = Received {
        schema: Arc::clone(schema),
        rows: Mutex::new(Some(rx)),
    };
    let table = StreamingTable::try_new(Arc::clone(schema), vec![Arc::new(input)])?;
    ctx.register_table("rows", Arc::new(table))?;
    let order = partition_by
        .iter()
        .map(|column| ident(column).sort(true, true))
        .collect();
    let sorted = ctx
        .table("rows")
        .await?
        .sort(order)?
        .execute_stream()
        .await?;
    Ok((tx, sorted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    #[tokio::test]
    async fn rows_come_out_grouped_by_partition() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Host", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let (tx, sorted) = by_partition(&schema, &["Host".to_owned()]).await.unwrap();
        let feed = async move {
            for i in 0..10i64 {
                let hosts: Vec<Option<String>> = (0..100)
                    .map(|j| (j % 7 != 0).then(|| format!("h{}", (i + j) % 5)))
                    .collect();
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(StringArray::from(hosts)),
                        Arc::new(Int64Array::from(vec![i; 100])),
                    ],
                )
                .unwrap();
                tx.send(Ok(batch)).await.unwrap();
            }
        };
        let (_, batches) = tokio::join!(feed, sorted.try_collect::<Vec<_>>());
        let hosts: Vec<Option<String>> = batches
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .map(|h| h.map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(hosts.len(), 1000);
        let mut runs = hosts.clone();
        runs.dedup();
        assert_eq!(runs.len(), 6, "one run per host and one of nulls: {runs:?}");
        assert_eq!(runs[0], None);
    }
}
