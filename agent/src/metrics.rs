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
//! The counters and the histogram are recorded by the job tasks as their jobs end; the SDK's
//! instruments are safe to share between threads and never block on export. The gauges are
//! observed by callbacks that the SDK runs on whichever thread collects (a Prometheus scrape, the
//! periodic OTLP export): they read what the control API's `Stats` reads (the queue, the job map,
//! the disk guard's last reading, the alert queue), each under its own short-held
//! `std::sync::Mutex`, never across an `.await`. The callbacks hold only a `Weak<Agent>`, so the
//! meter provider, which outlives [`crate::run`], never keeps the agent alive; once it is gone
//! they observe nothing.

use std::sync::{Arc, Weak};

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;

use crate::state::Agent;

/// The meter name of the agent's instruments.
pub const METER: &str = "h264-agent";

/// Histogram bounds of `h264_job_duration`, in seconds: from a short remux to a long encode.
const DURATION_BOUNDS: [f64; 14] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// The instruments jobs record into when they end.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    jobs: Counter<u64>,
    duration: Histogram<f64>,
    input: Counter<u64>,
    output: Counter<u64>,
}

impl Default for JobMetrics {
    /// Instruments that record nothing (no meter).
    fn default() -> Self {
        Self::new(&opentelemetry::metrics::NoopMeterProvider::new().meter(METER))
    }
}

impl JobMetrics {
    /// The job instruments of `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            jobs: meter
                .u64_counter("h264_jobs")
                .with_description(
                    "Jobs ended, by outcome: converted, failed, retrying, cancelled, interrupted, \
                     conflict",
                )
                .with_unit("{job}")
                .build(),
            duration: meter
                .f64_histogram("h264_job_duration")
                .with_description("Wall time of each job's attempt, from its start to its end")
                .with_unit("s")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            input: meter
                .u64_counter("h264_input")
                .with_description("Bytes of the recordings converted")
                .with_unit("By")
                .build(),
            output: meter
                .u64_counter("h264_output")
                .with_description("Bytes of the MP4 files published")
                .with_unit("By")
                .build(),
        }
    }

    /// Records one job's end: its outcome, how long its attempt took, and for a converted
    /// job the bytes it read and wrote.
    pub fn job_ended(&self, outcome: &'static str, secs: f64, bytes_in: u64, bytes_out: u64) {
        let labels = [KeyValue::new("outcome", outcome)];
        self.jobs.add(1, &labels);
        self.duration.record(secs, &labels);
        if bytes_in > 0 {
            self.input.add(bytes_in, &[]);
        }
        if bytes_out > 0 {
            self.output.add(bytes_out, &[]);
        }
    }
}

/// Registers the gauges that read `agent`'s state when metrics are collected.
pub fn observe(agent: &Arc<Agent>, meter: &Meter) {
    let weak = Arc::downgrade(agent);
    let read = move |f: &dyn Fn(&Agent)| {
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
        .with_callback(move |o| r(&|a| o.observe(crate::notify::queue_depth(a) as u64, &[])))
        .build();
}

/// Jobs past their wait for a worker (`running`), or still waiting.
fn jobs_in_stage(agent: &Agent, running: bool) -> u64 {
    let jobs = agent.jobs.lock().unwrap_or_else(|p| p.into_inner());
    jobs.values()
        .filter(|job| {
            let live = job.live.lock().unwrap_or_else(|p| p.into_inner());
            (live.stage != crate::job::WAITING) == running
        })
        .count() as u64
}

struct VolumeReading {
    path: String,
    free: u64,
    total: u64,
}

fn volumes(agent: &Agent) -> Vec<VolumeReading> {
    agent
        .volumes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|v| VolumeReading {
            path: v.path.display().to_string(),
            free: v.free,
            total: v.total,
        })
        .collect()
}
