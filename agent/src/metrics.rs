//! The agent's metrics, as OpenTelemetry instruments: exported over OTLP and served to
//! Prometheus by `h264-telemetry` when configured, no-ops otherwise.
//!
//! | instrument | kind | Prometheus name |
//! |------------|------|-----------------|
//! | `h264_jobs` | counter, label `outcome` | `h264_jobs_total` |
//! | `h264_job_duration` (s) | histogram, label `outcome` | `h264_job_duration_seconds` |
//! | `h264_input` (By) | counter | `h264_input_bytes_total` |
//! | `h264_output` (By) | counter | `h264_output_bytes_total` |
//! | `h264_queue_depth` | gauge | `h264_queue_depth` |
//! | `h264_jobs_running` | gauge | `h264_jobs_running` |
//! | `h264_jobs_waiting` | gauge | `h264_jobs_waiting` |
//! | `h264_disk_free` (By) | gauge, label `volume` | `h264_disk_free_bytes` |
//! | `h264_disk_total` (By) | gauge, label `volume` | `h264_disk_total_bytes` |
//! | `h264_alert_queue_depth` | gauge | `h264_alert_queue_depth` |
//!
//! (`h264_telemetry_spans_dropped`, the spans a slow or unreachable collector cost, comes from
//! `h264-telemetry` itself.)
//!
//! # Concurrency
//! The counters and the histogram ([`JobMetrics`]) are recorded by the job tasks as their jobs
//! end; the SDK's instruments are safe to share between threads and never block on export. The gauges are
//! observed by callbacks that the SDK runs on whichever thread collects (a Prometheus scrape, the
//! periodic OTLP export): they read what the control API's `Stats` reads (the queue, the job map,
//! the disk guard's last reading, the alert queue), each under its own short-held
//! `std::sync::Mutex`, never across an `.await`. The callbacks hold only a `Weak<Observed>`, so the
//! meter provider, which outlives [`crate::run()`], never keeps the agent's state alive; once
//! the run is over they observe nothing.

use std::sync::{Arc, Weak};

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::disk::DiskGuard;
use crate::key::SourceKey;
use crate::notify::Notifier;
use crate::pipeline::{Jobs, Phase};
use crate::queue::WorkQueue;

pub use crate::pipeline::metrics::{JobMetrics, METER};

/// What the gauges read: the agent's handles, held by [`crate::run()`] as long as it runs.
#[derive(Debug)]
pub struct Observed {
    /// The keys waiting for the reconciler.
    pub queue: Arc<WorkQueue<SourceKey>>,
    /// The jobs in flight.
    pub jobs: Jobs,
    /// The disk guard's last reading.
    pub disk: Arc<DiskGuard>,
    /// The alert queue.
    pub notifier: Notifier,
}

/// Registers the gauges that read `observed` when metrics are collected.
pub fn observe(observed: &Arc<Observed>, meter: &Meter) {
    let weak = Arc::downgrade(observed);
    let read = move |f: &dyn Fn(&Observed)| {
        if let Some(agent) = Weak::upgrade(&weak) {
            f(&agent);
        }
    };
    let r = read.clone();
    meter
        .u64_observable_gauge("h264_queue_depth")
        .with_description("Sources waiting for the reconciler (the control API's queue depth)")
        .with_unit("{file}")
        .with_callback(move |o| r(&|a| o.observe(a.queue.depth() as u64, &[])))
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("h264_jobs_running")
        .with_description("Jobs holding a worker: validating, transcoding, verifying, publishing")
        .with_unit("{job}")
        .with_callback(move |o| r(&|a| o.observe(jobs_in_stage(a, true), &[])))
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("h264_jobs_waiting")
        .with_description("Jobs ready to start, waiting for a worker or for intake to reopen")
        .with_unit("{job}")
        .with_callback(move |o| r(&|a| o.observe(jobs_in_stage(a, false), &[])))
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("h264_disk_free")
        .with_description("Free bytes of each volume the agent writes to, at the last check")
        .with_unit("By")
        .with_callback(move |o| {
            r(&|a| {
                for v in volumes(a) {
                    o.observe(v.free, &[KeyValue::new("volume", v.path)]);
                }
            })
        })
        .build();
    let r = read.clone();
    meter
        .u64_observable_gauge("h264_disk_total")
        .with_description("Size of each volume the agent writes to")
        .with_unit("By")
        .with_callback(move |o| {
            r(&|a| {
                for v in volumes(a) {
                    o.observe(v.total, &[KeyValue::new("volume", v.path)]);
                }
            })
        })
        .build();
    let r = read;
    meter
        .u64_observable_gauge("h264_alert_queue_depth")
        .with_description("Alert e-mails waiting in the delivery queue (dead letters included)")
        .with_unit("{message}")
        .with_callback(move |o| r(&|a| o.observe(a.notifier.queue_depth() as u64, &[])))
        .build();
}

/// Jobs past their wait for a worker (`running`), or still waiting.
fn jobs_in_stage(observed: &Observed, running: bool) -> u64 {
    observed
        .jobs
        .snapshot()
        .iter()
        .filter(|(_, job)| (job.live().stage != Phase::Waiting) == running)
        .count() as u64
}

struct VolumeReading {
    path: String,
    free: u64,
    total: u64,
}

fn volumes(observed: &Observed) -> Vec<VolumeReading> {
    observed
        .disk
        .volumes()
        .iter()
        .map(|v| VolumeReading {
            path: v.path.display().to_string(),
            free: v.free,
            total: v.total,
        })
        .collect()
}
