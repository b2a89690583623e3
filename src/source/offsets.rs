//! Offset ranges: the closed set of half-open `[start, end)` ranges a bounded read covers.

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
