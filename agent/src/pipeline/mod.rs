//! A conversion job, one stage per file: [`readiness`] -> [`probe`] (beside the transcode) ->
//! [`transcode`] -> [`verify`] -> [`captions`] -> [`publish`] -> [`dispose`], on the bounded
//! worker pool, with retries. [`attempt`] runs the stages in order; [`decide`](mod@decide)
//! says what follows a failure and [`outcome`] carries it out; [`trace`] is the job's trace;
//! [`registry`] holds the jobs in flight; [`stage`] names the stages for every output (logs,
//! trace, journal, control API, events, progress files).
//!
//! # Theory of operation
//! [`submit`] registers the job in the [`Jobs`] registry (so a key never has two) and spawns it
//! on the agent's `TaskTracker`. The job runs its quick checks ([`readiness`]) ahead of a
//! worker, under a small bound of its own ([`ahead`]), so that they overlap other jobs' FFmpeg;
//! a file that passes waits for a worker permit ([`admission`]), one that fails takes none. The
//! job takes the settings in force (it keeps them to the end), then runs one attempt while a
//! monitor checks the source once a second: a deleted or rewritten source cancels the attempt. The outcome is
//! written to the journal before the job leaves the registry (its [`JobGuard`] is dropped); a
//! retry is a delayed requeue of the key, so the reconciler decides again with fresh facts.
//!
//! # Retries
//! A transient failure is retried on the same rung of the retry ladder after a backoff, up to
//! `transcode.max_attempts`. A decode or timestamp failure ([`failure::Class::Damaged`]: FFmpeg
//! blamed the input, or verification found the output's video or audio not as long as the
//! source's) is retried at once one rung up (`transcode::Rung`), whatever `max_attempts` says,
//! and is final on the last rung. The journal keeps the rung of each attempt and the rung the
//! next one starts on.
//!
//! # Changing a stage
//! A stage is one `run` function in its own file, `async fn run(a: &Attempt, ...) ->
//! Result<T, Failure>`, inside its span (`trace::stage_span!` named by its [`Stage`], run
//! through `trace::stage`, which marks the span failed). It turns its errors into a
//! [`failure::Failure`] of its own stage and class (permanent, transient, damaged) and leaves
//! the consequences to [`decide`](mod@decide). A new stage gets a [`Stage`] variant (its
//! `name()` is the span's name, its `as_str()` what the journal and the wire say) and a call in
//! [`attempt`].

pub mod admission;
pub mod ahead;
pub mod attempt;
pub mod captions;
pub mod ctx;
pub mod decide;
pub mod dispose;
pub mod event;
pub mod failure;
pub mod history;
pub mod metrics;
pub mod outcome;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod readiness;
pub mod registry;
pub mod stage;
pub mod trace;
pub mod transcode;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::key::{Fingerprint, SourceKey};
use crate::publish::temp_path;
use crate::stats::Stats;
use crate::transcode::Rung;

pub use ctx::JobCtx;
pub use event::{Events, JobEvent};
pub use registry::{CancelReason, JobGuard, JobHandle, Jobs};
pub use stage::{Phase, Stage};

use decide::{decide, Standing};
use outcome::Ended;
use trace::Report;

/// Starts a job for `key` unless one is in flight. `readiness_wait`: how long the agent had
/// known the file when it became ready, for the job's trace.
pub fn submit(
    ctx: &Arc<JobCtx>,
    key: SourceKey,
    fp: Fingerprint,
    output: PathBuf,
    replace: bool,
    readiness_wait: Option<Duration>,
) {
    let handle = JobHandle::new(ctx.shutdown.child_token(), fp);
    let Some(guard) = ctx.jobs.register(&key, handle.clone()) else {
        return;
    };
    let span = trace::job_span(guard.id, &key);
    let job_span = span.clone();
    let job_ctx = ctx.clone();
    let job = async move {
        let mut report = Report {
            readiness_wait,
            ..Report::default()
        };
        let requeue = run(&job_ctx, &key, fp, &output, replace, &handle, &mut report).await;
        // Leave the registry first: a reconcile that sees the job still in flight does nothing.
        drop(guard);
        if let Some(delay) = requeue {
            job_ctx.queue.add_after(key.clone(), delay);
        }
        report.record(&job_span, &key.path(), &output);
        let record = report.history(&key.path());
        crate::session::history::attempt_ended(job_ctx.history.as_deref(), record);
    };
    ctx.tracker.spawn(job.instrument(span));
}

/// The job's life: admission, the journal's start, the attempt under the source monitor, the
/// outcome. Returns when to look at the key again.
async fn run(
    ctx: &JobCtx,
    key: &SourceKey,
    fp: Fingerprint,
    output: &Path,
    replace: bool,
    handle: &JobHandle,
    report: &mut Report,
) -> Option<Duration> {
    let queued = Instant::now();
    // A missing or unreachable watch or output root holds the job (no attempt
    // counted), before anything reads the source.
    let output_root = crate::root_health::output_root(output, key.rel());
    if ctx.health.check_now(&output_root).await.is_some()
        || ctx.health.check_now(key.root()).await.is_some()
    {
        report.outcome = Some("held");
        return Some(crate::root_health::RECHECK);
    }
    // The quick checks first, ahead of a worker (see `ahead`); a file they refuse takes none.
    let Some(checked) = ahead::check(ctx, key, fp, handle).await else {
        return stopped_waiting(handle, report);
    };
    report.laps.push(("readiness", checked.secs));
    let mut permit = None;
    if checked.passed() {
        let Some(worker) = admission::wait_for_start(ctx, &handle.cancel).await else {
            return stopped_waiting(handle, report);
        };
        permit = Some(worker);
    }
    let ahead::Checked {
        slot,
        settings: checked_under,
        result: checked,
        secs: checks_secs,
    } = checked;
    drop(slot);
    // Looked at again: the wait for a worker may have been long.
    if ctx.health.check_now(&output_root).await.is_some()
        || ctx.health.check_now(key.root()).await.is_some()
    {
        report.outcome = Some("held");
        return Some(crate::root_health::RECHECK);
    }
    // The settings in force now: the job keeps them to the end, whatever revision comes next.
    let settings = ctx.settings.current();
    // Checks made under other settings are made again, in the attempt, on a worker.
    let checked = if Arc::ptr_eq(&settings, &checked_under) {
        Some(checked)
    } else {
        if permit.is_none() {
            let Some(worker) = admission::wait_for_start(ctx, &handle.cancel).await else {
                return stopped_waiting(handle, report);
            };
            permit = Some(worker);
        }
        None
    };
    report.queue_wait = Some(
        queued
            .elapsed()
            .saturating_sub(Duration::from_secs_f64(checks_secs)),
    );
    report.generation = Some(settings.generation);
    let journal_started = Instant::now();
    let started = {
        let (journal, key, fp, spec, out) = (
            ctx.journal.clone(),
            key.clone(),
            fp,
            settings.spec_hash.clone(),
            output.to_path_buf(),
        );
        // Off the async workers: the journal's commit waits for the disk.
        match tokio::task::spawn_blocking(move || journal.start(&key, &fp, &spec, &out)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the journal's task failed: {e}")),
        }
    };
    report
        .laps
        .push(("journal_start", journal_started.elapsed().as_secs_f64()));
    let (attempt, rung) = match started {
        Ok(started) => (started.attempt, Rung::at(started.rung)),
        Err(e) => {
            tracing::error!(source = %key, error = %e, "cannot record the job start; will retry");
            return Some(Duration::from_secs(10));
        }
    };
    Stats::bump(&ctx.stats.started);
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
    let program = ctx.root_of(key).and_then(|r| r.cfg.program.clone());
    let started = Instant::now();
    let a = attempt::Attempt {
        settings: &settings,
        key,
        source: &source,
        output,
        replace,
        rung,
        program: program.as_ref(),
        cancel: &handle.cancel,
    };
    // The worker is given back as soon as FFmpeg is done (see `attempt`), or when the job ends.
    let mut worker = permit;
    let result = watched(
        attempt::run(a, checked, handle, report, &mut worker),
        (&ctx.health, key.root()),
        &source,
        fp,
        handle,
    )
    .await;
    drop(worker);
    let wall_secs = started.elapsed().as_secs_f64();
    report.wall_secs = Some(wall_secs);
    let end = Ended {
        ctx,
        settings: &settings,
        key,
        source: &source,
        output,
        attempt,
        rung,
        fingerprint: fp,
    };
    match result {
        Ok((mut done, warnings)) => {
            done.wall_secs = wall_secs;
            let recording = Instant::now();
            outcome::converted(&end, &done, &warnings).await;
            report
                .laps
                .push(("journal_end", recording.elapsed().as_secs_f64()));
            tracing::info!(
                source = %source.display(), wall_secs, stages = %report.laps_text(),
                "stage times"
            );
            let note = match rung {
                Rung::Standard => String::new(),
                r => format!("converted on rung {}", r.as_str()),
            };
            let event = JobEvent::now(
                "converted",
                &source,
                Stage::Publish,
                &note,
                settings.generation,
            );
            ctx.events.emit(event);
            report.outcome = Some("converted");
            report.output_size = Some(done.bytes_out);
            report.captions = Some((done.captions.clone(), done.caption_warning.is_some()));
            report.stage_secs = vec![
                ("transcode", done.transcode_secs),
                ("captions", done.captions_secs),
            ];
            ctx.metrics
                .job_ended("converted", wall_secs, done.bytes_in, done.bytes_out);
            None
        }
        Err(failure) => {
            let _ = std::fs::remove_file(temp_path(output));
            let formats = &settings.config.captions.formats;
            crate::captions::remove_temps(&crate::captions::sidecars(output, formats));
            let (failure, cancelled) = ctx
                .health
                .reclassify(failure, handle.reason(), key.root(), output, key.rel())
                .await;
            let standing = Standing {
                attempt,
                max_attempts: settings.config.transcode.max_attempts,
                rung,
                cancelled,
            };
            let requeue = outcome::failed(&end, decide(failure, standing), report);
            let state = report.outcome.unwrap_or("failed");
            ctx.metrics.job_ended(state, wall_secs, 0, 0);
            requeue
        }
    }
}

/// What a job stopped before its attempt (by a pause, a shutdown or a cancel) reports; a
/// paused job is queued again, to wait for the resume.
fn stopped_waiting(handle: &JobHandle, report: &mut Report) -> Option<Duration> {
    let reason = handle.reason();
    report.outcome = Some(match reason {
        Some(CancelReason::Paused) => "paused",
        Some(_) => "cancelled",
        None => "interrupted",
    });
    (reason == Some(CancelReason::Paused)).then_some(Duration::ZERO)
}

/// Runs `work` while checking the source once a second: a source deleted or rewritten
/// meanwhile cancels the job. The check is a `stat` on the blocking pool, one at a time, none
/// while the watch root (`root`) is held: a dead hard-mounted share never answers it, and then
/// blocks one pool thread, never a runtime worker.
async fn watched<T>(
    work: impl std::future::Future<Output = T>,
    root: (&Arc<crate::root_health::RootHealth>, &Path),
    source: &Path,
    fp: Fingerprint,
    handle: &JobHandle,
) -> T {
    let (health, root) = root;
    tokio::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut looking: Option<tokio::task::JoinHandle<Option<CancelReason>>> = None;
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => {
                if let Some(look) = looking.take_if(|l| l.is_finished()) {
                    if let Ok(Some(reason)) = look.await {
                        handle.cancel_for(reason);
                    }
                }
                if looking.is_none() && health.held_now(root).is_none() {
                    let source = source.to_path_buf();
                    looking = Some(tokio::task::spawn_blocking(move || source_moved(&source, &fp)));
                }
            }
        }
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
