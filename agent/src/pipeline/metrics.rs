//! The job instruments (see [`crate::metrics`] for every instrument of the agent): recorded by
//! the job tasks as their jobs end. The SDK's instruments are safe to share between threads and
//! never block on export; without a meter they record nothing.

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;

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
