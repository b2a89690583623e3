//! Progress display: the only module that knows indicatif.
//!
//! One bar per partition range while reading (position against the range's end) and a spinner
//! while writing. Everything is hidden when stderr is not a terminal or `--quiet` is given.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::source::{Message, OffsetRange};

/// Entry point for progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Visible only on a terminal and unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        Progress {
            multi: visible.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Bars for reading `ranges` of `topic`; `stage` says which pass ("scan", "decode").
    pub fn reading(&self, stage: &str, topic: &str, ranges: &[OffsetRange]) -> ReadProgress {
        let Some(multi) = &self.multi else {
            return ReadProgress::default();
        };
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{bar:30}] {human_pos}/{human_len} events, {elapsed} (eta {eta}) {msg}",
        )
        .expect("static template")
        .progress_chars("=> ");
        let bars = ranges
            .iter()
            .map(|r| {
                let bar = multi.add(ProgressBar::new(r.len()).with_style(style.clone()));
                bar.set_prefix(format!("{stage} {topic}/{}", r.partition));
                (r.partition, (bar, r.start))
            })
            .collect();
        ReadProgress {
            bars: Some(Arc::new(bars)),
        }
    }

    /// A spinner with `message`, e.g. while writing a table.
    pub fn spinner(&self, message: String) -> Spinner {
        let Some(multi) = &self.multi else {
            return Spinner(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos}").expect("static template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }
}

/// Per-partition read bars; cheap to clone into reader threads.
#[derive(Debug, Clone, Default)]
pub struct ReadProgress {
    bars: Option<Arc<HashMap<i32, (ProgressBar, i64)>>>,
}

impl ReadProgress {
    /// Records that `partition` has read up to and including `offset`.
    pub fn advance(&self, partition: i32, offset: i64) {
        if let Some((bar, start)) = self.bars.as_ref().and_then(|b| b.get(&partition)) {
            bar.set_position(u64::try_from(offset + 1 - start).unwrap_or(0));
        }
    }

    /// Records a batch that may mix partitions (Kafka interleaves them).
    pub fn advance_batch(&self, batch: &[Message]) {
        if self.bars.is_none() {
            return;
        }
        let mut last: Vec<(i32, i64)> = Vec::new();
        for message in batch {
            match last.iter_mut().find(|(p, _)| *p == message.partition) {
                Some((_, offset)) => *offset = (*offset).max(message.offset),
                None => last.push((message.partition, message.offset)),
            }
        }
        for (partition, offset) in last {
            self.advance(partition, offset);
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        for (bar, _) in self.bars.iter().flat_map(|b| b.values()) {
            bar.finish_and_clear();
        }
    }
}

/// A spinner counting rows.
#[derive(Debug, Clone)]
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Adds `rows` to the count.
    pub fn add_rows(&self, rows: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(rows);
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
