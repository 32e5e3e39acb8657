//! A conversion job: validate -> transcode -> verify -> publish -> dispose, on the bounded worker
//! pool, with retries.
//!
//! # Theory of operation
//! [`submit`] registers the job in `Agent::jobs` (so a key never has two) and spawns it on the
//! agent's `TaskTracker`. The job waits for a worker permit, then runs one attempt while a
//! monitor checks the source once a second: a deleted or rewritten source cancels the attempt.
//! The outcome is written to the journal before the job leaves `Agent::jobs`; a retry is a
//! delayed requeue of the key, so the reconciler decides again with fresh facts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::captions::CaptionError;
use crate::child::RunError;
use crate::journal::{Completed, JobState};
use crate::key::{Fingerprint, SourceKey};
use crate::progress::ProgressFile;
use crate::publish::{commit, temp_path, verify, VerifyError};
use crate::readiness::{validate, validate_deep};
use crate::state::{Agent, CancelReason, JobEvent, JobHandle, Live, Pipeline};
use crate::stats::Stats;
use crate::transcode::{arguments, plan, Plan, TranscodeError};

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
    /// Stopped by a cancel (shutdown, or the source was deleted or changed).
    Cancelled,
    /// The output name was taken meanwhile by a file this job must not replace.
    Conflict(String),
}

/// Starts a job for `key` unless one is in flight.
pub fn submit(agent: &Arc<Agent>, key: SourceKey, fp: Fingerprint, output: PathBuf, replace: bool) {
    let handle = JobHandle {
        cancel: agent.shutdown.child_token(),
        reason: Arc::new(Mutex::new(None)),
        fingerprint: fp,
        live: Arc::new(Mutex::new(Live {
            stage: "waiting".into(),
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
    let span = tracing::info_span!("job", id, file = %key);
    let job = async move {
        let requeue = run(&agent, &key, fp, &output, replace, &handle).await;
        // Leave the map first: a reconcile that sees the job still in flight does nothing.
        agent
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if let Some(delay) = requeue {
            agent.queue.add_after(key, delay);
        }
    };
    tracker.spawn(tracing::Instrument::instrument(job, span));
}

async fn run(
    agent: &Arc<Agent>,
    key: &SourceKey,
    fp: Fingerprint,
    output: &Path,
    replace: bool,
    handle: &JobHandle,
) -> Option<Duration> {
    let Some(_permit) = wait_for_start(agent, &handle.cancel).await else {
        let reason = *handle.reason.lock().unwrap_or_else(|p| p.into_inner());
        // Cancelled while waiting by a pause: queued again, it waits for the resume.
        return (reason == Some(CancelReason::Paused)).then_some(Duration::ZERO);
    };
    // The pipeline in force now: the job keeps it to the end, whatever revision comes next.
    let pipeline = agent.pipeline();
    let p = &*pipeline;
    let attempt = match agent.journal.start(key, &fp, &p.spec_hash, output) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(source = %key, error = %e, "cannot record the job start; will retry");
            return Some(Duration::from_secs(10));
        }
    };
    Stats::bump(&agent.stats.started);
    handle
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .attempt = attempt;
    let source = key.path();
    tracing::info!(source = %source.display(), output = %output.display(), attempt, "job started");
    let started = Instant::now();
    let work = attempt_once(p, key, &source, output, replace, handle);
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                if let Some(reason) = source_moved(&source, &fp) {
                    handle.cancel_for(reason);
                }
            }
        }
    };
    let temp = temp_path(output);
    match result {
        Ok(mut done) => {
            done.wall_secs = started.elapsed().as_secs_f64();
            finish_success(agent, key, &source, output, attempt, &done);
            let event = JobEvent::now("converted", &source, "publish", "", p.generation);
            agent.emit(event);
            None
        }
        Err(failure) => {
            let _ = std::fs::remove_file(&temp);
            let formats = &p.config.captions.formats;
            crate::captions::remove_temps(&crate::captions::sidecars(output, formats));
            let reason = *handle.reason.lock().unwrap_or_else(|p| p.into_inner());
            finish_failure(agent, p, key, &source, attempt, failure, reason)
        }
    }
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

async fn attempt_once(
    p: &Pipeline,
    key: &SourceKey,
    source: &Path,
    output: &Path,
    replace: bool,
    handle: &JobHandle,
) -> Result<Completed, Failure> {
    let cancel = &handle.cancel;
    let cfg = &p.config.transcode;
    let readiness = &p.config.readiness;
    let mut progress = ProgressFile::new(output, source, handle.live.clone());
    let result = async {
        progress.update("validate", 0.0, 0.0, 0.0, 0.0, true);
        let mut info = match validate(&cfg.ffprobe, source, readiness, cancel).await {
            Ok(Ok(info)) => info,
            Ok(Err(invalid)) => {
                return Err(Failure::Permanent {
                    stage: "validate",
                    message: invalid.0,
                })
            }
            Err(RunError::Cancelled { .. }) => return Err(Failure::Cancelled),
            Err(e) => {
                return Err(Failure::Transient {
                    stage: "validate",
                    message: e.to_string(),
                })
            }
        };
        // The whole-file checks (damage, captions) run beside the transcode; their verdict is
        // awaited before verification, so nothing is published from a damaged recording.
        let deep = {
            let (ffmpeg, ffprobe) = (cfg.ffmpeg.clone(), cfg.ffprobe.clone());
            let (source, info, readiness, cancel) = (
                source.to_path_buf(),
                info.clone(),
                readiness.clone(),
                cancel.clone(),
            );
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                validate_deep(&ffmpeg, &ffprobe, &source, &info, &readiness, &cancel).await
            }))
        };
        let plan = plan(&info, cfg);
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
        // task is aborted, its FFmpeg killed, if the attempt ends early.
        let early_captions = crate::captions::uses_ffmpeg(captions).then(|| {
            let (captions, ffmpeg) = (captions.clone(), cfg.ffmpeg.clone());
            let (source, output, cancel) =
                (source.to_path_buf(), output.to_path_buf(), cancel.clone());
            tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
                let started = Instant::now();
                let result =
                    crate::captions::extract(&captions, &ffmpeg, &source, &output, &cancel).await;
                (result, started.elapsed().as_secs_f64())
            }))
        });
        let args = arguments(source, &temp, plan, cfg);
        tracing::debug!(source = %key, ?args, mode = plan.mode(), "starting FFmpeg");
        let total = info.duration;
        let transcode_started = Instant::now();
        let ffmpeg =
            crate::transcode::run(&cfg.ffmpeg, &args, cfg.stall_timeout.get(), cancel, |p| {
                progress.update(
                    "transcode",
                    p.out_time.as_secs_f64(),
                    total,
                    p.fps,
                    p.speed,
                    false,
                );
            });
        match ffmpeg.await {
            Ok(()) => {}
            Err(TranscodeError::Cancelled) => return Err(Failure::Cancelled),
            Err(
                e @ TranscodeError::Failed {
                    corrupt_input: true,
                    ..
                },
            ) => {
                return Err(Failure::Permanent {
                    stage: "transcode",
                    message: e.to_string(),
                })
            }
            Err(e) => {
                return Err(Failure::Transient {
                    stage: "transcode",
                    message: e.to_string(),
                })
            }
        }
        let deep = deep.await.unwrap_or(Err(RunError::Cancelled {
            program: "ffmpeg".into(),
        }));
        match deep {
            Ok(Ok(has_captions)) => {
                if let Some(video) = info.video.as_mut() {
                    video.closed_captions = has_captions;
                }
            }
            Ok(Err(invalid)) => {
                return Err(Failure::Permanent {
                    stage: "validate",
                    message: invalid.0,
                })
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
            Ok(_) => {}
            Err(VerifyError::Unreadable(m)) | Err(VerifyError::Mismatch(m)) => {
                if cancel.is_cancelled() {
                    return Err(Failure::Cancelled);
                }
                return Err(Failure::Transient {
                    stage: "verify",
                    message: m,
                });
            }
        };
        let transcode_secs = transcode_started.elapsed().as_secs_f64();
        progress.update("captions", total, total, 0.0, 0.0, true);
        let captions_started = Instant::now();
        let (extracted, captions_work_secs) = match early_captions {
            Some(task) => task.await.unwrap_or((Err(CaptionError::Cancelled), 0.0)),
            None => {
                let result =
                    crate::captions::extract(captions, &cfg.ffmpeg, &temp, output, cancel).await;
                (result, captions_started.elapsed().as_secs_f64())
            }
        };
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
        if cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let captions_secs = captions_started.elapsed().as_secs_f64();
        progress.update("publish", total, total, 0.0, 0.0, true);
        // Sidecars first, the MP4 last: an MP4 under its final name means a complete job.
        for sidecar in outcome.to_publish() {
            publish_one(&sidecar.temp, &sidecar.path, replace, key)?;
        }
        let bytes_out = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
        publish_one(&temp, output, replace, key)?;
        Ok(Completed {
            transcode_secs,
            captions_secs,
            captions_work_secs,
            captions: outcome.summary(),
            mode: plan.mode(),
            bytes_in: std::fs::metadata(source).map(|m| m.len()).unwrap_or(0),
            bytes_out,
            media_secs: total,
            wall_secs: 0.0,
        })
    }
    .await;
    progress.remove();
    result
}

fn finish_success(
    agent: &Agent,
    key: &SourceKey,
    source: &Path,
    output: &Path,
    attempt: u32,
    done: &Completed,
) {
    if let Err(e) = agent.journal.succeed(key, done) {
        tracing::error!(source = %key, error = %e, "published, but the journal did not record it");
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

fn finish_failure(
    agent: &Agent,
    p: &Pipeline,
    key: &SourceKey,
    source: &Path,
    attempt: u32,
    failure: Failure,
    reason: Option<CancelReason>,
) -> Option<Duration> {
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
