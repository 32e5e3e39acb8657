//! The jobs in flight, by source: at most one per key, and an entry that leaves the map when
//! its job ends, whatever way it ends ([`JobGuard`] removes it on drop).
//!
//! # Theory of operation
//! [`Jobs`] is a cheap clone around one `std::sync::Mutex<HashMap>`, taken for a few statements
//! and never held across an `.await`. [`Jobs::register`] inserts a key's [`JobHandle`] unless
//! the key has one, and returns the guard the job task keeps; the reconciler, the control API,
//! the watcher and the metrics only read the map or cancel through a handle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::progress::Live;
use crate::key::{Fingerprint, SourceKey};

/// Why a job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The source disappeared (deleted or moved away).
    SourceDeleted,
    /// The source changed (a recorder wrote to it again).
    SourceChanged,
    /// An operator paused the agent and asked for running jobs to stop.
    Paused,
    /// The job's output root went missing or unreachable ([`crate::root_health`]).
    OutputRootGone,
    /// The job's watch root went missing or unreachable ([`crate::root_health`]): its source
    /// is out of reach, not deleted.
    WatchRootGone,
}

/// A job in flight.
#[derive(Debug, Clone)]
pub struct JobHandle {
    /// Cancels the job (its FFmpeg is stopped).
    pub cancel: CancellationToken,
    /// Why it was cancelled, when not by shutdown.
    pub reason: Arc<Mutex<Option<CancelReason>>>,
    /// The source's fingerprint when the job started.
    pub fingerprint: Fingerprint,
    /// What the job is doing now, for the stats.
    pub live: Arc<Mutex<Live>>,
}

impl JobHandle {
    /// A handle for a job of the source at `fingerprint`, cancelled with `cancel`.
    pub fn new(cancel: CancellationToken, fingerprint: Fingerprint) -> Self {
        Self {
            cancel,
            reason: Arc::new(Mutex::new(None)),
            fingerprint,
            live: Arc::new(Mutex::new(Live::default())),
        }
    }

    /// Cancels the job for `reason`.
    pub fn cancel_for(&self, reason: CancelReason) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.cancel.cancel();
    }

    /// Why it was cancelled (`None`: not cancelled, or by shutdown).
    pub fn reason(&self) -> Option<CancelReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the job is doing now.
    pub fn live(&self) -> Live {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: Mutex<HashMap<SourceKey, JobHandle>>,
    last_id: AtomicU64,
}

/// The jobs in flight.
#[derive(Debug, Clone, Default)]
pub struct Jobs(Arc<Inner>);

/// A job's place in [`Jobs`]: dropping it removes the entry.
#[derive(Debug)]
pub struct JobGuard {
    jobs: Jobs,
    key: SourceKey,
    /// The job's id (log lines and the trace carry it).
    pub id: u64,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        self.jobs.lock().remove(&self.key);
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SourceKey, JobHandle>> {
        self.0.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `handle` for `key` unless a job of `key` is in flight; the guard gives the
    /// job its id and keeps the entry until it is dropped.
    pub fn register(&self, key: &SourceKey, handle: JobHandle) -> Option<JobGuard> {
        {
            let mut map = self.lock();
            if map.contains_key(key) {
                return None;
            }
            map.insert(key.clone(), handle);
        }
        Some(JobGuard {
            jobs: self.clone(),
            key: key.clone(),
            id: self.0.last_id.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// The job in flight for `key`, if any.
    pub fn get(&self, key: &SourceKey) -> Option<JobHandle> {
        self.lock().get(key).cloned()
    }

    /// How many jobs are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no job is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys and handles in flight now.
    pub fn snapshot(&self) -> Vec<(SourceKey, JobHandle)> {
        self.lock()
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect()
    }

    /// Cancels every job in flight for `reason`; returns how many.
    pub fn cancel_all(&self, reason: CancelReason) -> u32 {
        let handles: Vec<JobHandle> = self.lock().values().cloned().collect();
        for handle in &handles {
            handle.cancel_for(reason);
        }
        handles.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SourceKey {
        SourceKey::from_strings("/rec", name)
    }

    #[test]
    fn one_job_per_key_and_the_entry_leaves_with_its_guard() {
        let jobs = Jobs::default();
        let fp = Fingerprint::from_db(1, 2, 3);
        let a = jobs.register(&key("a.ts"), JobHandle::new(CancellationToken::new(), fp));
        let a = a.expect("registered");
        assert!(jobs
            .register(&key("a.ts"), JobHandle::new(CancellationToken::new(), fp))
            .is_none());
        let b = jobs
            .register(&key("b.ts"), JobHandle::new(CancellationToken::new(), fp))
            .expect("another key");
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(jobs.len(), 2);
        drop(a);
        assert!(jobs.get(&key("a.ts")).is_none());
        assert_eq!(jobs.cancel_all(CancelReason::Paused), 1);
        assert_eq!(
            jobs.get(&key("b.ts")).and_then(|h| h.reason()),
            Some(CancelReason::Paused)
        );
        drop(b);
        assert!(jobs.is_empty());
    }
}
