//! The agent's long-lived tasks (the control API, the disk guard, the watchers' forwarder and
//! rescans, the fleet session, the reconcilers...), each spawned under a name so that shutdown
//! can say which of them did not stop.
//!
//! # Theory of operation
//! One `tokio::task::JoinSet` holds them all, with each task's name by its id, behind a
//! `std::sync::Mutex` held only to spawn or to take the set; each task ends on its own when the
//! agent's shutdown token is cancelled. [`Tasks::stop`] waits for them up to a bound, names
//! those still running, and aborts them. Jobs are not here: they have their own `TaskTracker`
//! and grace period.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{Id, JoinSet};

#[derive(Debug, Default)]
struct Inner {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

/// A named set of long-lived tasks (a cheap clone; every clone spawns into the same set).
#[derive(Debug, Clone, Default)]
pub struct Tasks(Arc<Mutex<Inner>>);

impl Tasks {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `task` under `name` (on the current runtime).
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let mut inner = self.inner();
        let id = inner.set.spawn(task).id();
        inner.names.insert(id, name);
    }

    /// Waits up to `within` for every task to end (their shutdown must have been signalled);
    /// returns the names of those that did not, sorted, after aborting them. A task that
    /// panicked is logged.
    pub async fn stop(&self, within: Duration) -> Vec<&'static str> {
        let Inner { mut set, mut names } = std::mem::take(&mut *self.inner());
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, set.join_next_with_id()).await
        {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    if e.is_panic() {
                        let name = names.get(&e.id()).copied().unwrap_or("?");
                        tracing::error!(task = name, error = %e, "a task of the agent panicked");
                    }
                    e.id()
                }
            };
            names.remove(&id);
        }
        set.abort_all();
        while set.join_next().await.is_some() {}
        let mut left: Vec<&'static str> = names.into_values().collect();
        left.sort_unstable();
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn stop_names_the_tasks_that_ignore_shutdown() {
        let tasks = Tasks::default();
        let shutdown = CancellationToken::new();
        for name in ["disk guard", "watcher"] {
            let shutdown = shutdown.clone();
            tasks.spawn(name, async move { shutdown.cancelled().await });
        }
        tasks.spawn("stubborn", std::future::pending());
        tasks.spawn("short", async {});
        shutdown.cancel();
        let left = tasks.stop(Duration::from_millis(200)).await;
        assert_eq!(left, ["stubborn"]);
        assert!(tasks.stop(Duration::from_millis(10)).await.is_empty());
    }
}
