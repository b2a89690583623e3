//! `bnetl extract`: every event of the topic into `extracted_events`.

use crate::settings::JobDefinition;
use crate::transform::queries;

/// The extract job.
pub const JOB: JobDefinition = JobDefinition {
    name: "extract",
    query_name: "extract",
    query: queries::EXTRACT,
    table: "extracted_events",
    partition_by: &[],
};
