//! A conversion job: validate -> transcode -> verify -> publish -> dispose, on the bounded worker
//! pool, with retries.
//!
//! # Theory of operation
//! [`submit`] registers the job in `Agent::jobs` (so a key never has two) and spawns it on the
//! agent's `TaskTracker`. The job waits for a worker permit, then runs one attempt while a
//! monitor checks the source once a second: a deleted or rewritten source cancels the attempt.
//! The outcome is written to the journal before the job leaves `Agent::jobs`; a retry is a
//! delayed requeue of the key, so the reconciler decides again with fresh facts.
//!
//! # Trace
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
//!
//! # Retries
//! A transient failure is retried on the same rung of the retry ladder after a backoff, up to
//! `transcode.max_attempts`. A decode or timestamp failure (`Failure::Damaged`: FFmpeg blamed
//! the input, or verification found the output's video or audio not as long as the source's)
//! is retried at once one rung up (`transcode::Rung`), whatever `max_attempts` says, and is final
//! on the last rung. The journal keeps the rung of each attempt and the rung the next one starts
//! on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::captions::CaptionError;
use crate::child::RunError;
use crate::journal::{Completed, JobState};
use crate::key::{Fingerprint, SourceKey};
use crate::progress::ProgressFile;
use crate::publish::{commit, temp_path, verify, VerifyError};
use crate::readiness::Trim;
use crate::readiness::{validate, validate_deep};
use crate::state::{Agent, CancelReason, JobEvent, JobHandle, Live, Pipeline};
use crate::stats::Stats;
use crate::transcode::{arguments_for, plan_on, Input, Plan, Rung, TranscodeError};

/// `Live::stage` of a job waiting for a worker (or for intake to reopen).
pub const WAITING: &str = "waiting";

/// A stage span of the current job (a child of its `job` span), with the status fields a
/// failure fills in (see [`stage`]).
macro_rules! stage_span {
    ($name:literal $(, $($field:tt)+)?) => {
        tracing::info_span!(
            $name,
            $($($field)+,)?
            otel.status_code = Empty,
            otel.status_description = Empty
        )
    };
}

/// How an attempt ended, when it did not publish.
#[derive(Debug)]
enum Failure {
    /// Not worth retrying: the input is invalid or corrupt.
    Permanent {
        stage: &'static str,
        message: String,
    },
    /// Might work next time.
    Transient {
        stage: &'static str,
        message: String,
    },
    /// Decode or timestamp errors: the next attempt climbs the retry ladder, if a rung is left.
    Damaged {
        stage: &'static str,
        message: String,
    },
    /// Stopped by a cancel (shutdown, or the source was deleted or changed).
    Cancelled,
    /// The output name was taken meanwhile by a file this job must not replace.
    Conflict(String),
}

/// What a job's trace says about it, gathered as it goes and recorded on its `job` span when
/// it ends.
#[derive(Debug, Default)]
struct Report {
    /// How long the agent had known the file when it became ready (first job only).
    readiness_wait: Option<Duration>,
    /// How long the job waited for a worker (and for intake to reopen).
    queue_wait: Option<Duration>,
    /// The attempt number (from 1).
    attempt: Option<u32>,
    /// The configuration generation the job ran under.
    generation: Option<u64>,
    /// `converted`, or the journal state a failure led to (`failed`, `retrying`, `cancelled`,
    /// `interrupted`, `conflict`); `paused` when an operator's pause stopped it before it
    /// started.
    outcome: Option<&'static str>,
    /// The stage a failure happened in, as the journal names it.
    failed_stage: Option<&'static str>,
    /// The error, for a failed, retried or conflicting attempt.
    error: Option<String>,
    /// Bytes of the source.
    source_size: Option<u64>,
    /// Bytes of the published MP4.
    output_size: Option<u64>,
    /// The source's video codec.
    source_codec: Option<String>,
    /// The output's video codec, as verified.
    output_codec: Option<String>,
    /// `encode` or `remux`.
    mode: Option<&'static str>,
    /// The rung of the retry ladder the attempt ran on.
    rung: Option<Rung>,
    /// Bytes of a cut last packet dropped.
    trimmed_bytes: Option<u64>,
    /// The recording's duration in seconds.
    media_secs: Option<f64>,
    /// The attempt's wall time in seconds.
    wall_secs: Option<f64>,
}

impl Report {
    /// Records every known fact on the `job` span.
    fn record(&self, span: &Span, source: &Path, output: &Path) {
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
            span.record("failed.stage", stage);
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
async fn stage<T>(
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
fn mark_failed(span: &Span, failure: &Failure) {
    let message = match failure {
        Failure::Permanent { message, .. }
        | Failure::Transient { message, .. }
        | Failure::Damaged { message, .. } => message,
        Failure::Conflict(message) => message,
        Failure::Cancelled => return,
    };
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", message.as_str());
}

/// Starts a job for `key` unless one is in flight. `readiness_wait`: how long the agent had
/// known the file when it became ready, for the job's trace.
pub fn submit(
    agent: &Arc<Agent>,
    key: SourceKey,
    fp: Fingerprint,
    output: PathBuf,
    replace: bool,
    readiness_wait: Option<Duration>,
) {
    let handle = JobHandle {
        cancel: agent.shutdown.child_token(),
        reason: Arc::new(Mutex::new(None)),
        fingerprint: fp,
        live: Arc::new(Mutex::new(Live {
            stage: WAITING.into(),
            ..Live::default()
        })),
    };
    {
        let mut jobs = agent.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.contains_key(&key) {
            return;
        }
        jobs.insert(key.clone(), handle.clone());
    }
    let tracker = agent.tracker.clone();
    let agent = agent.clone();
    let id = agent
        .next_job_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    // A root: one trace per job, whatever span (a reconcile) submitted it.
    let span = tracing::info_span!(
        parent: None,
        "job",
        id,
        file = %key,
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
    );
    let job_span = span.clone();
    let job = async move {
        let mut report = Report {
            readiness_wait,
            ..Report::default()
        };
        let requeue = run(&agent, &key, fp, &output, replace, &handle, &mut report).await;
        // Leave the map first: a reconcile that sees the job still in flight does nothing.
        agent
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if let Some(delay) = requeue {
            agent.queue.add_after(key.clone(), delay);
        }
        report.record(&job_span, &key.path(), &output);
    };
    tracker.spawn(job.instrument(span));
}

async fn run(
    agent: &Arc<Agent>,
    key: &SourceKey,
    fp: Fingerprint,
    output: &Path,
    replace: bool,
    handle: &JobHandle,
    report: &mut Report,
) -> Option<Duration> {
    let queued = Instant::now();
    let Some(_permit) = wait_for_start(agent, &handle.cancel).await else {
        let reason = *handle.reason.lock().unwrap_or_else(|p| p.into_inner());
        report.outcome = Some(match reason {
            Some(CancelReason::Paused) => "paused",
            Some(_) => "cancelled",
            None => "interrupted",
        });
        // Cancelled while waiting by a pause: queued again, it waits for the resume.
        return (reason == Some(CancelReason::Paused)).then_some(Duration::ZERO);
    };
    report.queue_wait = Some(queued.elapsed());
    // The pipeline in force now: the job keeps it to the end, whatever revision comes next.
    let pipeline = agent.pipeline();
    let p = &*pipeline;
    report.generation = Some(p.generation);
    let (attempt, rung) = match agent.journal.start(key, &fp, &p.spec_hash, output) {
        Ok(started) => (started.attempt, Rung::at(started.rung)),
        Err(e) => {
            tracing::error!(source = %key, error = %e, "cannot record the job start; will retry");
            return Some(Duration::from_secs(10));
        }
    };
    Stats::bump(&agent.stats.started);
    report.attempt = Some(attempt);
    report.rung = Some(rung);
    handle
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .attempt = attempt;
    let source = key.path();
    tracing::info!(
        source = %source.display(), output = %output.display(), attempt, rung = rung.as_str(),
        "job started"
    );
    let program = agent.root_of(key).and_then(|r| r.cfg.program.clone());
    let started = Instant::now();
    let result = {
        let attempt = Attempt {
            p,
            key,
            source: &source,
            output,
            replace,
            rung,
            program: program.as_ref(),
        };
        let work = attempt_once(attempt, handle, &mut *report);
        tokio::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    if let Some(reason) = source_moved(&source, &fp) {
                        handle.cancel_for(reason);
                    }
                }
            }
        }
    };
    let temp = temp_path(output);
    let wall_secs = started.elapsed().as_secs_f64();
    report.wall_secs = Some(wall_secs);
    let requeue = match result {
        Ok((mut done, warnings)) => {
            done.wall_secs = wall_secs;
            // Before the disposition: shadow work links the source first (module shadow).
            agent.shadow.offer(&crate::shadow::Production {
                file: &key.to_string(),
                source: &source,
                output,
                encode_secs: done.transcode_secs,
                generation: p.generation,
            });
            finish_success(agent, key, &source, output, attempt, rung, &done, &warnings);
            let note = match rung {
                Rung::Standard => String::new(),
                r => format!("converted on rung {}", r.as_str()),
            };
            let event = JobEvent::now("converted", &source, "publish", &note, p.generation);
            agent.emit(event);
            report.outcome = Some("converted");
            report.output_size = Some(done.bytes_out);
            agent
                .metrics
                .job_ended("converted", wall_secs, done.bytes_in, done.bytes_out);
            None
        }
        Err(failure) => {
            let _ = std::fs::remove_file(&temp);
            let formats = &p.config.captions.formats;
            crate::captions::remove_temps(&crate::captions::sidecars(output, formats));
            let reason = *handle.reason.lock().unwrap_or_else(|p| p.into_inner());
            let requeue = finish_failure(
                agent, p, key, &source, attempt, rung, failure, reason, report,
            );
            let outcome = report.outcome.unwrap_or("failed");
            agent.metrics.job_ended(outcome, wall_secs, 0, 0);
            requeue
        }
    };
    requeue
}

/// Waits until intake is open (no manual pause, disk guard satisfied) and a worker is free;
/// `None` when the job is cancelled meanwhile.
async fn wait_for_start(
    agent: &Agent,
    cancel: &CancellationToken,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    loop {
        if !agent.once {
            tokio::select! {
                _ = agent.intake.wait_open() => {}
                _ = cancel.cancelled() => return None,
            }
        }
        let permit = tokio::select! {
            p = agent.workers.clone().acquire_owned() => p.ok()?,
            _ = cancel.cancelled() => return None,
        };
        if agent.once {
            return Some(permit);
        }
        let disk_ok = crate::disk::check_now(agent);
        if disk_ok && agent.intake.hold().is_open() {
            return Some(permit);
        }
    }
}

/// Gives one verified temporary file its final name.
fn publish_one(temp: &Path, path: &Path, replace: bool, key: &SourceKey) -> Result<(), Failure> {
    match commit(temp, path, replace) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::Conflict(format!(
            "{} appeared while {} was converting and is not replaced",
            path.display(),
            key
        ))),
        Err(e) => Err(Failure::Transient {
            stage: "publish",
            message: format!("cannot publish {}: {e}", path.display()),
        }),
    }
}

/// Whether the source is gone or rewritten since the job started.
fn source_moved(source: &Path, fp: &Fingerprint) -> Option<CancelReason> {
    match std::fs::metadata(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(CancelReason::SourceDeleted),
        Ok(meta) => {
            let now = Fingerprint::of(&meta);
            if now.inode != fp.inode {
                Some(CancelReason::SourceDeleted)
            } else if now != *fp {
                Some(CancelReason::SourceChanged)
            } else {
                None
            }
        }
        Err(_) => None,
    }
}

/// What one attempt works on.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    /// The pipeline in force when it started.
    p: &'a Pipeline,
    key: &'a SourceKey,
    source: &'a Path,
    output: &'a Path,
    /// Whether an existing output may be replaced.
    replace: bool,
    /// The rung of the retry ladder it runs on.
    rung: Rung,
    /// The programme of a multiplex its watch root asks for.
    program: Option<&'a h264_config::agent::Program>,
}

/// A published conversion, and the warnings about how it went (for the log and the alert).
type Done = (Completed, Vec<String>);

async fn attempt_once(
    attempt: Attempt<'_>,
    handle: &JobHandle,
    report: &mut Report,
) -> Result<Done, Failure> {
    let Attempt {
        p,
        key,
        source,
        output,
        replace,
        rung,
        program,
    } = attempt;
    let mut warnings: Vec<String> = Vec::new();
    let cancel = &handle.cancel;
    let cfg = &p.config.transcode;
    let readiness = &p.config.readiness;
    let mut progress = ProgressFile::new(output, source, handle.live.clone());
    let result = async {
        progress.update("validate", 0.0, 0.0, 0.0, 0.0, true);
        report.source_size = std::fs::metadata(source).ok().map(|m| m.len());
        let span = stage_span!(
            "readiness",
            format = Empty,
            video.codec = Empty,
            video.width = Empty,
            video.height = Empty,
            video.interlaced = Empty,
            audio.streams = Empty,
            media.duration_secs = Empty,
            container.duration_secs = Empty,
            program = Empty,
            source.trimmed_bytes = Empty
        );
        let ready = stage(span, async {
            match validate(&cfg.ffprobe, source, readiness, program, cancel).await {
                Ok(Ok(ready)) => {
                    let info = &ready.info;
                    let span = Span::current();
                    span.record("format", info.format_name.as_str());
                    if let Some(v) = &info.video {
                        span.record("video.codec", v.codec.as_str());
                        span.record("video.width", v.width);
                        span.record("video.height", v.height);
                        span.record("video.interlaced", v.is_interlaced());
                    }
                    span.record("audio.streams", info.audio.len());
                    span.record("media.duration_secs", info.video_secs());
                    span.record("container.duration_secs", info.duration);
                    if let Some(programme) = &info.program {
                        span.record("program", programme.to_string().as_str());
                    }
                    if let Some(trim) = &ready.trim {
                        span.record("source.trimmed_bytes", trim.dropped);
                        tracing::warn!(source = %source.display(), "{}", trim.warning());
                    }
                    Ok(ready)
                }
                Ok(Err(invalid)) => Err(Failure::Permanent {
                    stage: "validate",
                    message: invalid.0,
                }),
                Err(RunError::Cancelled { .. }) => Err(Failure::Cancelled),
                Err(e) => Err(Failure::Transient {
                    stage: "validate",
                    message: e.to_string(),
                }),
            }
        })
        .await?;
        let crate::readiness::Ready { mut info, trim } = ready;
        if let Some(trim) = &trim {
            warnings.push(trim.warning());
            report.trimmed_bytes = Some(trim.dropped);
        }
        report.source_codec = info.video.as_ref().map(|v| v.codec.clone());
        report.media_secs = Some(info.video_secs());
        // Where the source's captions are (a c608 track or the video), and their reading beside
        // the transcode, for the cue-for-cue check of the output and the sidecars' cross-check.
        let caption_plan = match crate::captions::plan(
            &cfg.ffprobe,
            source,
            readiness.probe_timeout.get(),
            cancel,
        )
        .await
        {
            Ok(plan) => plan,
            Err(RunError::Cancelled { .. }) => return Err(Failure::Cancelled),
            Err(e) => {
                return Err(Failure::Transient {
                    stage: "validate",
                    message: e.to_string(),
                })
            }
        };
        // Read at once when the output will be compared with it (a re-encode, a caption track),
        // else only if an extractor finds no captions and the cross-check needs it.
        let plan = plan_on(&info, cfg, rung);
        let check_captions =
            crate::captions::checks_output(&caption_plan, matches!(plan, Plan::Encode { .. }));
        let (mut source_captions, _source_captions_task) = crate::captions::read_source_beside(
            cfg.ffprobe.clone(),
            source.to_path_buf(),
            caption_plan.clone(),
            readiness.probe_timeout.get(),
            crate::captions::read_limit(info.video_secs(), cfg.stall_timeout.get()),
            check_captions,
            cancel.clone(),
        );
        // The caption check runs beside the transcode; its verdict is awaited before
        // verification. The recording's damage comes from the transcode's own log.
        let deep = {
            let ffprobe = cfg.ffprobe.clone();
            let (source, info, readiness, cancel) = (
                source.to_path_buf(),
                info.clone(),
                readiness.clone(),
                cancel.clone(),
            );
            let span = stage_span!("probe", captions.found = Empty);
            let check = async move {
                let verdict = validate_deep(&ffprobe, &source, &info, &readiness, &cancel).await;
                let span = Span::current();
                match &verdict {
                    Ok(has_captions) => {
                        span.record("captions.found", *has_captions);
                    }
                    Err(RunError::Cancelled { .. }) => {}
                    Err(e) => {
                        span.record("otel.status_code", "ERROR");
                        span.record("otel.status_description", e.to_string().as_str());
                    }
                }
                verdict
            };
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(check.instrument(span)))
        };
        report.mode = Some(plan.mode());
        let temp = temp_path(output);
        if let Some(parent) = output.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Failure::Transient {
                stage: "transcode",
                message: format!("cannot create the output folder {}: {e}", parent.display()),
            })?;
        }
        let _ = std::fs::remove_file(&temp);
        let captions = &p.config.captions;
        // With FFmpeg, sidecars come from the source while it transcodes (their times count from
        // the first video frame either way), so the caption stage adds little wall time. The
        // task is aborted, its FFmpeg killed, if the attempt ends early. From one programme of a
        // multiplex, they come from the output instead (it holds that programme's video only).
        let early_captions = (crate::captions::runs_beside_transcode(captions, &caption_plan)
            && info.program.is_none())
        .then(|| {
            let (captions, ffmpeg) = (captions.clone(), cfg.ffmpeg.clone());
            let (source, output, cancel) =
                (source.to_path_buf(), output.to_path_buf(), cancel.clone());
            let (plan, format_name) = (caption_plan.clone(), info.format_name.clone());
            let mut reading = source_captions.clone();
            let extract = async move {
                let started = Instant::now();
                let job = crate::captions::Job {
                    ffmpeg: &ffmpeg,
                    source: &source,
                    format_name: &format_name,
                    plan: &plan,
                    output: &output,
                    mp4: None,
                };
                let result = crate::captions::extract(&captions, job, &mut reading, &cancel).await;
                (result, started.elapsed().as_secs_f64())
            };
            // In the job's span, so that its log lines carry the job's id and file.
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                extract.instrument(Span::current()),
            ))
        });
        let input = Input {
            path: source,
            end: trim.as_ref().map(|t: &Trim| t.keep),
            program: info.program.as_ref().map(|p| p.number),
        };
        let args = crate::captions::output_arguments(
            arguments_for(&input, &temp, plan, cfg, rung),
            &caption_plan,
            matches!(plan, Plan::Encode { .. }),
        );
        let total = info.video_secs();
        let transcode_started = Instant::now();
        let span = stage_span!(
            "transcode",
            mode = plan.mode(),
            retry.rung = rung.as_str(),
            damage.reports = Empty,
            deinterlace = matches!(plan, Plan::Encode { deinterlace: true }),
            media.duration_secs = total,
            duration_secs = Empty,
            speed = Empty,
            ffmpeg.speed = Empty,
            ffmpeg.fps = Empty,
            ffmpeg.exit_status = Empty,
            ffmpeg.stderr_tail = Empty
        );
        stage(span, async {
            tracing::debug!(source = %key, ?args, mode = plan.mode(), "starting FFmpeg");
            let (mut ffmpeg_speed, mut ffmpeg_fps) = (0.0, 0.0);
            let stall = cfg.stall_timeout.get();
            let ffmpeg = crate::transcode::run_counting(&cfg.ffmpeg, &args, stall, cancel, |p| {
                if p.speed > 0.0 {
                    (ffmpeg_speed, ffmpeg_fps) = (p.speed, p.fps);
                }
                progress.update(
                    "transcode",
                    p.out_time.as_secs_f64(),
                    total,
                    p.fps,
                    p.speed,
                    false,
                );
            });
            let result = ffmpeg.await;
            let span = Span::current();
            let wall = transcode_started.elapsed().as_secs_f64();
            span.record("duration_secs", wall);
            if wall > 0.0 {
                span.record("speed", total / wall);
            }
            span.record("ffmpeg.speed", ffmpeg_speed);
            span.record("ffmpeg.fps", ffmpeg_fps);
            match &result {
                Err(TranscodeError::Failed { status, tail, .. }) => {
                    span.record("ffmpeg.exit_status", tracing::field::display(status));
                    span.record("ffmpeg.stderr_tail", tail.as_str());
                }
                Err(TranscodeError::Stalled { tail, .. }) => {
                    span.record("ffmpeg.stderr_tail", tail.as_str());
                }
                _ => {}
            }
            match result {
                Ok(damage) => {
                    span.record("damage.reports", damage.count());
                    let tolerance = readiness.max_decode_errors;
                    if damage.count() > tolerance {
                        // Refused as invalid input, like the quick checks' refusals.
                        return Err(Failure::Permanent {
                            stage: "validate",
                            message: format!(
                                "corrupt: {} damage reports from the demuxer and decoders \
                                 (tolerance readiness.max_decode_errors = {tolerance}), e.g. {}",
                                damage.count(),
                                damage.sample()
                            ),
                        });
                    }
                    if damage.count() > 0 {
                        tracing::info!(
                            source = %key, reports = damage.count(), sample = %damage.sample(),
                            "damage within the tolerance"
                        );
                    }
                    Ok(())
                }
                Err(TranscodeError::Cancelled) => Err(Failure::Cancelled),
                Err(
                    e @ TranscodeError::Failed {
                        corrupt_input: true,
                        ..
                    },
                ) => Err(Failure::Damaged {
                    stage: "transcode",
                    message: e.to_string(),
                }),
                Err(e) => Err(Failure::Transient {
                    stage: "transcode",
                    message: e.to_string(),
                }),
            }
        })
        .await?;
        let deep = deep.await.unwrap_or(Err(RunError::Cancelled {
            program: "ffmpeg".into(),
        }));
        match deep {
            Ok(has_captions) => {
                if let Some(video) = info.video.as_mut() {
                    video.closed_captions = has_captions;
                }
            }
            Err(RunError::Cancelled { .. }) => return Err(Failure::Cancelled),
            Err(e) => {
                return Err(Failure::Transient {
                    stage: "validate",
                    message: e.to_string(),
                })
            }
        }
        progress.update("verify", total, total, 0.0, 0.0, true);
        let deinterlaced = matches!(plan, Plan::Encode { deinterlace: true });
        let timeout = readiness.probe_timeout.get();
        let keep_captions = captions.require_passthrough;
        let span = stage_span!(
            "verify",
            output.codec = Empty,
            output.duration_secs = Empty,
            output.size_bytes = Empty,
            captions.cues = Empty,
            captions.check_secs = Empty
        );
        let mut caption_warnings: Vec<String> = Vec::new();
        let verified = stage(span, async {
            match verify(
                &temp,
                &info,
                deinterlaced,
                keep_captions,
                cfg,
                timeout,
                cancel,
            )
            .await
            {
                Ok(out) => {
                    let span = Span::current();
                    if let Some(v) = &out.video {
                        span.record("output.codec", v.codec.as_str());
                    }
                    span.record("output.duration_secs", out.duration);
                    if let Ok(meta) = std::fs::metadata(&temp) {
                        span.record("output.size_bytes", meta.len());
                    }
                    // The MP4's captions, cue for cue, against the source's (CC1, and CC3).
                    if !check_captions {
                        return Ok(out);
                    }
                    let check = Instant::now();
                    let src = source_captions.get().await.map_err(|e| {
                        if cancel.is_cancelled() {
                            Failure::Cancelled
                        } else {
                            Failure::Transient {
                                stage: "verify",
                                message: format!("cannot read the source's captions: {e}"),
                            }
                        }
                    })?;
                    span.record("captions.cues", (src.cc1.len() + src.cc3.len()) as u64);
                    let compared = crate::captions::verify_output(
                        &cfg.ffmpeg,
                        &cfg.ffprobe,
                        &temp,
                        &src,
                        cfg.duration_tolerance.get().as_secs_f64(),
                        timeout,
                        crate::captions::read_limit(info.duration, cfg.stall_timeout.get()),
                        cancel,
                    )
                    .await;
                    span.record("captions.check_secs", check.elapsed().as_secs_f64());
                    match compared {
                        Ok(()) => Ok(out),
                        Err(_) if cancel.is_cancelled() => Err(Failure::Cancelled),
                        Err(crate::captions::VerifyFailure::Mismatch(m)) if keep_captions => {
                            Err(Failure::Transient {
                                stage: "verify",
                                message: format!("the output's captions are not the source's: {m}"),
                            })
                        }
                        Err(crate::captions::VerifyFailure::Mismatch(m)) => {
                            caption_warnings.push(format!("captions not kept: {m}"));
                            Ok(out)
                        }
                        Err(e) => Err(Failure::Transient {
                            stage: "verify",
                            message: e.to_string(),
                        }),
                    }
                }
                Err(VerifyError::Unreadable(m)) | Err(VerifyError::Mismatch(m)) => {
                    if cancel.is_cancelled() {
                        return Err(Failure::Cancelled);
                    }
                    Err(Failure::Transient {
                        stage: "verify",
                        message: m,
                    })
                }
                Err(e @ VerifyError::Duration(_)) => {
                    if cancel.is_cancelled() {
                        return Err(Failure::Cancelled);
                    }
                    Err(Failure::Damaged {
                        stage: "verify",
                        message: e.to_string(),
                    })
                }
            }
        })
        .await?;
        report.output_codec = verified.video.as_ref().map(|v| v.codec.clone());
        let transcode_secs = transcode_started.elapsed().as_secs_f64();
        progress.update("captions", total, total, 0.0, 0.0, true);
        let captions_started = Instant::now();
        let beside = early_captions.is_some();
        let span = stage_span!(
            "captions",
            captions.formats = Empty,
            captions.beside_transcode = beside,
            captions.outcome = Empty,
            captions.work_secs = Empty,
            captions.warning = Empty
        );
        if !captions.formats.is_empty() {
            span.record("captions.formats", captions.formats.join(",").as_str());
        }
        let outcome = stage(span, async {
            let (extracted, work_secs) = match early_captions {
                Some(task) => task.await.unwrap_or((Err(CaptionError::Cancelled), 0.0)),
                None => {
                    let job = crate::captions::Job {
                        ffmpeg: &cfg.ffmpeg,
                        source,
                        format_name: &info.format_name,
                        plan: &caption_plan,
                        output,
                        mp4: Some(&temp),
                    };
                    let result =
                        crate::captions::extract(captions, job, &mut source_captions, cancel).await;
                    (result, captions_started.elapsed().as_secs_f64())
                }
            };
            Span::current().record("captions.work_secs", work_secs);
            let outcome = match extracted {
                Ok(outcome) => outcome,
                Err(CaptionError::Cancelled) => return Err(Failure::Cancelled),
                Err(e @ CaptionError::Permanent(_)) => {
                    return Err(Failure::Permanent {
                        stage: "captions",
                        message: e.to_string(),
                    })
                }
                Err(e @ CaptionError::Exhausted { .. }) => {
                    return Err(Failure::Transient {
                        stage: "captions",
                        message: e.to_string(),
                    })
                }
            };
            Span::current().record("captions.outcome", outcome.summary().as_str());
            let read = source_captions.peek();
            let mut found = crate::captions::warnings(captions, &caption_plan, read.as_deref());
            found.append(&mut caption_warnings);
            caption_warnings = found;
            if !caption_warnings.is_empty() {
                let warning = caption_warnings.join("; ");
                Span::current().record("captions.warning", warning.as_str());
                tracing::warn!(source = %source.display(), "{warning}");
            }
            if cancel.is_cancelled() {
                return Err(Failure::Cancelled);
            }
            Ok((outcome, work_secs))
        })
        .await;
        let (outcome, captions_work_secs) = outcome?;
        let captions_secs = captions_started.elapsed().as_secs_f64();
        progress.update("publish", total, total, 0.0, 0.0, true);
        let span = stage_span!(
            "publish",
            sidecars = outcome.to_publish().len(),
            output.size_bytes = Empty
        );
        let bytes_out = stage(span, async {
            // Sidecars first, the MP4 last: an MP4 under its final name means a complete job.
            for sidecar in outcome.to_publish() {
                publish_one(&sidecar.temp, &sidecar.path, replace, key)?;
            }
            let bytes_out = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
            Span::current().record("output.size_bytes", bytes_out);
            publish_one(&temp, output, replace, key)?;
            Ok(bytes_out)
        })
        .await?;
        if rung != Rung::Standard {
            warnings.push(format!(
                "converted on rung `{}` of the retry ladder (FFmpeg input options {})",
                rung.as_str(),
                rung.input_options().join(" ")
            ));
        }
        let done = Completed {
            transcode_secs,
            captions_secs,
            captions_work_secs,
            captions: outcome.summary(),
            caption_warning: (!caption_warnings.is_empty()).then(|| caption_warnings.join("; ")),
            mode: plan.mode(),
            bytes_in: std::fs::metadata(source).map(|m| m.len()).unwrap_or(0),
            bytes_out,
            media_secs: total,
            wall_secs: 0.0,
        };
        Ok((done, warnings))
    }
    .await;
    progress.remove();
    result
}

#[allow(clippy::too_many_arguments)]
fn finish_success(
    agent: &Agent,
    key: &SourceKey,
    source: &Path,
    output: &Path,
    attempt: u32,
    rung: Rung,
    done: &Completed,
    warnings: &[String],
) {
    if let Err(e) = agent.journal.succeed(key, done) {
        tracing::error!(source = %key, error = %e, "published, but the journal did not record it");
    }
    if !warnings.is_empty() {
        let message = warnings.join("; ");
        tracing::warn!(source = %source.display(), rung = rung.as_str(), "converted with a warning: {message}");
        if let Err(e) = agent.journal.note(key, "converted", "publish", &message) {
            tracing::error!(source = %key, error = %e, "the journal did not record the warning");
        }
        crate::notify::file_warning(agent, source, output, warnings);
    }
    Stats::bump(&agent.stats.converted);
    agent
        .stats
        .bytes_in
        .fetch_add(done.bytes_in, std::sync::atomic::Ordering::Relaxed);
    agent
        .stats
        .bytes_out
        .fetch_add(done.bytes_out, std::sync::atomic::Ordering::Relaxed);
    let ms = |secs: f64| (secs * 1000.0) as u64;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    agent.stats.media_ms.fetch_add(ms(done.media_secs), relaxed);
    agent.stats.wall_ms.fetch_add(ms(done.wall_secs), relaxed);
    if done.caption_warning.is_some() {
        Stats::bump(&agent.stats.captions_lost);
    }
    if done.captions == "none" {
        Stats::bump(&agent.stats.no_captions);
    } else if done.captions.contains('(') {
        Stats::bump(&agent.stats.captions_extracted);
    }
    let speed = if done.wall_secs > 0.0 {
        done.media_secs / done.wall_secs
    } else {
        0.0
    };
    tracing::info!(
        source = %source.display(), output = %output.display(), mode = done.mode, attempt,
        rung = rung.as_str(),
        media_secs = done.media_secs, wall_secs = done.wall_secs, speed,
        transcode_secs = done.transcode_secs, captions_secs = done.captions_secs,
        captions_work_secs = done.captions_work_secs, "converted"
    );
    agent
        .stability
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget(key);
    if let Some(root) = agent.root_of(key) {
        match crate::disposition::after_success(&root.cfg, source, key.rel()) {
            Ok(Some(to)) => {
                tracing::info!(source = %source.display(), to = %to.display(), "source moved")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(source = %source.display(), error = %e, "source disposition failed")
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_failure(
    agent: &Agent,
    p: &Pipeline,
    key: &SourceKey,
    source: &Path,
    attempt: u32,
    rung: Rung,
    failure: Failure,
    reason: Option<CancelReason>,
    job_report: &mut Report,
) -> Option<Duration> {
    // The rung an attempt failed on is named in its message (the journal, the trace, `fleetctl
    // agent errors`). Decode or timestamp errors climb the retry ladder while a rung is left; on
    // the last rung the failure is final.
    let on_rung = |message: String| format!("{message} [rung: {}]", rung.as_str());
    let mut climb_to = None;
    let failure = match failure {
        Failure::Damaged { stage, message } => match rung.next() {
            Some(next) => {
                climb_to = Some(next);
                Failure::Damaged {
                    stage,
                    message: on_rung(message),
                }
            }
            None => Failure::Permanent {
                stage,
                message: format!(
                    "{}; no rung of the retry ladder ({}) converted it",
                    on_rung(message),
                    Rung::ALL.map(Rung::as_str).join(", ")
                ),
            },
        },
        Failure::Transient { stage, message } if rung != Rung::Standard => Failure::Transient {
            stage,
            message: on_rung(message),
        },
        Failure::Permanent { stage, message } if rung != Rung::Standard => Failure::Permanent {
            stage,
            message: on_rung(message),
        },
        other => other,
    };
    // The trace: the outcome, and for a failed, retried or conflicting attempt, the error.
    let state = match (&failure, reason) {
        (Failure::Cancelled, Some(CancelReason::SourceDeleted | CancelReason::SourceChanged)) => {
            JobState::Cancelled
        }
        (Failure::Cancelled, _) => JobState::Interrupted,
        (Failure::Conflict(_), _) => JobState::Conflict,
        (Failure::Damaged { .. }, _) => JobState::Retrying,
        (Failure::Transient { .. }, _) if attempt < p.config.transcode.max_attempts => {
            JobState::Retrying
        }
        _ => JobState::Failed,
    };
    job_report.outcome = Some(state.as_str());
    match &failure {
        Failure::Permanent { stage, message }
        | Failure::Transient { stage, message }
        | Failure::Damaged { stage, message } => {
            job_report.failed_stage = Some(stage);
            job_report.error = Some(message.clone());
        }
        Failure::Conflict(message) => {
            job_report.failed_stage = Some("publish");
            job_report.error = Some(message.clone());
        }
        Failure::Cancelled => {}
    }
    let record = |state: JobState, stage: &str, message: &str, next: Option<SystemTime>| {
        agent.emit(JobEvent::now(
            state.as_str(),
            source,
            stage,
            message,
            p.generation,
        ));
        if let Err(e) = agent
            .journal
            .finish_unsuccessful(key, state, stage, message, next)
        {
            tracing::error!(source = %key, error = %e, "the journal did not record the job's end");
        }
    };
    let max = p.config.transcode.max_attempts;
    match failure {
        Failure::Cancelled => match reason {
            Some(CancelReason::SourceDeleted) => {
                Stats::bump(&agent.stats.cancelled);
                let msg =
                    "the source was deleted or moved away during the job; nothing was published";
                tracing::warn!(source = %source.display(), "{msg}");
                record(JobState::Cancelled, "transcode", msg, None);
                None
            }
            Some(CancelReason::SourceChanged) => {
                Stats::bump(&agent.stats.cancelled);
                let msg =
                    "the source changed during the job; it will be converted again once stable";
                tracing::warn!(source = %source.display(), "{msg}");
                record(JobState::Cancelled, "transcode", msg, None);
                Some(Duration::ZERO)
            }
            Some(CancelReason::Paused) => {
                let msg = "stopped by an operator's pause; it will be redone after the resume";
                tracing::warn!(source = %source.display(), "{msg}");
                record(JobState::Interrupted, "transcode", msg, None);
                Some(Duration::ZERO)
            }
            None => {
                let msg = "the agent shut down during the job; it will be redone at the next start";
                tracing::info!(source = %source.display(), "{msg}");
                record(JobState::Interrupted, "transcode", msg, None);
                None
            }
        },
        Failure::Conflict(msg) => {
            Stats::bump(&agent.stats.conflicts);
            tracing::error!(source = %source.display(), "{msg}");
            record(JobState::Conflict, "publish", &msg, None);
            None
        }
        Failure::Damaged { stage, message } => {
            // `climb_to` is set for every `Damaged` left (the last rung's became `Permanent`).
            let next = climb_to.unwrap_or(Rung::Retimed);
            if let Err(e) = agent.journal.climb(key, next.index()) {
                tracing::error!(source = %key, error = %e, "the journal did not record the climb");
            }
            Stats::bump(&agent.stats.retried);
            let message = format!(
                "{message}; the next attempt climbs to rung `{}` (FFmpeg input options {})",
                next.as_str(),
                next.input_options().join(" ")
            );
            tracing::warn!(
                source = %source.display(), stage, attempt, rung = rung.as_str(),
                next_rung = next.as_str(), "decode or timestamp errors: {message}"
            );
            let delay = Duration::from_millis(200);
            record(
                JobState::Retrying,
                stage,
                &message,
                Some(SystemTime::now() + delay),
            );
            Some(delay)
        }
        Failure::Transient { stage, message } if attempt < max => {
            let delay = backoff(p, attempt);
            Stats::bump(&agent.stats.retried);
            tracing::warn!(
                source = %source.display(), stage, attempt, max_attempts = max, retry_in = ?delay,
                "attempt failed, will retry: {message}"
            );
            record(
                JobState::Retrying,
                stage,
                &message,
                Some(SystemTime::now() + delay),
            );
            Some(delay)
        }
        Failure::Transient { stage, message } | Failure::Permanent { stage, message } => {
            Stats::bump(&agent.stats.failed);
            let message = if attempt >= max && stage != "validate" {
                format!("{message} (gave up after {attempt} attempt(s))")
            } else {
                message
            };
            tracing::error!(source = %source.display(), stage, "conversion failed: {message}");
            record(JobState::Failed, stage, &message, None);
            let action = match agent.root_of(key).map(|r| r.cfg.on_failure) {
                Some(h264_config::agent::OnFailure::Quarantine) => {
                    "moved to the quarantine folder with an .error.txt; not retried"
                }
                _ => "left in place; not retried until the file changes",
            };
            crate::notify::file_failed(agent, source, stage, &message, action);
            if let Some(root) = agent.root_of(key) {
                let report = format!(
                    "source: {}\nstage: {stage}\nerror: {message}\n",
                    source.display()
                );
                match crate::disposition::after_failure(&root.cfg, source, key.rel(), &report) {
                    Ok(Some(to)) => {
                        tracing::warn!(source = %source.display(), to = %to.display(), "source quarantined")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(source = %source.display(), error = %e, "quarantine failed")
                    }
                }
            }
            None
        }
    }
}

/// Exponential backoff with ±20 % jitter, capped.
fn backoff(p: &Pipeline, attempt: u32) -> Duration {
    let cfg = &p.config.transcode;
    let base = cfg.retry_backoff.get().as_secs_f64();
    let raw = base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let capped = raw.min(cfg.retry_backoff_max.get().as_secs_f64());
    let jitter = rand::thread_rng().gen_range(0.8..=1.2);
    Duration::from_secs_f64((capped * jitter).max(0.0))
}
