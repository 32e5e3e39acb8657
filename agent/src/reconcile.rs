//! The reconciler: for one source key, compare what is (the file, the journal, the outputs on
//! disk) with what should be (a verified MP4 for every finished recording) and act on the
//! difference. Level-triggered: it re-reads the truth each time, so a missed or repeated event
//! costs nothing.
//!
//! # Theory of operation
//! A few reconcile tasks take keys from the [`crate::queue::WorkQueue`], which never hands out
//! one key twice at once. A reconcile is quick (a `stat`, a journal read, a `/proc` scan at
//! most, outside any lock); everything slow (probing, transcoding) runs in a job on the bounded
//! worker pool ([`crate::pipeline`]). A reconcile ends with an [`Action`]: done, or look again
//! after a delay.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::journal::JobState;
use crate::key::{Fingerprint, SourceKey};
use crate::pipeline::{CancelReason, JobCtx};
use crate::readiness::{check_writers, settle_stability, Settled};
use crate::root_health::RECHECK;
use crate::stats::Stats;

/// What the reconciler works with: the jobs' context (it submits jobs, and reads the journal,
/// the queue, the registry, the settings and the stability record through it) and the output
/// claims, which only the reconciler keeps.
#[derive(Debug)]
pub struct ReconcileCtx {
    /// The jobs' context.
    pub jobs: Arc<JobCtx>,
    /// Which source claimed each output path: how two sources that map to one output are
    /// caught before either writes. A short-held lock, never across an `.await`.
    pub claims: Mutex<HashMap<PathBuf, SourceKey>>,
}

impl ReconcileCtx {
    /// A reconciler submitting jobs with `jobs`.
    pub fn new(jobs: Arc<JobCtx>) -> Self {
        Self {
            jobs,
            claims: Mutex::new(HashMap::new()),
        }
    }
}

/// What to do with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until something changes.
    Done,
    /// Look again after this delay.
    RequeueAfter(Duration),
}

/// Runs reconcile tasks until the queue closes. First, every output is claimed for the first
/// of the queued sources (the start-up scan's) in name order that maps to it: reconcile tasks
/// run side by side, and which of two sources converts must not depend on which task is faster.
pub async fn run_workers(ctx: Arc<ReconcileCtx>, count: usize) {
    claim_in_name_order(&ctx);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        let ctx = ctx.clone();
        set.spawn(async move {
            let queue = ctx.jobs.queue.clone();
            while let Some(key) = queue.next().await {
                let action = reconcile(&ctx, &key).await;
                queue.done(&key);
                if let Action::RequeueAfter(delay) = action {
                    queue.add_after(key, delay);
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Claims each output for the first queued source in name order that maps to it.
fn claim_in_name_order(ctx: &ReconcileCtx) {
    let mut keys = ctx.jobs.queue.queued();
    keys.sort();
    let mut claims = ctx.claims.lock().unwrap_or_else(|p| p.into_inner());
    for key in keys {
        if let Some(root) = ctx.jobs.root_of(&key) {
            claims.entry(root.output_for(key.rel())).or_insert(key);
        }
    }
}

/// Reconciles one source.
pub async fn reconcile(ctx: &ReconcileCtx, key: &SourceKey) -> Action {
    let cx = &ctx.jobs;
    let Some(root) = cx.root_of(key) else {
        return Action::Done;
    };
    let path = key.path();
    // A missing or unreachable root holds its sources: not taken for deleted, nothing started.
    if let Some(action) = held(cx, key) {
        return action;
    }
    if let Some(why) = crate::containment::leaves_root(root, key.rel()) {
        let spec_hash = cx.settings.current().spec_hash.clone();
        crate::containment::report(&cx.journal, &spec_hash, key, root, &why);
        release_claim(ctx, key);
        return forget(cx, key);
    }
    // On the blocking pool, bounded: a dead hard-mounted share never returns from `stat`.
    let stat = {
        let path = path.clone();
        crate::root_health::bounded(move || std::fs::metadata(path)).await
    };
    let Some(stat) = stat else {
        // No answer: the check marks the root held (or finds it answering again).
        let _ = cx.health.check_now(key.root()).await;
        return Action::RequeueAfter(RECHECK);
    };
    let meta = match stat {
        Ok(m) => m,
        Err(_) if held_fresh(cx, key).await => return Action::RequeueAfter(RECHECK),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            source_gone(ctx, key);
            return Action::Done;
        }
        Err(e) => {
            tracing::warn!(source = %path.display(), error = %e, "cannot read the source's metadata; will look again");
            return Action::RequeueAfter(Duration::from_secs(30));
        }
    };
    if !meta.is_file() {
        release_claim(ctx, key);
        return Action::Done;
    }
    let fp = Fingerprint::of(&meta);
    if let Some(job) = cx.jobs.get(key) {
        if job.fingerprint != fp {
            tracing::warn!(source = %path.display(), "the source changed during its job; cancelling it");
            job.cancel_for(CancelReason::SourceChanged);
        }
        return Action::Done;
    }
    Stats::bump(&cx.stats.seen);
    let output = root.output_for(key.rel());
    let record = match cx.journal.get(key) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "journal read failed; will look again");
            return Action::RequeueAfter(Duration::from_secs(10));
        }
    };
    let same_version = record.as_ref().is_some_and(|r| r.fingerprint == fp);
    let ours = record
        .as_ref()
        .is_some_and(|r| r.output.as_deref() == Some(output.as_path()));
    if let Some(rec) = record.as_ref().filter(|_| same_version) {
        match rec.state {
            // New-files-only policy: a spec change does not redo finished files.
            JobState::Succeeded if output.exists() => return forget(cx, key),
            JobState::Failed => return forget(cx, key),
            JobState::Retrying => {
                let due = rec.next_attempt_at.unwrap_or(SystemTime::UNIX_EPOCH);
                if let Ok(left) = due.duration_since(SystemTime::now()) {
                    return Action::RequeueAfter(left.max(Duration::from_millis(50)));
                }
            }
            _ => {}
        }
    }
    if let Some(conflict) = conflict(ctx, key, &output, ours) {
        let known = record
            .as_ref()
            .is_some_and(|r| same_version && r.state == JobState::Conflict);
        if !known {
            tracing::error!(source = %path.display(), output = %output.display(), "{conflict}");
            Stats::bump(&cx.stats.conflicts);
            if let Err(e) = cx.journal.record_conflict(
                key,
                &fp,
                &cx.settings.current().spec_hash,
                &output,
                &conflict,
            ) {
                tracing::error!(error = %e, "could not record the conflict in the journal");
            }
        }
        return forget(cx, key);
    }
    let settings = cx.settings.current();
    let readiness = &settings.config.readiness;
    let lock = || cx.stability.lock().unwrap_or_else(|p| p.into_inner());
    // The stability record's lock is held for the quick checks only; the open-for-writing
    // check (a walk over /proc) runs outside it, so reconcile tasks do not queue behind it.
    let settled = match settle_stability(&mut lock(), key, &meta, readiness) {
        Settled::Ready => check_writers(key, readiness),
        wait => wait,
    };
    let waited = match settled {
        Settled::Ready => lock().take_wait(key),
        Settled::Wait { .. } => None,
    };
    match settled {
        Settled::Ready => {
            let claims = ctx.claims.lock().unwrap_or_else(|p| p.into_inner());
            if claims.get(&output) != Some(key) {
                // A source earlier in name order took the claim over while this one settled:
                // the next look records the conflict.
                return Action::RequeueAfter(Duration::from_millis(50));
            }
            crate::pipeline::submit(cx, key.clone(), fp, output, ours, waited);
            drop(claims);
            Action::Done
        }
        Settled::Wait { reason, recheck_in } => {
            if cx.once && reason.is_busy() {
                tracing::warn!(source = %path.display(), "not ready ({reason}); skipped in --once mode");
                Stats::bump(&cx.stats.not_ready);
                return Action::Done;
            }
            tracing::debug!(source = %path.display(), %reason, ?recheck_in, "not ready yet");
            Action::RequeueAfter(recheck_in)
        }
    }
}

/// Looks again in [`RECHECK`] when the watch or output root of `key` is held, as last checked.
fn held(cx: &JobCtx, key: &SourceKey) -> Option<Action> {
    let root = cx.root_of(key)?;
    let roots = [key.root(), root.output.as_path()];
    let gone = roots.iter().find_map(|r| cx.health.held_now(r));
    gone.map(|why| {
        tracing::debug!(source = %key, %why, "its root is missing or unreachable; waiting");
        Action::RequeueAfter(RECHECK)
    })
}

/// Whether the watch or output root of `key` is held, checked now (the source could not be
/// read: a root gone, or the source alone?).
async fn held_fresh(cx: &JobCtx, key: &SourceKey) -> bool {
    let Some(root) = cx.root_of(key) else {
        return false;
    };
    cx.health.check_now(key.root()).await.is_some()
        || cx.health.check_now(&root.output).await.is_some()
}

fn forget(cx: &JobCtx, key: &SourceKey) -> Action {
    cx.stability
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget(key);
    Action::Done
}

fn source_gone(ctx: &ReconcileCtx, key: &SourceKey) {
    forget(&ctx.jobs, key);
    if let Some(job) = ctx.jobs.jobs.get(key) {
        tracing::warn!(source = %key, "the source was deleted during its job; cancelling it");
        job.cancel_for(CancelReason::SourceDeleted);
    }
    release_claim(ctx, key);
}

/// Gives up the output claims of `key`.
fn release_claim(ctx: &ReconcileCtx, key: &SourceKey) {
    let mut claims = ctx.claims.lock().unwrap_or_else(|p| p.into_inner());
    claims.retain(|_, owner| owner != key);
}

/// Why `key` may not write `output`, if another source holds it.
fn conflict(
    ctx: &ReconcileCtx,
    key: &SourceKey,
    output: &std::path::Path,
    ours: bool,
) -> Option<String> {
    {
        let mut claims = ctx.claims.lock().unwrap_or_else(|p| p.into_inner());
        match claims.get(output) {
            // Reconcile tasks run side by side, so the claims' order is the tasks' order, not
            // the sources'. The first source in name order takes the claim over from a later
            // one as long as that one has no job and nothing was published: which of two
            // sources converts never depends on timing. (`submit_if_claimed` registers a job
            // only while its claim holds, under the same lock, so nothing is taken over from
            // a job about to start.)
            Some(other)
                if other != key
                    && key < other
                    && ctx.jobs.jobs.get(other).is_none()
                    && matches!(ctx.jobs.journal.owner_of(output), Ok(None)) =>
            {
                tracing::debug!(source = %key, later = %other, output = %output.display(), "the first source in name order takes over the output's claim");
                claims.insert(output.to_path_buf(), key.clone());
            }
            Some(other) if other != key && other.path().exists() => {
                return Some(format!(
                    "two sources map to the output {}: {} claimed it first, so {} is not \
                     converted; rename one of them",
                    output.display(),
                    other,
                    key
                ));
            }
            _ => {
                claims.insert(output.to_path_buf(), key.clone());
            }
        }
    }
    match ctx.jobs.journal.owner_of(output) {
        Ok(Some((root, rel))) if root != key.root_str() || rel != key.rel_str() => {
            return Some(format!(
                "the output {} was already published from {}/{}; {} is not converted so that \
                 it does not overwrite it; rename one of them",
                output.display(),
                root,
                rel,
                key
            ));
        }
        _ => {}
    }
    if !ours && output.exists() {
        return Some(format!(
            "the output {} already exists and was not written by this agent; {} is not \
             converted so that it does not overwrite it; move the existing file away",
            output.display(),
            key
        ));
    }
    None
}
