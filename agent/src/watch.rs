//! Noticing sources: a full scan at start-up, file-system events where they work, polling where
//! they do not (network shares), and a periodic full resync as a safety net.
//!
//! # Theory of operation
//! Everything here only *queues keys*; the reconciler decides. The notify callback is dumb: it
//! `try_send`s the event into a bounded channel. If the channel is full, an overflow flag makes
//! the forwarding task rescan every root instead, so no change is lost under an event storm. A
//! created folder is scanned at once (its files may predate its watch). Per root, `mode = "auto"`
//! uses events on local file systems and polling on network ones (from `/proc/mounts`), and
//! falls back to polling when the watcher cannot start (for example the inotify watch limit).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use h264_config::agent::WatchMode;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::key::SourceKey;
use crate::pipeline::Jobs;
use crate::plumbing::tasks::Tasks;
use crate::queue::WorkQueue;
use crate::roots::Root;

/// What the watchers work with: the roots they watch, the queue they feed, the jobs in flight
/// (a folder removed requeues its jobs' keys) and the shutdown that stops them.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The resolved watch roots.
    pub roots: Arc<[Root]>,
    /// The keys waiting for a reconcile.
    pub queue: Arc<WorkQueue<SourceKey>>,
    /// The jobs in flight.
    pub jobs: Jobs,
    /// Stops the watchers' tasks.
    pub shutdown: CancellationToken,
    /// Which roots are missing or unreachable: a held watch root is not scanned.
    pub health: Arc<crate::root_health::RootHealth>,
    /// Per root (by index): a rescan of it is going on (see [`rescan`]).
    pub scanning: Arc<[AtomicBool]>,
}

/// Queues every source under every root (sorted, so that the first of two sources that map to
/// one output is the same each time). Unreadable folders are logged and skipped.
pub fn scan_all(sources: &Sources) {
    for root in sources.roots.iter() {
        scan(sources, root, &root.source);
    }
}

/// Rescans one root (`Some(index)`) or every root in order (`None`) on the blocking pool, one
/// rescan per root at a time, waiting for each at most
/// [`CHECK_TIMEOUT`](crate::root_health::CHECK_TIMEOUT): a root on a share that stopped
/// answering holds up neither the other roots nor the caller (its scan ends when the share
/// answers; the root health check holds the root meanwhile, so later rescans skip it).
pub async fn rescan(sources: &Sources, root: Option<usize>) {
    let indexes: Vec<usize> = match root {
        Some(i) => vec![i],
        None => (0..sources.roots.len()).collect(),
    };
    for i in indexes {
        let Some(flag) = sources.scanning.get(i) else {
            continue;
        };
        if flag.swap(true, Ordering::AcqRel) {
            continue; // the last rescan of it is still going
        }
        let a = sources.clone();
        let _ = crate::root_health::bounded(move || {
            /// Clears the root's flag however the scan ends.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let _done = Done(&a.scanning[i]);
            scan(&a, &a.roots[i], &a.roots[i].source);
        })
        .await;
    }
}

/// Queues every source under `dir` of `root`. A held root (missing or unreachable) is not
/// scanned: its sources are neither queued nor taken for deleted until it is back.
pub fn scan(sources: &Sources, root: &Root, dir: &Path) {
    if sources.health.held_now(&root.source).is_some() {
        return;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = match std::fs::read_dir(&d) {
            Ok(rd) => rd.flatten().collect(),
            Err(_) if sources.health.check(&root.source).is_some() => return,
            Err(e) => {
                tracing::error!(folder = %d.display(), error = %e, "cannot read a watched folder; its recordings are not converted until it is readable");
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if root.cfg.recursive && !hidden {
                    subdirs.push(path);
                }
            } else if let Some(key) = root.key_for(&path) {
                sources.queue.add(key);
            }
        }
        // Depth-first in name order.
        stack.extend(subdirs.into_iter().rev());
    }
}

/// The file-system watchers, which stop when dropped (shared with the task that watches a root
/// again when it comes back).
pub type Watchers = Arc<Mutex<Vec<notify::RecommendedWatcher>>>;

/// Starts watching every root, and a full rescan every `resync`; returns the watchers, which
/// stop when dropped. A watch root that comes back after an outage is scanned at once and, when
/// it is watched with events, watched again (its old watch died with it).
pub fn start(sources: &Sources, resync: Duration, tasks: &Tasks) -> Watchers {
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>(4096);
    let overflow = Arc::new(AtomicBool::new(false));
    let mut watchers = Vec::new();
    for (index, root) in sources.roots.iter().enumerate() {
        let events = uses_events(root);
        let polled = !events
            || match make_watcher(root, tx.clone(), overflow.clone()) {
                Ok(w) => {
                    tracing::info!(root = %root.source.display(), "watching with file-system events");
                    watchers.push(w);
                    false
                }
                Err(e) => {
                    let hint = if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                        "; raise the limit with `sysctl fs.inotify.max_user_watches=524288`"
                    } else {
                        ""
                    };
                    tracing::warn!(root = %root.source.display(), error = %e, "file-system events unavailable, polling instead{hint}");
                    true
                }
            };
        if polled {
            let interval = root.cfg.poll_interval.get().max(Duration::from_millis(100));
            tracing::info!(root = %root.source.display(), ?interval, "watching by polling");
            spawn_periodic(sources, interval, Some(index), tasks);
        }
    }
    spawn_periodic(sources, resync, None, tasks);
    let watchers: Watchers = Arc::new(Mutex::new(watchers));
    let restored = sources.health.restored();
    let back = rewatch(
        sources.clone(),
        restored,
        tx,
        overflow.clone(),
        watchers.clone(),
    );
    tasks.spawn("watch roots back", back);
    tasks.spawn("watch events", forward(sources.clone(), rx, overflow));
    watchers
}

/// Scans each watch root that comes back, and watches it again when it is watched by events.
async fn rewatch(
    sources: Sources,
    mut restored: tokio::sync::broadcast::Receiver<std::path::PathBuf>,
    tx: mpsc::Sender<notify::Result<notify::Event>>,
    overflow: Arc<AtomicBool>,
    watchers: Watchers,
) {
    loop {
        let path = tokio::select! {
            _ = sources.shutdown.cancelled() => return,
            r = restored.recv() => match r {
                Ok(path) => path,
                // Missed some: look at every root.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    rescan(&sources, None).await;
                    continue;
                }
                Err(_) => return,
            },
        };
        let Some(index) = sources.roots.iter().position(|r| *r.source == *path) else {
            continue;
        };
        let root = &sources.roots[index];
        if uses_events(root) {
            match make_watcher(root, tx.clone(), overflow.clone()) {
                Ok(w) => watchers.lock().unwrap_or_else(|p| p.into_inner()).push(w),
                Err(e) => tracing::warn!(root = %root.source.display(), error = %e,
                    "cannot watch the root again with file-system events; the periodic resync finds its new files"),
            }
        }
        rescan(&sources, Some(index)).await;
    }
}

/// Whether `root` is watched with file-system events (as configured).
fn uses_events(root: &Root) -> bool {
    match root.cfg.mode {
        WatchMode::Poll => false,
        WatchMode::Events => true,
        WatchMode::Auto => !h264_config::mounts::on_network_fs(&root.source),
    }
}

fn make_watcher(
    root: &Root,
    tx: mpsc::Sender<notify::Result<notify::Event>>,
    overflow: Arc<AtomicBool>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event| {
        if tx.try_send(event).is_err() {
            overflow.store(true, Ordering::Relaxed);
        }
    })?;
    let mode = if root.cfg.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher.watch(&root.source, mode)?;
    Ok(watcher)
}

/// Rescans one root (`Some(index)`) or all roots every `interval` until shutdown.
fn spawn_periodic(sources: &Sources, interval: Duration, root: Option<usize>, tasks: &Tasks) {
    let sources = sources.clone();
    let name = if root.is_some() {
        "watch polling"
    } else {
        "watch resync"
    };
    tasks.spawn(name, async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = sources.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            rescan(&sources, root).await;
        }
    });
}

async fn forward(
    sources: Sources,
    mut rx: mpsc::Receiver<notify::Result<notify::Event>>,
    overflow: Arc<AtomicBool>,
) {
    loop {
        let event = tokio::select! {
            _ = sources.shutdown.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        if overflow.swap(false, Ordering::Relaxed) {
            tracing::warn!("file-system events overflowed; rescanning every root");
            rescan(&sources, None).await;
        }
        match event {
            Ok(event) => handle(&sources, &event),
            Err(e) => {
                tracing::warn!(error = %e, "file-system watch error; rescanning every root");
                rescan(&sources, None).await;
            }
        }
    }
}

fn handle(sources: &Sources, event: &notify::Event) {
    if matches!(
        event.kind,
        EventKind::Access(notify::event::AccessKind::Open(_))
    ) {
        return;
    }
    for path in &event.paths {
        let Some(root) = sources.roots.iter().find(|r| path.starts_with(&r.source)) else {
            continue;
        };
        if matches!(event.kind, EventKind::Create(_)) && path.is_dir() {
            scan(sources, root, path);
        } else if let Some(key) = root.key_for(path) {
            sources.queue.add(key);
        } else if !path.exists() && path.extension().is_none() {
            // A folder was removed or renamed away: its files' keys need a look.
            requeue_under(sources, path);
        }
    }
}

fn requeue_under(sources: &Sources, dir: &Path) {
    let keys: Vec<_> = sources
        .jobs
        .snapshot()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.path().starts_with(dir))
        .collect();
    for key in keys {
        sources.queue.add(key);
    }
}
