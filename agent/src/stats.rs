//! Counters since start, shared by the pipeline's tasks (atomics; no locks).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the agent started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sources the reconciler has looked at (distinct reconciles that found a source).
    pub seen: AtomicU64,
    /// Jobs started.
    pub started: AtomicU64,
    /// Jobs that published their output.
    pub converted: AtomicU64,
    /// Jobs that failed for good.
    pub failed: AtomicU64,
    /// Attempts that failed and were scheduled again.
    pub retried: AtomicU64,
    /// Jobs cancelled (source deleted or changed).
    pub cancelled: AtomicU64,
    /// Sources whose output name another source holds.
    pub conflicts: AtomicU64,
    /// Sources skipped by `--once` because they were not ready yet.
    pub not_ready: AtomicU64,
    /// Bytes read from converted sources.
    pub bytes_in: AtomicU64,
    /// Bytes written to published outputs.
    pub bytes_out: AtomicU64,
    /// Jobs that published caption sidecars.
    pub captions_extracted: AtomicU64,
    /// Jobs whose recording had no captions.
    pub no_captions: AtomicU64,
    /// Jobs that published without some of their source's captions (each with a warning).
    pub captions_lost: AtomicU64,
    /// Media milliseconds converted.
    pub media_ms: AtomicU64,
    /// Wall milliseconds spent converting.
    pub wall_ms: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// See [`Stats::seen`].
    pub seen: u64,
    /// See [`Stats::started`].
    pub started: u64,
    /// See [`Stats::converted`].
    pub converted: u64,
    /// See [`Stats::failed`].
    pub failed: u64,
    /// See [`Stats::retried`].
    pub retried: u64,
    /// See [`Stats::cancelled`].
    pub cancelled: u64,
    /// See [`Stats::conflicts`].
    pub conflicts: u64,
    /// See [`Stats::not_ready`].
    pub not_ready: u64,
    /// See [`Stats::bytes_in`].
    pub bytes_in: u64,
    /// See [`Stats::bytes_out`].
    pub bytes_out: u64,
    /// See [`Stats::captions_extracted`].
    pub captions_extracted: u64,
    /// See [`Stats::no_captions`].
    pub no_captions: u64,
    /// See [`Stats::captions_lost`].
    pub captions_lost: u64,
    /// Media seconds converted per wall second, over the successful jobs (0 before any).
    pub mean_speed: f64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            seen: get(&self.seen),
            started: get(&self.started),
            converted: get(&self.converted),
            failed: get(&self.failed),
            retried: get(&self.retried),
            cancelled: get(&self.cancelled),
            conflicts: get(&self.conflicts),
            not_ready: get(&self.not_ready),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            captions_extracted: get(&self.captions_extracted),
            no_captions: get(&self.no_captions),
            captions_lost: get(&self.captions_lost),
            mean_speed: match get(&self.wall_ms) {
                0 => 0.0,
                wall => get(&self.media_ms) as f64 / wall as f64,
            },
        }
    }
}
