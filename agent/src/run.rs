//! Start-up, steady state and shutdown of the agent.
//!
//! # Theory of operation
//! Start-up checks what the agent cannot work without (state folder, journal, FFmpeg, watch
//! roots) and fails with a [`FatalError`] naming it. It then cleans up after a crash (leftover
//! temporaries, jobs the journal says were running), picks the start-up pipeline (the
//! last-known-good fleet revision over the local file, when there is a controller; see
//! [`crate::session`]), starts the watchers and the controller session, queues every source
//! once, and runs the reconcile tasks. Shutdown is two-phase: cancelling `shutdown` stops intake
//! and every job (each stops its FFmpeg's process group and records the job as interrupted); then
//! the agent waits for the jobs up to `shutdown_grace`, logs any that did not stop, and returns.
//! In `--once` mode the agent stops by itself when nothing is queued, delayed or running.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use h264_config::AgentConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::View;
use crate::disk::DiskGuard;
use crate::intake::Intake;
use crate::journal::{Journal, JournalError};
use crate::key::SourceKey;
use crate::metrics::{JobMetrics, Observed};
use crate::notify::Notifier;
use crate::pipeline::{Events, JobCtx, Jobs};
use crate::queue::WorkQueue;
use crate::readiness::Stability;
use crate::reconcile::ReconcileCtx;
use crate::roots::Root;
use crate::stats::{Snapshot, Stats};
use crate::watch::Sources;

/// How the agent runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Convert what is ready now, then return.
    pub once: bool,
    /// Warnings from loading the configuration, reported by `Ping`.
    pub config_warnings: Vec<String>,
    /// Configurations rejected at start-up (an invalid TOML replaced by its INI), alerted.
    pub config_rejected: Vec<String>,
    /// Where the agent's metrics go (see [`crate::metrics`]); none: they are not kept.
    pub meter: Option<opentelemetry::metrics::Meter>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// The counters at the end.
    pub stats: Snapshot,
}

impl RunSummary {
    /// Whether any file failed for good (or, in `--once` mode, was left waiting for a retry).
    pub fn any_failed(&self) -> bool {
        self.stats.failed > 0 || self.stats.conflicts > 0
    }
}

/// A problem that stops the agent from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// The state folder cannot be created or used.
    #[error("state folder {path}: {source}; check agent.state_dir and its permissions")]
    StateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The journal cannot be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// FFmpeg or ffprobe is missing or does not run.
    #[error("{program} does not run ({why}); install FFmpeg (`apt-get install ffmpeg`) or set transcode.{key}")]
    MissingTool {
        /// The program as configured.
        program: String,
        /// The config key that names it.
        key: &'static str,
        /// What went wrong.
        why: String,
    },
    /// A watch root cannot be used.
    #[error("{0}; check the [[watch]] section")]
    Root(std::io::Error),
    /// Another agent uses the state folder.
    #[error(transparent)]
    Lock(#[from] crate::plumbing::lock::LockError),
    /// The control address cannot be used (another agent listens there).
    #[error(transparent)]
    Control(#[from] crate::control::BindError),
}

/// Runs the agent until `shutdown` is cancelled (or, with `once`, until the work is done).
pub async fn run(
    config: AgentConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, FatalError> {
    let state_dir = config.agent.state_dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(|source| FatalError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let _lock = crate::plumbing::lock::acquire(&state_dir, &config.agent.control)?;
    let control = if options.once {
        None
    } else {
        let listener = crate::control::bind(&config.agent.control).await?;
        let token = crate::control_token::ControlToken::create(&state_dir).map_err(|source| {
            FatalError::StateDir {
                path: state_dir.clone(),
                source,
            }
        })?;
        Some((listener, token))
    };
    let journal = Journal::open(&state_dir)?;
    check_tool(&config.transcode.ffmpeg, "ffmpeg").await?;
    check_tool(&config.transcode.ffprobe, "ffprobe").await?;
    let roots = config
        .watch
        .iter()
        .map(Root::resolve)
        .collect::<Result<Vec<_>, _>>()
        .map_err(FatalError::Root)?;
    let outputs: Vec<PathBuf> = roots.iter().map(|r| r.output.clone()).collect();
    for pid in crate::orphans::kill_orphans(&outputs) {
        tracing::warn!(
            pid,
            "killed an FFmpeg left running by an earlier agent that crashed"
        );
    }
    for root in &roots {
        for path in crate::publish::remove_leftovers(&root.output) {
            tracing::info!(path = %path.display(), "removed a temporary file left by an earlier run");
        }
    }
    for job in journal.recover_interrupted()? {
        tracing::warn!(source = %Path::new(&job.root).join(&job.rel).display(), "a job was interrupted by a crash or kill; it will be redone");
    }
    let id = agent_id(&config);
    let alerts = match crate::alerts::Alerter::start(
        &config.alerts,
        &crate::alerts::Origin::agent(&id),
        &state_dir,
        shutdown.child_token(),
    ) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(error = %e, "alerts cannot start: they are only logged");
            None
        }
    };
    let notifier = Notifier::new(alerts);
    let crate::session::Startup {
        pipeline,
        revisions,
        problems: revision_problems,
    } = crate::session::startup(&config);
    // From here on the settings channel is the one configuration the agent reads; the local
    // file stays with the session, as the base its revisions are merged over.
    let local = Arc::new(config);
    let (settings_tx, settings) = crate::settings::channel(pipeline);
    let shutdown = shutdown.child_token();
    let roots: Arc<[Root]> = roots.into();
    let intake = Arc::new(Intake::default());
    let folders = roots
        .iter()
        .map(|r| r.output.clone())
        .chain(std::iter::once(state_dir.clone()))
        .collect();
    let disk = Arc::new(DiskGuard::new(
        folders,
        settings.clone(),
        intake.clone(),
        notifier.clone(),
    ));
    let jobs = Jobs::default();
    let queue = Arc::new(WorkQueue::new());
    let stats = Arc::new(Stats::default());
    let journal = Arc::new(journal);
    let job_ctx = Arc::new(JobCtx {
        settings: settings.clone(),
        roots: roots.clone(),
        journal: journal.clone(),
        queue: queue.clone(),
        jobs: jobs.clone(),
        stability: Arc::new(Mutex::new(Stability::default())),
        stats: stats.clone(),
        metrics: options
            .meter
            .as_ref()
            .map(JobMetrics::new)
            .unwrap_or_default(),
        events: Events::default(),
        notifier: notifier.clone(),
        disk: disk.clone(),
        intake: intake.clone(),
        workers: Arc::new(Semaphore::new(local.agent.workers.max(1))),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        once: options.once,
    });
    let view = View {
        id: id.clone(),
        started_at: std::time::Instant::now(),
        config_warnings: options.config_warnings.clone().into(),
        settings: settings.clone(),
        journal: journal.clone(),
        stats: stats.clone(),
        jobs: jobs.clone(),
        queue: queue.clone(),
        disk: disk.clone(),
        intake: intake.clone(),
        notifier: notifier.clone(),
    };
    // The gauges read these while the agent runs; they observe nothing once it is dropped.
    let observed = Arc::new(Observed {
        queue: queue.clone(),
        jobs: jobs.clone(),
        disk: disk.clone(),
        notifier: notifier.clone(),
    });
    if let Some(meter) = &options.meter {
        crate::metrics::observe(&observed, meter);
    }
    disk.check_now();
    let root_names: Vec<String> = roots
        .iter()
        .map(|r| r.source.display().to_string())
        .collect();
    let workers = local.agent.workers;
    notifier.lifecycle(&id, &root_names, workers, true);
    for rejected in &options.config_rejected {
        notifier.config_rejected(rejected, "running on the legacy INI beside it");
    }
    for problem in &revision_problems {
        notifier.config_rejected(problem, "running on the local configuration");
    }
    if let Some((listener, token)) = control {
        tracing::info!(addr = %local.agent.control, "control API listening");
        crate::control::serve(listener, view.clone(), token, shutdown.clone());
        tokio::spawn(disk.clone().run(shutdown.clone()));
    }
    let session = if options.once {
        None
    } else {
        let ctx = crate::session::SessionCtx {
            local: local.clone(),
            settings: settings_tx,
            view,
            events: job_ctx.events.clone(),
            shutdown: shutdown.clone(),
        };
        crate::session::spawn(ctx, revisions)
    };
    tracing::info!(
        agent = %id, workers, roots = roots.len(), once = options.once, "h264-agent started"
    );
    let sources = Sources {
        roots: roots.clone(),
        queue: queue.clone(),
        jobs: jobs.clone(),
        shutdown: shutdown.clone(),
    };
    let _watchers = if options.once {
        Vec::new()
    } else {
        crate::watch::start(&sources, local.agent.resync_interval.get())
    };
    let scan_started = std::time::Instant::now();
    {
        let sources = sources.clone();
        let _ = tokio::task::spawn_blocking(move || crate::watch::scan_all(&sources)).await;
    }
    let reconcile = Arc::new(ReconcileCtx::new(job_ctx.clone()));
    let reconcilers = tokio::spawn(crate::reconcile::run_workers(reconcile, 4));
    tokio::spawn(report_startup_reconcile(
        sources.clone(),
        stats.clone(),
        scan_started,
    ));
    if options.once {
        wait_until_idle(&queue, &jobs, &shutdown).await;
    } else {
        shutdown.cancelled().await;
        tracing::info!("shutting down: stopping intake and jobs");
    }
    shutdown.cancel();
    queue.close();
    job_ctx.tracker.close();
    let grace = local.agent.shutdown_grace.get();
    if tokio::time::timeout(grace, job_ctx.tracker.wait())
        .await
        .is_err()
    {
        let left: Vec<String> = jobs.snapshot().iter().map(|(k, _)| k.to_string()).collect();
        tracing::error!(
            ?left,
            ?grace,
            "jobs did not stop within the shutdown grace period; their FFmpeg processes are killed"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), reconcilers).await;
    if let Some(session) = session {
        let _ = tokio::time::timeout(Duration::from_secs(2), session).await;
    }
    let summary = RunSummary {
        stats: stats.snapshot(),
    };
    notifier.lifecycle(&id, &root_names, workers, false);
    notifier.flush(Duration::from_secs(5)).await;
    drop(observed);
    tracing::info!(?summary, "h264-agent stopped");
    Ok(summary)
}

/// Logs when the first pass over every source has been reconciled (jobs may still run), and
/// tells systemd the agent is ready (`READY=1`; nothing without `$NOTIFY_SOCKET`). While the
/// pass goes on, systemd is asked to wait longer every [`STARTUP_EXTEND`], so a large backlog
/// does not hit `TimeoutStartSec=` while it makes progress.
async fn report_startup_reconcile(
    sources: Sources,
    stats: Arc<Stats>,
    started: std::time::Instant,
) {
    let queue = &sources.queue;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut extended = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = sources.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if queue.depth() == 0 && queue.processing() == 0 {
            let seen = stats.snapshot().seen;
            tracing::info!(
                sources = seen,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "start-up reconcile finished"
            );
            let folders = sources.roots.len();
            h264_service::systemd::ready(&format!(
                "watching {folders} folder{}; start-up reconcile of {seen} sources finished",
                if folders == 1 { "" } else { "s" }
            ));
            return;
        }
        if extended.elapsed() >= STARTUP_EXTEND {
            extended = std::time::Instant::now();
            h264_service::systemd::extend_timeout(
                STARTUP_EXTEND * 3,
                &format!(
                    "start-up reconcile: {} sources seen, {} queued",
                    stats.snapshot().seen,
                    queue.depth()
                ),
            );
        }
    }
}

/// How often a start-up reconcile still under way asks systemd for more time.
const STARTUP_EXTEND: Duration = Duration::from_secs(10);

async fn wait_until_idle(queue: &WorkQueue<SourceKey>, jobs: &Jobs, shutdown: &CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut idle_ticks = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Two idle looks in a row, so that a key between queue and job is not missed.
        if queue.is_idle() && jobs.is_empty() {
            idle_ticks += 1;
            if idle_ticks >= 2 {
                return;
            }
        } else {
            idle_ticks = 0;
        }
    }
}

async fn check_tool(program: &Path, key: &'static str) -> Result<(), FatalError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("-version");
    let fail = |why: String| FatalError::MissingTool {
        program: program.display().to_string(),
        key,
        why,
    };
    match crate::plumbing::child::run_captured(
        &mut cmd,
        Duration::from_secs(20),
        &CancellationToken::new(),
    )
    .await
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(fail(format!(
            "`{} -version` exited with {}",
            program.display(),
            out.status
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The agent's id: `[agent] id`, else the host name.
pub fn agent_id(config: &AgentConfig) -> String {
    config.agent.id.clone().unwrap_or_else(host_name)
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "h264-agent".into())
}
