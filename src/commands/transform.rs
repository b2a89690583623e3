//! `bnetl transform`: `queries/transform.sql` over the topic's events into `transformed_events`.

use crate::settings::JobDefinition;
use crate::transform::queries;

/// The transform job.
pub const JOB: JobDefinition = JobDefinition {
    name: "transform",
    query_name: "transform",
    query: queries::TRANSFORM,
    table: "transformed_events",
    partition_by: &[],
};
