//! What a job's end does: the journal, the stats, the metrics, the fleet event, the alert, the
//! source's disposition and the requeue. The decision itself is [`decide`](mod@super::decide)'s;
//! this module only carries it out.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use super::ctx::JobCtx;
use super::decide::{Decision, Verdict};
use super::dispose;
use super::event::JobEvent;
use super::stage::Stage;
use super::trace::Report;
use crate::journal::Completed;
use crate::key::SourceKey;
use crate::settings::Settings;
use crate::stats::Stats;
use crate::transcode::Rung;

/// The job that ended, and how far it got.
pub struct Ended<'a> {
    /// Its context.
    pub ctx: &'a JobCtx,
    /// The settings it ran under.
    pub settings: &'a Settings,
    /// The source's key.
    pub key: &'a SourceKey,
    /// The source.
    pub source: &'a Path,
    /// The output's final name.
    pub output: &'a Path,
    /// The attempt (from 1).
    pub attempt: u32,
    /// The rung it ran on.
    pub rung: Rung,
    /// The source's fingerprint when the job started (checked again before a disposition).
    pub fingerprint: crate::key::Fingerprint,
}

/// Records a published conversion and disposes of its source. The journal's writes run on the
/// blocking pool (their commits wait for the disk), not on the async workers.
pub async fn converted(end: &Ended<'_>, done: &Completed, warnings: &[String]) {
    let Ended {
        ctx,
        key,
        source,
        output,
        attempt,
        rung,
        ..
    } = *end;
    let message = (!warnings.is_empty()).then(|| warnings.join("; "));
    let (journal, job, record, note) = (
        ctx.journal.clone(),
        key.clone(),
        done.clone(),
        message.clone(),
    );
    let recorded = tokio::task::spawn_blocking(move || {
        let succeeded = journal.succeed(&job, &record).map_err(|e| e.to_string());
        let noted = match &note {
            Some(message) => journal
                .note(&job, "converted", Stage::Publish.as_str(), message)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        };
        (succeeded, noted)
    })
    .await;
    let (succeeded, noted) = recorded.unwrap_or_else(|e| {
        let failed = format!("the journal's task failed: {e}");
        (Err(failed.clone()), Err(failed))
    });
    if let Err(e) = succeeded {
        tracing::error!(source = %key, error = %e, "published, but the journal did not record it");
    }
    if let Some(message) = &message {
        tracing::warn!(source = %source.display(), rung = rung.as_str(), "converted with a warning: {message}");
        if let Err(e) = noted {
            tracing::error!(source = %key, error = %e, "the journal did not record the warning");
        }
        ctx.notifier.file_warning(source, output, warnings);
    }
    count_conversion(&ctx.stats, done);
    let speed = if done.wall_secs > 0.0 {
        done.media_secs / done.wall_secs
    } else {
        0.0
    };
    tracing::info!(
        source = %source.display(), output = %output.display(), mode = done.mode, attempt,
        rung = rung.as_str(),
        media_secs = done.media_secs, wall_secs = done.wall_secs, speed,
        transcode_secs = done.transcode_secs, transcode_cpu_secs = done.transcode_cpu_secs,
        captions_secs = done.captions_secs,
        captions_work_secs = done.captions_work_secs, "converted"
    );
    ctx.stability
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget(key);
    // Before the disposition: shadow work links the source first (module `shadow`).
    ctx.shadow.offer(&crate::shadow::Production {
        file: &key.to_string(),
        source,
        output,
        encode_secs: done.transcode_secs,
        encode_cpu_secs: done.transcode_cpu_secs,
        generation: end.settings.generation,
        sidecars: &end.settings.config.captions.formats,
    });
    if let Some(root) = ctx.root_of(key) {
        dispose::after_success(ctx, root, source, key, output, &end.fingerprint).await;
    }
}

/// The counters of a conversion.
fn count_conversion(stats: &Stats, done: &Completed) {
    Stats::bump(&stats.converted);
    stats.bytes_in.fetch_add(done.bytes_in, Relaxed);
    stats.bytes_out.fetch_add(done.bytes_out, Relaxed);
    let ms = |secs: f64| (secs * 1000.0) as u64;
    stats.media_ms.fetch_add(ms(done.media_secs), Relaxed);
    stats.wall_ms.fetch_add(ms(done.wall_secs), Relaxed);
    if done.caption_warning.is_some() {
        Stats::bump(&stats.captions_lost);
    }
    if done.captions == "none" {
        Stats::bump(&stats.no_captions);
    } else if done.captions.contains('(') {
        Stats::bump(&stats.captions_extracted);
    }
}

/// Carries out `verdict` on a failed attempt; returns when to look at the key again.
pub fn failed(end: &Ended<'_>, verdict: Verdict, report: &mut Report) -> Option<Duration> {
    let Ended {
        ctx,
        settings,
        key,
        source,
        attempt,
        rung,
        ..
    } = *end;
    report.outcome = Some(verdict.state.as_str());
    if let Some((stage, error)) = &verdict.error {
        report.failed_stage = Some(*stage);
        report.error = Some(error.clone());
    }
    let Verdict {
        decision,
        state,
        stage,
        message,
        ..
    } = verdict;
    let record = |next: Option<SystemTime>| {
        ctx.events.emit(JobEvent::now(
            state.as_str(),
            source,
            stage,
            &message,
            settings.generation,
        ));
        if let Err(e) = ctx
            .journal
            .finish_unsuccessful(key, state, stage.as_str(), &message, next)
        {
            tracing::error!(source = %key, error = %e, "the journal did not record the job's end");
        }
    };
    let max = settings.config.transcode.max_attempts;
    match decision {
        Decision::Cancelled { requeue } => {
            Stats::bump(&ctx.stats.cancelled);
            tracing::warn!(source = %source.display(), "{message}");
            record(None);
            requeue.then_some(Duration::ZERO)
        }
        Decision::EnvironmentHold { requeue: true } => {
            tracing::warn!(source = %source.display(), "{message}");
            record(None);
            Some(Duration::ZERO)
        }
        Decision::EnvironmentHold { requeue: false } => {
            tracing::info!(source = %source.display(), "{message}");
            record(None);
            None
        }
        Decision::Conflict => {
            Stats::bump(&ctx.stats.conflicts);
            tracing::error!(source = %source.display(), "{message}");
            record(None);
            None
        }
        Decision::RetryNow { rung: next } => {
            if let Err(e) = ctx.journal.climb(key, next.index()) {
                tracing::error!(source = %key, error = %e, "the journal did not record the climb");
            }
            Stats::bump(&ctx.stats.retried);
            tracing::warn!(
                source = %source.display(), stage = stage.as_str(), attempt, rung = rung.as_str(),
                next_rung = next.as_str(), "decode or timestamp errors: {message}"
            );
            let delay = Duration::from_millis(200);
            record(Some(SystemTime::now() + delay));
            Some(delay)
        }
        Decision::RetryLater { .. } => {
            let delay = backoff(settings, attempt);
            Stats::bump(&ctx.stats.retried);
            tracing::warn!(
                source = %source.display(), stage = stage.as_str(), attempt, max_attempts = max,
                retry_in = ?delay, "attempt failed, will retry: {message}"
            );
            record(Some(SystemTime::now() + delay));
            Some(delay)
        }
        Decision::Quarantine => {
            Stats::bump(&ctx.stats.failed);
            tracing::error!(source = %source.display(), stage = stage.as_str(), "conversion failed: {message}");
            record(None);
            let root = ctx.root_of(key);
            let action = dispose::failure_action(root);
            ctx.notifier
                .file_failed(source, stage.as_str(), &message, action);
            if let Some(root) = root {
                dispose::after_failure(root, source, key, stage, &message);
            }
            None
        }
    }
}

/// The delay before retry `attempt + 1` (the shared [`h264_support::Backoff`]).
fn backoff(settings: &Settings, attempt: u32) -> Duration {
    let cfg = &settings.config.transcode;
    h264_support::Backoff::new(cfg.retry_backoff.get(), cfg.retry_backoff_max.get()).delay(attempt)
}
