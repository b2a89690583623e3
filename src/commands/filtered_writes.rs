//! `bnetl filtered-writes`: purchase events into `purchases`, partitioned by `event_type`.

use crate::settings::JobDefinition;
use crate::transform::queries;

/// The filtered-writes job.
pub const JOB: JobDefinition = JobDefinition {
    name: "filtered-writes",
    query_name: "filtered_writes",
    query: queries::FILTERED_WRITES,
    table: "purchases",
    partition_by: &["event_type"],
};
