//! A job's trace: its stage spans and what its root `job` span says when the job ends.
//!
//! Each job is one trace: a root span `job` (`parent: None`, whatever span submitted it) with a
//! child span per stage, in this order: `readiness` (the quick checks: not empty, ffprobe reads
//! it, the programme of a multiplex, not scrambled, a video stream, whole packets, the minimum
//! duration), `probe` (the caption check, which runs beside the transcode), `transcode` (FFmpeg,
//! whose own log gives the recording's damage), `verify` (with the output's captions compared
//! cue for cue with the source's, read beside the transcode), `captions` (sidecars; with
//! FFmpeg their extraction starts beside the transcode, and the span covers what the stage adds
//! after verification) and `publish`. The wait before the job (the file being written, then
//! stable for `readiness.stable_for`) happens in the reconciler, across many looks and before the
//! job exists, so it is the `job` span's `readiness.wait_secs` rather than a span. The `job`
//! span's attributes (see `Report`) are recorded when it ends, so its log lines keep their
//! short `job{id file}` prefix. A failed stage's span gets `otel.status_code = "ERROR"` and the
//! error as `otel.status_description` (the field tracing-opentelemetry reads the status message
//! from); the transcode's span also gets `ffmpeg.stderr_tail`. So does the `job` span of a
//! failed, retried or conflicting attempt, whose final log line (an event of the `job` span)
//! says what happens next. Without a subscriber interested in them (no telemetry, a log level
//! above INFO) these spans cost next to nothing; with only the log layers, they add their names
//! to the log lines written inside a stage.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::failure::Failure;
use super::stage::Stage;
use crate::transcode::Rung;

/// A stage span of the current job (a child of its `job` span), named after its [`Stage`], with
/// the status fields a failure fills in (see [`stage`]).
macro_rules! stage_span {
    ($stage:expr $(, $($field:tt)+)?) => {
        tracing::info_span!(
            $stage.name(),
            $($($field)+,)?
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty
        )
    };
}
pub(crate) use stage_span;

/// The root span of a job: one trace per job, whatever span (a reconcile) submitted it.
pub fn job_span(id: u64, file: &dyn std::fmt::Display) -> Span {
    tracing::info_span!(
        parent: None,
        "job",
        id,
        file = %file,
        source.path = Empty,
        source.name = Empty,
        source.size_bytes = Empty,
        source.codec = Empty,
        output.path = Empty,
        output.size_bytes = Empty,
        output.codec = Empty,
        attempt = Empty,
        generation = Empty,
        mode = Empty,
        retry.rung = Empty,
        source.trimmed_bytes = Empty,
        media.duration_secs = Empty,
        duration_secs = Empty,
        speed = Empty,
        readiness.wait_secs = Empty,
        queue.wait_secs = Empty,
        outcome = Empty,
        failed.stage = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// What a job's trace says about it, gathered as it goes and recorded on its `job` span when
/// it ends.
#[derive(Debug, Default)]
pub struct Report {
    /// How long the agent had known the file when it became ready (first job only).
    pub readiness_wait: Option<Duration>,
    /// How long the job waited for a worker (and for intake to reopen).
    pub queue_wait: Option<Duration>,
    /// The attempt number (from 1).
    pub attempt: Option<u32>,
    /// The configuration generation the job ran under.
    pub generation: Option<u64>,
    /// `converted`, or the journal state a failure led to (`failed`, `retrying`, `cancelled`,
    /// `interrupted`, `conflict`); `paused` when an operator's pause stopped it before it
    /// started.
    pub outcome: Option<&'static str>,
    /// The stage a failure happened in, as the journal names it.
    pub failed_stage: Option<Stage>,
    /// The error, for a failed, retried or conflicting attempt.
    pub error: Option<String>,
    /// Bytes of the source.
    pub source_size: Option<u64>,
    /// Bytes of the published MP4.
    pub output_size: Option<u64>,
    /// The source's video codec.
    pub source_codec: Option<String>,
    /// The output's video codec, as verified.
    pub output_codec: Option<String>,
    /// `encode` or `remux`.
    pub mode: Option<&'static str>,
    /// The rung of the retry ladder the attempt ran on.
    pub rung: Option<Rung>,
    /// Bytes of a cut last packet dropped.
    pub trimmed_bytes: Option<u64>,
    /// The recording's duration in seconds.
    pub media_secs: Option<f64>,
    /// The attempt's wall time in seconds.
    pub wall_secs: Option<f64>,
    /// What the caption stage did, and whether captions of the source were lost (converted).
    pub captions: Option<(String, bool)>,
    /// Wall time per stage, in seconds (converted).
    pub stage_secs: Vec<(&'static str, f64)>,
    /// Wall time of each step of the attempt, in order, in seconds (see the `stage times` log
    /// line): `readiness`, `prepare`, `ffmpeg`, `probe_wait`, `verify`, `captions`, `publish`,
    /// and the journal's writes (`journal_start`, `journal_end`).
    pub laps: Vec<(&'static str, f64)>,
}

impl Report {
    /// The laps as `name=seconds` pairs, for the log.
    pub fn laps_text(&self) -> String {
        let pairs: Vec<String> = self
            .laps
            .iter()
            .map(|(name, secs)| format!("{name}={secs:.3}"))
            .collect();
        pairs.join(" ")
    }
}

impl Report {
    /// Records every known fact on the `job` span.
    pub fn record(&self, span: &Span, source: &Path, output: &Path) {
        span.record("source.path", tracing::field::display(source.display()));
        if let Some(name) = source.file_name() {
            span.record("source.name", name.to_string_lossy().as_ref());
        }
        span.record("output.path", tracing::field::display(output.display()));
        let secs = |d: Duration| d.as_secs_f64();
        if let Some(d) = self.readiness_wait {
            span.record("readiness.wait_secs", secs(d));
        }
        if let Some(d) = self.queue_wait {
            span.record("queue.wait_secs", secs(d));
        }
        if let Some(n) = self.attempt {
            span.record("attempt", n);
        }
        if let Some(g) = self.generation {
            span.record("generation", g);
        }
        if let Some(o) = self.outcome {
            span.record("outcome", o);
        }
        if let Some(stage) = self.failed_stage {
            span.record("failed.stage", stage.as_str());
        }
        if let Some(n) = self.source_size {
            span.record("source.size_bytes", n);
        }
        if let Some(n) = self.output_size {
            span.record("output.size_bytes", n);
        }
        if let Some(c) = &self.source_codec {
            span.record("source.codec", c.as_str());
        }
        if let Some(c) = &self.output_codec {
            span.record("output.codec", c.as_str());
        }
        if let Some(m) = self.mode {
            span.record("mode", m);
        }
        if let Some(r) = self.rung {
            span.record("retry.rung", r.as_str());
        }
        if let Some(n) = self.trimmed_bytes {
            span.record("source.trimmed_bytes", n);
        }
        if let Some(m) = self.media_secs {
            span.record("media.duration_secs", m);
        }
        if let Some(w) = self.wall_secs {
            span.record("duration_secs", w);
            if let Some(m) = self.media_secs.filter(|_| w > 0.0) {
                span.record("speed", m / w);
            }
        }
        if let Some(e) = &self.error {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", e.as_str());
        }
    }
}

/// Runs one stage of a job in `span`; a failure marks the span failed, with its message.
pub async fn stage<T>(
    span: Span,
    work: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let result = work.instrument(span.clone()).await;
    if let Err(failure) = &result {
        mark_failed(&span, failure);
    }
    result
}

/// Sets a stage span's OpenTelemetry status to ERROR with the failure's message (a cancel is
/// not an error of the stage).
pub fn mark_failed(span: &Span, failure: &Failure) {
    if let Some(message) = failure.message() {
        mark_error(span, message);
    }
}

/// Sets a span's OpenTelemetry status to ERROR with `message`.
pub fn mark_error(span: &Span, message: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", message);
}
