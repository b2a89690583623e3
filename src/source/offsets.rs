//! Offset ranges: the closed set of half-open `[start, end)` ranges a bounded read covers.

use std::collections::BTreeMap;
use std::fmt;

/// The offsets of one partition that a bounded read covers: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// Partition number.
    pub partition: i32,
    /// First offset to read (the low watermark in a full read).
    pub start: i64,
    /// One past the last offset to read (the high watermark snapshotted at start).
    pub end: i64,
}

impl OffsetRange {
    /// Number of offsets in the range (messages, when offsets are consecutive).
    pub fn len(&self) -> u64 {
        u64::try_from(self.end.saturating_sub(self.start)).unwrap_or(0)
    }

    /// True when there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// True once a message at `offset` has been read: the range is drained. Offsets may have
    /// gaps (compaction, transaction markers), so this never waits for `offset == end - 1`.
    pub fn is_done_after(&self, offset: i64) -> bool {
        offset.saturating_add(1) >= self.end
    }
}

impl fmt::Display for OffsetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}..{})", self.partition, self.start, self.end)
    }
}

/// Total offsets across ranges.
pub fn total_len(ranges: &[OffsetRange]) -> u64 {
    ranges.iter().map(OffsetRange::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_range_has_no_offsets_and_is_done_before_reading() {
        let r = OffsetRange {
            partition: 0,
            start: 5,
            end: 5,
        };
        assert!(r.is_empty());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn range_is_done_after_its_last_offset_even_across_gaps() {
        let r = OffsetRange {
            partition: 1,
            start: 0,
            end: 10,
        };
        assert!(!r.is_done_after(8));
        assert!(r.is_done_after(9));
        // A compacted tail: offset 9 is gone, but 12 beyond it still ends the range.
        assert!(r.is_done_after(12));
        assert_eq!(r.len(), 10);
        assert_eq!(r.to_string(), "1[0..10)");
    }

    #[test]
    fn total_len_adds_every_partition() {
        let rs = [
            OffsetRange {
                partition: 0,
                start: 0,
                end: 3,
            },
            OffsetRange {
                partition: 1,
                start: 7,
                end: 7,
            },
            OffsetRange {
                partition: 2,
                start: 2,
                end: 6,
            },
        ];
        assert_eq!(total_len(&rs), 7);
    }
}

/// Earliest and latest offsets of one partition: `[low, high)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// Partition number.
    pub partition: i32,
    /// Log start offset (first offset still held).
    pub low: i64,
    /// High watermark (one past the last offset).
    pub high: i64,
}

/// One bound of a read, as Spark's Kafka source names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetSpec {
    /// Each partition's log start.
    Earliest,
    /// Each partition's high watermark at the snapshot.
    Latest,
    /// Per-partition offsets; `-2` means earliest and `-1` latest, as in Spark.
    Partitions(BTreeMap<i32, i64>),
    /// Where a table's last commit ended (`--incremental`): partitions it does not name start
    /// at the earliest offset, as new partitions do in a Spark stream.
    Resume(BTreeMap<i32, i64>),
}

/// Spark's sentinel for "earliest" in JSON offsets.
pub const EARLIEST: i64 = -2;
/// Spark's sentinel for "latest" in JSON offsets.
pub const LATEST: i64 = -1;

impl OffsetSpec {
    /// Parses `earliest`, `latest`, or Spark's JSON form `{"events":{"0":23,"1":-2}}` for `topic`.
    pub fn parse(text: &str, topic: &str) -> Result<Self, String> {
        match text.trim() {
            "earliest" => return Ok(OffsetSpec::Earliest),
            "latest" => return Ok(OffsetSpec::Latest),
            _ => {}
        }
        let parsed: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(text).map_err(|e| {
            format!("expected earliest, latest or JSON like {{\"{topic}\":{{\"0\":23,\"1\":-2}}}}: {e}")
        })?;
        let mut partitions = BTreeMap::new();
        for (name, offsets) in parsed {
            if name != topic {
                return Err(format!("names topic {name}, but the topic read is {topic}"));
            }
            for (partition, offset) in offsets {
                let partition: i32 = partition
                    .parse()
                    .map_err(|_| format!("partition {partition:?} of {topic} is not a number"))?;
                if offset < EARLIEST {
                    return Err(format!(
                        "offset {offset} of {topic}/{partition} is not valid (use -2 for earliest, -1 for latest)"
                    ));
                }
                partitions.insert(partition, offset);
            }
        }
        if partitions.is_empty() {
            return Err(format!("no partitions of {topic} given"));
        }
        Ok(OffsetSpec::Partitions(partitions))
    }
}

/// Where a bounded read starts and ends, with Spark's option semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBounds {
    /// `startingOffsets`.
    pub starting: OffsetSpec,
    /// `endingOffsets`.
    pub ending: OffsetSpec,
    /// `startingTimestamp` (ms): takes precedence over `starting`.
    pub starting_timestamp: Option<i64>,
    /// `endingTimestamp` (ms): takes precedence over `ending`.
    pub ending_timestamp: Option<i64>,
    /// `failOnDataLoss`: a start below the log start is an error (else skipped and counted).
    pub fail_on_data_loss: bool,
}

impl Default for ReadBounds {
    fn default() -> Self {
        ReadBounds {
            starting: OffsetSpec::Earliest,
            ending: OffsetSpec::Latest,
            starting_timestamp: None,
            ending_timestamp: None,
            fail_on_data_loss: true,
        }
    }
}

impl ReadBounds {
    /// Checks what Spark refuses for batch reads before anything is read.
    pub fn validate(&self) -> Result<(), String> {
        if self.starting == OffsetSpec::Latest {
            return Err(
                "--starting-offsets latest is not allowed for a batch read (nothing would be read)"
                    .into(),
            );
        }
        if let OffsetSpec::Partitions(p) = &self.starting
            && let Some((partition, _)) = p.iter().find(|(_, o)| **o == LATEST)
        {
            return Err(format!(
                "--starting-offsets: -1 (latest) for partition {partition} is not allowed for a batch read"
            ));
        }
        if self.ending == OffsetSpec::Earliest {
            return Err("--ending-offsets earliest is not allowed (nothing would be read)".into());
        }
        if let OffsetSpec::Partitions(p) = &self.ending
            && let Some((partition, _)) = p.iter().find(|(_, o)| **o == EARLIEST)
        {
            return Err(format!(
                "--ending-offsets: -2 (earliest) for partition {partition} is not allowed"
            ));
        }
        if let (Some(start), Some(end)) = (self.starting_timestamp, self.ending_timestamp)
            && end < start
        {
            return Err(format!(
                "--ending-timestamp {end} is before --starting-timestamp {start}"
            ));
        }
        Ok(())
    }
}

/// Offsets the log holds no more, skipped because `failOnDataLoss` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLoss {
    /// Partition.
    pub partition: i32,
    /// The requested start.
    pub requested: i64,
    /// The log start the read begins at instead.
    pub log_start: i64,
}

/// The ranges to read and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// One range per partition, in partition order.
    pub ranges: Vec<OffsetRange>,
    /// Data loss skipped (only with `fail_on_data_loss == false`).
    pub lost: Vec<DataLoss>,
}

/// Why a read cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{topic}/{partition}: starting offset {requested} is below the log start {log_start}; those records are gone (data loss). Pass --fail-on-data-loss false to skip them"
    )]
    DataLoss {
        topic: String,
        partition: i32,
        requested: i64,
        log_start: i64,
    },
    #[error("{topic}/{partition}: {which} offset {offset} is beyond the high watermark {high}")]
    BeyondEnd {
        topic: String,
        partition: i32,
        which: &'static str,
        offset: i64,
        high: i64,
    },
    #[error("{topic}/{partition}: ending offset {end} is before starting offset {start}")]
    Inverted {
        topic: String,
        partition: i32,
        start: i64,
        end: i64,
    },
    #[error("{topic} has no partition {partition} (partitions: {available})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        available: String,
    },
    #[error(
        "--{which}-offsets for {topic} must name every partition, as Spark requires; missing: {missing}"
    )]
    MissingPartitions {
        topic: String,
        which: &'static str,
        missing: String,
    },
    #[error("{topic}/{partition}: no record at or after starting timestamp {timestamp}")]
    NoOffsetForTimestamp {
        topic: String,
        partition: i32,
        timestamp: i64,
    },
}

/// Resolves `bounds` against the snapshotted `watermarks`. `times(ts)` answers
/// offsets-for-times: per partition, the first offset whose timestamp is at least `ts`, or
/// `None` when there is none.
pub fn resolve(
    topic: &str,
    watermarks: &[Watermark],
    bounds: &ReadBounds,
    start_times: Option<&BTreeMap<i32, Option<i64>>>,
    end_times: Option<&BTreeMap<i32, Option<i64>>>,
) -> Result<Resolved, ResolveError> {
    let available = || {
        watermarks
            .iter()
            .map(|w| w.partition.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (spec, which) in [(&bounds.starting, "starting"), (&bounds.ending, "ending")] {
        let (OffsetSpec::Partitions(named) | OffsetSpec::Resume(named)) = spec else {
            continue;
        };
        if let Some(partition) = named
            .keys()
            .find(|p| !watermarks.iter().any(|w| w.partition == **p))
        {
            return Err(ResolveError::UnknownPartition {
                topic: topic.to_owned(),
                partition: *partition,
                available: available(),
            });
        }
        // Spark's JSON offsets name every partition; a resumed table may not know new ones.
        let missing: Vec<String> = watermarks
            .iter()
            .filter(|w| !named.contains_key(&w.partition))
            .map(|w| w.partition.to_string())
            .collect();
        if matches!(spec, OffsetSpec::Partitions(_)) && !missing.is_empty() {
            return Err(ResolveError::MissingPartitions {
                topic: topic.to_owned(),
                which,
                missing: missing.join(", "),
            });
        }
    }
    let mut resolved = Resolved {
        ranges: Vec::with_capacity(watermarks.len()),
        lost: Vec::new(),
    };
    for w in watermarks {
        let requested_start = match (start_times, &bounds.starting) {
            (Some(times), _) => match times.get(&w.partition).copied().flatten() {
                Some(offset) => offset,
                None => {
                    return Err(ResolveError::NoOffsetForTimestamp {
                        topic: topic.to_owned(),
                        partition: w.partition,
                        timestamp: bounds.starting_timestamp.unwrap_or_default(),
                    });
                }
            },
            (None, OffsetSpec::Earliest) => w.low,
            (None, OffsetSpec::Latest) => w.high,
            (None, OffsetSpec::Partitions(p)) => match p[&w.partition] {
                EARLIEST => w.low,
                LATEST => w.high,
                offset => offset,
            },
            (None, OffsetSpec::Resume(committed)) => {
                committed.get(&w.partition).copied().unwrap_or(w.low)
            }
        };
        let end = match (end_times, &bounds.ending) {
            // No record at or after the ending timestamp: read to the end, as Spark does.
            (Some(times), _) => times.get(&w.partition).copied().flatten().unwrap_or(w.high),
            (None, OffsetSpec::Partitions(p)) => match p[&w.partition] {
                LATEST => w.high,
                offset => offset,
            },
            (None, _) => w.high,
        };
        let mut start = requested_start;
        if start < w.low {
            if bounds.fail_on_data_loss {
                return Err(ResolveError::DataLoss {
                    topic: topic.to_owned(),
                    partition: w.partition,
                    requested: start,
                    log_start: w.low,
                });
            }
            resolved.lost.push(DataLoss {
                partition: w.partition,
                requested: start,
                log_start: w.low,
            });
            start = w.low;
        }
        for (which, offset) in [("starting", start), ("ending", end)] {
            if offset > w.high {
                return Err(ResolveError::BeyondEnd {
                    topic: topic.to_owned(),
                    partition: w.partition,
                    which,
                    offset,
                    high: w.high,
                });
            }
        }
        if end < start {
            return Err(ResolveError::Inverted {
                topic: topic.to_owned(),
                partition: w.partition,
                start,
                end,
            });
        }
        resolved.ranges.push(OffsetRange {
            partition: w.partition,
            start,
            end,
        });
    }
    Ok(resolved)
}

impl DataLoss {
    /// Offsets skipped.
    pub fn skipped(&self) -> u64 {
        u64::try_from(self.log_start - self.requested).unwrap_or(0)
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    const WATERMARKS: [Watermark; 2] = [
        Watermark {
            partition: 0,
            low: 0,
            high: 100,
        },
        Watermark {
            partition: 1,
            low: 40,
            high: 60,
        },
    ];

    fn range(partition: i32, start: i64, end: i64) -> OffsetRange {
        OffsetRange {
            partition,
            start,
            end,
        }
    }

    fn bounds(starting: &str, ending: &str) -> ReadBounds {
        ReadBounds {
            starting: OffsetSpec::parse(starting, "events").unwrap(),
            ending: OffsetSpec::parse(ending, "events").unwrap(),
            ..ReadBounds::default()
        }
    }

    #[test]
    fn earliest_to_latest_is_each_partitions_watermarks() {
        let r = resolve("events", &WATERMARKS, &ReadBounds::default(), None, None).unwrap();
        assert_eq!(r.ranges, vec![range(0, 0, 100), range(1, 40, 60)]);
        assert!(r.lost.is_empty());
    }

    #[test]
    fn json_offsets_use_sparks_sentinels() {
        let b = bounds(
            r#"{"events":{"0":23,"1":-2}}"#,
            r#"{"events":{"0":50,"1":-1}}"#,
        );
        let r = resolve("events", &WATERMARKS, &b, None, None).unwrap();
        assert_eq!(r.ranges, vec![range(0, 23, 50), range(1, 40, 60)]);
    }

    #[test]
    fn a_start_below_the_log_start_is_data_loss_unless_allowed() {
        let mut b = bounds(r#"{"events":{"0":0,"1":10}}"#, "latest");
        let err = resolve("events", &WATERMARKS, &b, None, None).unwrap_err();
        assert_eq!(
            err,
            ResolveError::DataLoss {
                topic: "events".into(),
                partition: 1,
                requested: 10,
                log_start: 40
            }
        );
        assert!(
            err.to_string()
                .contains("events/1: starting offset 10 is below the log start 40")
        );
        b.fail_on_data_loss = false;
        let r = resolve("events", &WATERMARKS, &b, None, None).unwrap();
        assert_eq!(r.ranges[1], range(1, 40, 60));
        assert_eq!(r.lost[0].skipped(), 30);
    }

    #[test]
    fn offsets_beyond_the_end_or_inverted_are_refused() {
        let b = bounds("earliest", r#"{"events":{"0":101,"1":-1}}"#);
        assert!(matches!(
            resolve("events", &WATERMARKS, &b, None, None),
            Err(ResolveError::BeyondEnd { partition: 0, .. })
        ));
        let b = bounds(
            r#"{"events":{"0":50,"1":-2}}"#,
            r#"{"events":{"0":10,"1":-1}}"#,
        );
        assert!(matches!(
            resolve("events", &WATERMARKS, &b, None, None),
            Err(ResolveError::Inverted {
                start: 50,
                end: 10,
                ..
            })
        ));
    }

    #[test]
    fn json_offsets_must_name_every_partition_and_only_real_ones() {
        let b = bounds(r#"{"events":{"0":5}}"#, "latest");
        let err = resolve("events", &WATERMARKS, &b, None, None).unwrap_err();
        assert!(err.to_string().contains("missing: 1"), "{err}");
        let b = bounds(r#"{"events":{"0":5,"1":-2,"7":0}}"#, "latest");
        let err = resolve("events", &WATERMARKS, &b, None, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("no partition 7 (partitions: 0, 1)"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_map_through_offsets_for_times() {
        let b = ReadBounds {
            starting_timestamp: Some(1_000),
            ending_timestamp: Some(2_000),
            ..ReadBounds::default()
        };
        let start: BTreeMap<i32, Option<i64>> = [(0, Some(10)), (1, Some(45))].into();
        // Partition 1 has no record at or after the ending timestamp: read to its end.
        let end: BTreeMap<i32, Option<i64>> = [(0, Some(20)), (1, None)].into();
        let r = resolve("events", &WATERMARKS, &b, Some(&start), Some(&end)).unwrap();
        assert_eq!(r.ranges, vec![range(0, 10, 20), range(1, 45, 60)]);
        // No record at or after the starting timestamp is an error naming the partition.
        let none: BTreeMap<i32, Option<i64>> = [(0, Some(10)), (1, None)].into();
        let err = resolve("events", &WATERMARKS, &b, Some(&none), Some(&end)).unwrap_err();
        assert!(
            err.to_string()
                .contains("events/1: no record at or after starting timestamp 1000"),
            "{err}"
        );
    }

    #[test]
    fn spec_parsing_names_what_is_wrong() {
        assert_eq!(
            OffsetSpec::parse("earliest", "events"),
            Ok(OffsetSpec::Earliest)
        );
        assert!(
            OffsetSpec::parse(r#"{"games":{"0":1}}"#, "events")
                .unwrap_err()
                .contains("names topic games")
        );
        assert!(
            OffsetSpec::parse(r#"{"events":{"x":1}}"#, "events")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            OffsetSpec::parse(r#"{"events":{"0":-3}}"#, "events")
                .unwrap_err()
                .contains("not valid")
        );
        assert!(
            OffsetSpec::parse("soonest", "events")
                .unwrap_err()
                .contains("expected earliest, latest or JSON")
        );
    }

    #[test]
    fn batch_reads_refuse_what_spark_refuses() {
        assert!(
            ReadBounds {
                starting: OffsetSpec::Latest,
                ..ReadBounds::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            ReadBounds {
                ending: OffsetSpec::Earliest,
                ..ReadBounds::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            bounds(r#"{"events":{"0":-1}}"#, "latest")
                .validate()
                .is_err()
        );
        assert!(
            bounds("earliest", r#"{"events":{"0":-2}}"#)
                .validate()
                .is_err()
        );
        assert!(ReadBounds::default().validate().is_ok());
    }

    #[test]
    fn an_incremental_run_resumes_where_the_table_ended_and_new_partitions_start_earliest() {
        let resume = |committed: &[(i32, i64)], fail_on_data_loss| ReadBounds {
            starting: OffsetSpec::Resume(committed.iter().copied().collect()),
            fail_on_data_loss,
            ..ReadBounds::default()
        };
        let resolved =
            resolve("events", &WATERMARKS, &resume(&[(0, 70)], true), None, None).unwrap();
        assert_eq!(resolved.ranges, vec![range(0, 70, 100), range(1, 40, 60)]);
        // Caught up: empty ranges, nothing to read.
        let done = resolve(
            "events",
            &WATERMARKS,
            &resume(&[(0, 100), (1, 60)], true),
            None,
            None,
        )
        .unwrap();
        assert_eq!(done.ranges, vec![range(0, 100, 100), range(1, 60, 60)]);
        // Retention deleted offsets the table has not read yet.
        let err =
            resolve("events", &WATERMARKS, &resume(&[(1, 10)], true), None, None).unwrap_err();
        assert!(
            matches!(
                err,
                ResolveError::DataLoss {
                    partition: 1,
                    requested: 10,
                    log_start: 40,
                    ..
                }
            ),
            "{err}"
        );
        let skipped = resolve(
            "events",
            &WATERMARKS,
            &resume(&[(1, 10)], false),
            None,
            None,
        )
        .unwrap();
        assert_eq!(skipped.lost[0].skipped(), 30);
        // The table holds offsets the topic never had (recreated topic).
        let err = resolve(
            "events",
            &WATERMARKS,
            &resume(&[(0, 500)], true),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, ResolveError::BeyondEnd { partition: 0, .. }),
            "{err}"
        );
        let err = resolve("events", &WATERMARKS, &resume(&[(7, 1)], true), None, None).unwrap_err();
        assert!(
            matches!(err, ResolveError::UnknownPartition { partition: 7, .. }),
            "{err}"
        );
    }
}

/// Which ranges of a read still wait for data. Offsets are not always consecutive (transaction
/// markers, aborted records under `read_committed`, compaction), so a range is drained either
/// by a message at or past its last offset or by the consumer's position reaching its end;
/// never by waiting for `offset == end - 1`.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    remaining: BTreeMap<i32, OffsetRange>,
}

/// What to do with a message the consumer delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The message is inside its range: hand it on.
    pub keep: bool,
    /// Its partition is drained now.
    pub drained: bool,
}

impl Drain {
    /// Tracks the non-empty `ranges`.
    pub fn new(ranges: &[OffsetRange]) -> Self {
        Drain {
            remaining: ranges
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| (r.partition, *r))
                .collect(),
        }
    }

    /// True once every range is drained.
    pub fn is_done(&self) -> bool {
        self.remaining.is_empty()
    }

    /// The ranges still waiting, in partition order.
    pub fn remaining(&self) -> impl Iterator<Item = &OffsetRange> {
        self.remaining.values()
    }

    /// A message of `partition` at `offset` arrived.
    pub fn on_message(&mut self, partition: i32, offset: i64) -> Delivered {
        let Some(range) = self.remaining.get(&partition) else {
            // A drained (or unrequested) partition: anything more is beyond the snapshot.
            return Delivered {
                keep: false,
                drained: false,
            };
        };
        let keep = offset >= range.start && offset < range.end;
        let drained = range.is_done_after(offset);
        if drained {
            self.remaining.remove(&partition);
        }
        Delivered { keep, drained }
    }

    /// The consumer's position (next offset to fetch) of `partition`; true if that drained it.
    pub fn on_position(&mut self, partition: i32, position: i64) -> bool {
        let drained = self
            .remaining
            .get(&partition)
            .is_some_and(|r| position >= r.end);
        if drained {
            self.remaining.remove(&partition);
        }
        drained
    }
}

#[cfg(test)]
mod drain_tests {
    use super::*;

    #[test]
    fn reader_stops_at_snapshot_end_despite_offset_gaps() {
        // Offsets 0-2 committed, 3 a commit marker, 4-5 aborted, 6 a marker, 7 committed,
        // 8 a marker: a read_committed consumer delivers 0, 1, 2 and 7 only; the end is 9.
        let mut drain = Drain::new(&[OffsetRange {
            partition: 0,
            start: 0,
            end: 9,
        }]);
        for offset in [0, 1, 2, 7] {
            assert_eq!(
                drain.on_message(0, offset),
                Delivered {
                    keep: true,
                    drained: false
                }
            );
        }
        assert!(!drain.is_done(), "offset 8 never comes");
        assert!(!drain.on_position(0, 8));
        assert!(
            drain.on_position(0, 9),
            "the position passes the last marker"
        );
        assert!(drain.is_done());
    }

    #[test]
    fn a_message_at_or_past_the_last_offset_drains_and_later_ones_are_dropped() {
        let mut drain = Drain::new(&[
            OffsetRange {
                partition: 0,
                start: 10,
                end: 20,
            },
            OffsetRange {
                partition: 1,
                start: 0,
                end: 5,
            },
            OffsetRange {
                partition: 2,
                start: 3,
                end: 3,
            },
        ]);
        assert_eq!(
            drain.remaining().count(),
            2,
            "empty ranges are done before reading"
        );
        assert_eq!(
            drain.on_message(0, 19),
            Delivered {
                keep: true,
                drained: true
            }
        );
        assert_eq!(
            drain.on_message(0, 20),
            Delivered {
                keep: false,
                drained: false
            }
        );
        // A compacted tail: 4 is gone, 6 arrives (beyond the snapshot) and still ends the range.
        assert_eq!(
            drain.on_message(1, 3),
            Delivered {
                keep: true,
                drained: false
            }
        );
        assert_eq!(
            drain.on_message(1, 6),
            Delivered {
                keep: false,
                drained: true
            }
        );
        assert!(drain.is_done());
    }
}
