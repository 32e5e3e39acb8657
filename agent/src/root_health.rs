//! Watch and output roots that vanish or stop answering (a share not mounted, a server down;
//! security review M2) are environment faults, not job failures, and not sources deleted.
//!
//! - A root is unavailable when it is missing (ENOENT on the root itself), unreachable (EIO,
//!   ESTALE, ENOTCONN, EHOSTDOWN, any error reading it), not a folder, or a mount point (when
//!   first seen, [`crate::known_roots`]) now found on its parent's device: a share not mounted.
//! - An unavailable root is *held*: no job of it starts (looked at again in [`RECHECK`], no
//!   attempt counted, the journal untouched), its sources are not taken for deleted (no job
//!   cancelled as "source deleted", no journal entry dropped), nothing is written, deleted or
//!   moved for it. The other roots go on. A job that fails or loses its source while its root
//!   is gone is recorded as interrupted and redone when the root is back, never failed for good.
//! - A root is never recreated at run time ([`crate::fs_safe::prepare_output`] creates folders
//!   below it only), nor at start-up once it has been seen ([`crate::roots::Root::resolve`]).
//! - A root going away and coming back is logged once each way, raises one alert each way
//!   through the [`Notifier`] (queued on disk, never lost), and shows in the stats (`fleetctl
//!   agent stats`, `fleetctl status`) while it lasts, like the disk guard's hold.
//!
//! # Concurrency
//! One [`RootHealth`] per agent, shared as an `Arc`. Its held set and its checks in flight sit
//! behind short-held `std::sync::Mutex`es, never held across an `.await` or a file-system call.
//! [`RootHealth::run`] checks every root each [`RECHECK`] from a blocking thread; jobs and
//! reconciles check the root they need just before they act.
//!
//! A dead *hard-mounted* share does not fail a `stat`: the call never returns. So every check
//! runs on its own short-lived thread, at most one per root at a time, and its caller waits at
//! most [`CHECK_TIMEOUT`]: a root that has not answered by then is held ("no answer"), and every
//! later check of it answers at once from the check still in flight, until that one returns (the
//! thread is then gone, and the next check looks afresh). No caller, and no runtime worker, ever
//! waits on a dead share for longer than that. A root that comes back is announced on a
//! broadcast channel, which the watchers use to rescan it and watch it again.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::alerts::{Alert, AlertKind};
use crate::known_roots::RootKind;
use crate::notify::{fact, Notifier};
use crate::pipeline::failure::Failure;
use crate::pipeline::CancelReason;
use crate::roots::Root;

/// How soon a held root (and the jobs it holds) is looked at again.
pub const RECHECK: Duration = Duration::from_secs(2);

/// How long a root may take to answer a check before it is held as not answering (a dead
/// hard-mounted share, whose calls never return).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a check runs on a root: [`unavailable`], or in tests a named fake.
type Probe = fn(&Path, bool) -> Option<String>;

/// A check of one root in flight on its own thread.
#[derive(Debug)]
struct Pending {
    started: Instant,
    /// `Some(result)` once the check returned.
    outcome: Mutex<Option<Option<String>>>,
    done: Condvar,
}

/// The checks in flight, by root.
type InFlight = Arc<Mutex<HashMap<PathBuf, Arc<Pending>>>>;

/// A root the agent checks.
#[derive(Debug, Clone)]
struct Checked {
    path: PathBuf,
    kind: RootKind,
    /// It was a mount point when first seen: found on its parent's device, it is not mounted.
    mount_point: bool,
}

/// A root held because it is missing or unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRoot {
    /// The root.
    pub path: PathBuf,
    /// Watch or output.
    pub kind: RootKind,
    /// Why it is held.
    pub why: String,
    /// When it was found gone.
    pub since: SystemTime,
}

/// The roots' health: which are held, and the alerts when that changes.
#[derive(Debug)]
pub struct RootHealth {
    roots: Vec<Checked>,
    held: Mutex<BTreeMap<PathBuf, HeldRoot>>,
    in_flight: InFlight,
    probe: Probe,
    timeout: Duration,
    notifier: Notifier,
    restored: broadcast::Sender<PathBuf>,
}

/// Why `root` cannot be used now, if it cannot. `mount_point`: it was a mount point when first
/// seen.
pub fn unavailable(root: &Path, mount_point: bool) -> Option<String> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {
            if mount_point {
                let parent = root.parent().unwrap_or(Path::new("/"));
                if std::fs::metadata(parent).is_ok_and(|p| p.dev() == m.dev()) {
                    return Some(
                        "the share is not mounted: it was a mount point when the agent first saw \
                         it, and the folder is now on its parent's file system"
                            .into(),
                    );
                }
            }
            match std::fs::read_dir(root) {
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            }
        }
        Ok(_) => Some("it is not a folder".into()),
        Err(e) => Some(e.to_string()),
    }
}

/// Runs `call`, a file-system call under a root, on the blocking pool and waits for it at most
/// [`CHECK_TIMEOUT`]: `None` when it did not answer (the call goes on, on its pool thread, until
/// the share answers; the caller does not wait for it, and no runtime worker is blocked).
pub async fn bounded<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let task = tokio::task::spawn_blocking(call);
    match tokio::time::timeout(CHECK_TIMEOUT, task).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// The output root of `output`, the output of the source `rel` (the root is `rel`'s depth
/// above it).
pub fn output_root(output: &Path, rel: &Path) -> PathBuf {
    output
        .ancestors()
        .nth(rel.components().count())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

impl RootHealth {
    /// The health of `roots` (their watch and output folders), alerting through `notifier`.
    pub fn new(roots: &[Root], notifier: Notifier) -> Self {
        let mut checked = Vec::new();
        for root in roots {
            checked.push(Checked {
                path: root.source.to_path_buf(),
                kind: RootKind::Watch,
                mount_point: root.source_mount_point,
            });
            checked.push(Checked {
                path: root.output.clone(),
                kind: RootKind::Output,
                mount_point: root.output_mount_point,
            });
        }
        Self {
            roots: checked,
            held: Mutex::new(BTreeMap::new()),
            in_flight: InFlight::default(),
            probe: unavailable,
            timeout: CHECK_TIMEOUT,
            notifier,
            restored: broadcast::channel(16).0,
        }
    }

    /// Checks every root now, waiting up to [`CHECK_TIMEOUT`] for each (from a blocking
    /// thread, or at start-up).
    pub fn check_all(&self) {
        for root in &self.roots {
            let why = self.probe_bounded(root);
            self.update(root, why);
        }
    }

    /// Checks `root` now (a watch or output root of this agent); `Some(why)` while it is held.
    /// Waits at most [`CHECK_TIMEOUT`], however the share behaves (see the module's docs).
    pub fn check(&self, root: &Path) -> Option<String> {
        let checked = self.roots.iter().find(|r| r.path == root)?;
        let why = self.probe_bounded(checked);
        self.update(checked, why.clone());
        why
    }

    /// [`check`](Self::check) from async code: the wait (at most [`CHECK_TIMEOUT`]) is on the
    /// blocking pool, never on a runtime worker.
    pub async fn check_now(self: &Arc<Self>, root: &Path) -> Option<String> {
        let (health, root) = (self.clone(), root.to_path_buf());
        tokio::task::spawn_blocking(move || health.check(&root))
            .await
            .unwrap_or_else(|e| Some(format!("its check failed: {e}")))
    }

    /// Runs the probe of `root` on its own thread (or joins the one in flight) and waits for
    /// its answer until `timeout` after that check started.
    fn probe_bounded(&self, root: &Checked) -> Option<String> {
        let pending = match self.start_probe(root) {
            Ok(pending) => pending,
            Err(e) => return Some(format!("cannot start a thread to check it: {e}")),
        };
        let deadline = pending.started + self.timeout;
        let mut outcome = pending.outcome.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(why) = outcome.as_ref() {
                return why.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(format!(
                    "no answer within {} s: a hung share (its file server down or unreachable?)",
                    self.timeout.as_secs_f64()
                ));
            }
            outcome = pending
                .done
                .wait_timeout(outcome, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The check of `root` in flight, started now if there is none.
    fn start_probe(&self, root: &Checked) -> std::io::Result<Arc<Pending>> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = in_flight.get(&root.path) {
            return Ok(pending.clone());
        }
        let pending = Arc::new(Pending {
            started: Instant::now(),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        let (probe, path, mount_point) = (self.probe, root.path.clone(), root.mount_point);
        let (mine, all) = (pending.clone(), self.in_flight.clone());
        // Detached on purpose: a check stuck on a dead share must not hold up the agent's exit.
        std::thread::Builder::new()
            .name("root-check".into())
            .spawn(move || {
                let why = probe(&path, mount_point);
                *mine.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                mine.done.notify_all();
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                if all.get(&path).is_some_and(|p| Arc::ptr_eq(p, &mine)) {
                    all.remove(&path);
                }
            })?;
        in_flight.insert(root.path.clone(), pending.clone());
        Ok(pending)
    }

    /// Why `root` is held, as last checked (no file-system call).
    pub fn held_now(&self, root: &Path) -> Option<String> {
        self.lock().get(root).map(|h| h.why.clone())
    }

    /// The roots held now.
    pub fn held(&self) -> Vec<HeldRoot> {
        self.lock().values().cloned().collect()
    }

    /// Tells of each root that comes back (its path).
    pub fn restored(&self) -> broadcast::Receiver<PathBuf> {
        self.restored.subscribe()
    }

    /// Checks every root each [`RECHECK`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let health = self.clone();
            let _ = tokio::task::spawn_blocking(move || health.check_all()).await;
        }
    }

    /// A failure of a job (source under `source_root`, output `output` of the source `rel`)
    /// while one of its roots is gone becomes an interruption, redone when the root is back.
    pub async fn reclassify(
        self: &Arc<Self>,
        failure: Failure,
        reason: Option<CancelReason>,
        source_root: &Path,
        output: &Path,
        rel: &Path,
    ) -> (Failure, Option<CancelReason>) {
        let lost_source = reason == Some(CancelReason::SourceDeleted);
        if !matches!(failure, Failure::Failed { .. }) && !lost_source {
            return (failure, reason);
        }
        if self.check_now(&output_root(output, rel)).await.is_some() {
            (Failure::Cancelled, Some(CancelReason::OutputRootGone))
        } else if self.check_now(source_root).await.is_some() {
            (Failure::Cancelled, Some(CancelReason::WatchRootGone))
        } else {
            (failure, reason)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, HeldRoot>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the state of `root`; logs and alerts a change.
    fn update(&self, root: &Checked, why: Option<String>) {
        let changed = {
            let mut held = self.lock();
            match &why {
                Some(why) if !held.contains_key(&root.path) => {
                    held.insert(
                        root.path.clone(),
                        HeldRoot {
                            path: root.path.clone(),
                            kind: root.kind,
                            why: why.clone(),
                            since: SystemTime::now(),
                        },
                    );
                    true
                }
                None => held.remove(&root.path).is_some(),
                _ => false,
            }
        };
        if !changed {
            return;
        }
        let kind = root.kind.as_str();
        let path = root.path.display();
        match why {
            Some(why) => {
                tracing::warn!(
                    root = %path, kind,
                    "the {kind} root is missing or unreachable ({why}): its jobs wait, nothing \
                     is written, deleted or moved for it until it is back; it is never recreated"
                );
                self.notifier.send(Alert {
                    kind: AlertKind::RootUnavailable,
                    subject: format!("{kind} root missing or unreachable: {path}"),
                    facts: vec![fact("root", &path), fact("kind", kind), fact("error", &why)],
                    action: "its recordings wait (the other roots go on); nothing is written, \
                             deleted or moved for it, and it is not recreated; mount the share or \
                             bring its server back, and the agent resumes by itself"
                        .into(),
                    dedup_key: format!("root_unavailable:{path}"),
                });
            }
            None => {
                tracing::info!(root = %path, kind, "the {kind} root is back: its jobs start again");
                self.notifier.send(Alert {
                    kind: AlertKind::RootRestored,
                    subject: format!("{kind} root back: {path}"),
                    facts: vec![fact("root", &path), fact("kind", kind)],
                    action: "its recordings are converted again".into(),
                    dedup_key: format!("root_restored:{path}"),
                });
                let _ = self.restored.send(root.path.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_rel_depth_above_the_output() {
        assert_eq!(
            output_root(Path::new("/out/day 1/a.mp4"), Path::new("day 1/a.ts")),
            Path::new("/out")
        );
        assert_eq!(
            output_root(Path::new("/out/a.mp4"), Path::new("a.ts")),
            Path::new("/out")
        );
    }

    #[test]
    fn a_mount_point_found_on_its_parents_device_is_not_mounted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(unavailable(dir.path(), false).is_none());
        let why = unavailable(dir.path(), true).unwrap();
        assert!(why.contains("not mounted"), "{why}");
        let gone = unavailable(&dir.path().join("gone"), false).unwrap();
        assert!(gone.contains("No such file"), "{gone}");
    }

    /// A NAMED FAKE, for a failure that cannot be produced here for real (a dead hard-mounted
    /// share needs a mount, i.e. root privileges): a probe that does not return until released.
    static FAKE_SHARE_DEAD: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(true);

    fn fake_hung_share(_: &Path, _: bool) -> Option<String> {
        while FAKE_SHARE_DEAD.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    #[test]
    fn a_share_that_never_answers_is_held_without_waiting_on_it_and_back_when_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut health = RootHealth::new(&[], Notifier::new(None));
        health.roots.push(Checked {
            path: dir.path().to_path_buf(),
            kind: RootKind::Output,
            mount_point: false,
        });
        health.probe = fake_hung_share;
        health.timeout = Duration::from_millis(300);
        let mut restored = health.restored();

        // The caller gets its answer although the share never answers.
        let why = health.check(dir.path()).expect("held");
        assert!(why.contains("no answer within 0.3 s"), "{why}");
        assert_eq!(health.held().len(), 1);
        assert!(health.held_now(dir.path()).is_some());
        // Later checks answer from the check still in flight: one thread per root, at most.
        let again = std::time::Instant::now();
        assert!(health.check(dir.path()).is_some());
        assert!(
            again.elapsed() < health.timeout,
            "the second check waited again"
        );
        assert_eq!(health.in_flight.lock().unwrap().len(), 1);

        // The share answers: its check ends, and the next one finds the root back.
        FAKE_SHARE_DEAD.store(false, std::sync::atomic::Ordering::SeqCst);
        while !health.in_flight.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(health.check(dir.path()), None);
        assert!(health.held().is_empty());
        assert_eq!(restored.try_recv().unwrap(), dir.path());
    }
}
