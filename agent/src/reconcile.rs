//! The reconciler: for one source key, compare what is (the file, the journal, the outputs on
//! disk) with what should be (a verified MP4 for every finished recording) and act on the
//! difference. Level-triggered: it re-reads the truth each time, so a missed or repeated event
//! costs nothing.
//!
//! # Theory of operation
//! A few reconcile tasks take keys from the [`crate::queue::WorkQueue`], which never hands out
//! one key twice at once. A reconcile is quick (a `stat`, a journal read, a `/proc` scan at
//! most); everything slow (probing, transcoding) runs in a job on the bounded worker pool
//! ([`crate::job`]). A reconcile ends with an [`Action`]: done, or look again after a delay.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::journal::JobState;
use crate::key::{Fingerprint, SourceKey};
use crate::readiness::{settle, Settled};
use crate::state::{Agent, CancelReason};
use crate::stats::Stats;

/// What to do with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing more until something changes.
    Done,
    /// Look again after this delay.
    RequeueAfter(Duration),
}

/// Runs reconcile tasks until the queue closes.
pub async fn run_workers(agent: Arc<Agent>, count: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        let agent = agent.clone();
        set.spawn(async move {
            while let Some(key) = agent.queue.next().await {
                let action = reconcile(&agent, &key).await;
                agent.queue.done(&key);
                if let Action::RequeueAfter(delay) = action {
                    agent.queue.add_after(key, delay);
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Reconciles one source.
pub async fn reconcile(agent: &Arc<Agent>, key: &SourceKey) -> Action {
    let Some(root) = agent.root_of(key) else {
        return Action::Done;
    };
    let path = key.path();
    if let Some(why) = crate::containment::leaves_root(root, key.rel()) {
        crate::containment::report(agent, key, root, &why);
        return forget(agent, key);
    }
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            source_gone(agent, key);
            return Action::Done;
        }
        Err(e) => {
            tracing::warn!(source = %path.display(), error = %e, "cannot read the source's metadata; will look again");
            return Action::RequeueAfter(Duration::from_secs(30));
        }
    };
    if !meta.is_file() {
        return Action::Done;
    }
    let fp = Fingerprint::of(&meta);
    if let Some(job) = agent.job(key) {
        if job.fingerprint != fp {
            tracing::warn!(source = %path.display(), "the source changed during its job; cancelling it");
            job.cancel_for(CancelReason::SourceChanged);
        }
        return Action::Done;
    }
    Stats::bump(&agent.stats.seen);
    let output = root.output_for(key.rel());
    let record = match agent.journal.get(key) {
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
            JobState::Succeeded if output.exists() => return forget(agent, key),
            JobState::Failed => return forget(agent, key),
            JobState::Retrying => {
                let due = rec.next_attempt_at.unwrap_or(SystemTime::UNIX_EPOCH);
                if let Ok(left) = due.duration_since(SystemTime::now()) {
                    return Action::RequeueAfter(left.max(Duration::from_millis(50)));
                }
            }
            _ => {}
        }
    }
    if let Some(conflict) = conflict(agent, key, &output, ours) {
        let known = record
            .as_ref()
            .is_some_and(|r| same_version && r.state == JobState::Conflict);
        if !known {
            tracing::error!(source = %path.display(), output = %output.display(), "{conflict}");
            Stats::bump(&agent.stats.conflicts);
            if let Err(e) = agent.journal.record_conflict(
                key,
                &fp,
                &agent.pipeline().spec_hash,
                &output,
                &conflict,
            ) {
                tracing::error!(error = %e, "could not record the conflict in the journal");
            }
        }
        return forget(agent, key);
    }
    let (settled, waited) = {
        let mut stability = agent.stability.lock().unwrap_or_else(|p| p.into_inner());
        let settled = settle(
            &mut stability,
            key,
            &meta,
            &agent.pipeline().config.readiness,
        );
        let waited = match settled {
            Settled::Ready => stability.take_wait(key),
            Settled::Wait { .. } => None,
        };
        (settled, waited)
    };
    match settled {
        Settled::Ready => {
            crate::job::submit(agent, key.clone(), fp, output, ours, waited);
            Action::Done
        }
        Settled::Wait { reason, recheck_in } => {
            let busy = reason.starts_with("open for writing") || reason.starts_with("still");
            if agent.once && busy {
                tracing::warn!(source = %path.display(), "not ready ({reason}); skipped in --once mode");
                Stats::bump(&agent.stats.not_ready);
                return Action::Done;
            }
            tracing::debug!(source = %path.display(), %reason, ?recheck_in, "not ready yet");
            Action::RequeueAfter(recheck_in)
        }
    }
}

fn forget(agent: &Agent, key: &SourceKey) -> Action {
    agent
        .stability
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .forget(key);
    Action::Done
}

fn source_gone(agent: &Agent, key: &SourceKey) {
    forget(agent, key);
    if let Some(job) = agent.job(key) {
        tracing::warn!(source = %key, "the source was deleted during its job; cancelling it");
        job.cancel_for(CancelReason::SourceDeleted);
    }
    let mut claims = agent.claims.lock().unwrap_or_else(|p| p.into_inner());
    claims.retain(|_, owner| owner != key);
}

/// Why `key` may not write `output`, if another source holds it.
fn conflict(
    agent: &Agent,
    key: &SourceKey,
    output: &std::path::Path,
    ours: bool,
) -> Option<String> {
    {
        let mut claims = agent.claims.lock().unwrap_or_else(|p| p.into_inner());
        match claims.get(output) {
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
    match agent.journal.owner_of(output) {
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
