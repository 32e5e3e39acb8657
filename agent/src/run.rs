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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use h264_config::AgentConfig;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{Journal, JournalError};
use crate::queue::WorkQueue;
use crate::readiness::Stability;
use crate::roots::Root;
use crate::state::Agent;
use crate::stats::{Snapshot, Stats};

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
    Lock(#[from] crate::lock::LockError),
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
    let _lock = crate::lock::acquire(&state_dir, &config.agent.control)?;
    let control = if options.once {
        None
    } else {
        Some(crate::control::bind(&config.agent.control).await?)
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
    let crate::session::Startup {
        pipeline,
        revisions,
        problems: revision_problems,
    } = crate::session::startup(&config);
    let tracker = TaskTracker::new();
    let agent = Arc::new(Agent {
        pipeline: std::sync::RwLock::new(Arc::new(pipeline)),
        events: tokio::sync::broadcast::channel(1024).0,
        workers: Arc::new(Semaphore::new(config.agent.workers.max(1))),
        id,
        roots,
        journal,
        queue: WorkQueue::new(),
        stats: Stats::default(),
        jobs: Mutex::new(HashMap::new()),
        claims: Mutex::new(HashMap::new()),
        stability: Mutex::new(Stability::default()),
        tracker: tracker.clone(),
        shutdown: shutdown.child_token(),
        once: options.once,
        intake: crate::intake::Intake::default(),
        started_at: std::time::Instant::now(),
        config_warnings: options.config_warnings.clone(),
        volumes: Mutex::new(Vec::new()),
        next_job_id: std::sync::atomic::AtomicU64::new(0),
        alerts,
        metrics: options
            .meter
            .as_ref()
            .map(crate::metrics::JobMetrics::new)
            .unwrap_or_default(),
        shadow: Arc::new(crate::shadow::Shadow::new(
            config.agent.state_dir.join("shadow"),
            tracker.clone(),
            shutdown.child_token(),
        )),
        config,
    });
    if let Some(meter) = &options.meter {
        crate::metrics::observe(&agent, meter);
    }
    crate::disk::check_now(&agent);
    crate::notify::lifecycle(&agent, true);
    for rejected in &options.config_rejected {
        crate::notify::config_rejected(&agent, rejected, "running on the legacy INI beside it");
    }
    for problem in &revision_problems {
        crate::notify::config_rejected(&agent, problem, "running on the local configuration");
    }
    if let Some(listener) = control {
        tracing::info!(addr = %agent.config.agent.control, "control API listening");
        crate::control::serve(listener, agent.clone());
        tokio::spawn(crate::disk::run(agent.clone()));
    }
    let session = if options.once {
        None
    } else {
        crate::session::spawn(agent.clone(), revisions)
    };
    tracing::info!(
        agent = %agent.id, workers = agent.config.agent.workers, roots = agent.roots.len(),
        once = options.once, "h264-agent started"
    );
    let _watchers = if options.once {
        Vec::new()
    } else {
        crate::watch::start(&agent)
    };
    let scan_started = std::time::Instant::now();
    {
        let a = agent.clone();
        let _ = tokio::task::spawn_blocking(move || crate::watch::scan_all(&a)).await;
    }
    let reconcilers = tokio::spawn(crate::reconcile::run_workers(agent.clone(), 4));
    tokio::spawn(report_startup_reconcile(agent.clone(), scan_started));
    if options.once {
        wait_until_idle(&agent).await;
    } else {
        agent.shutdown.cancelled().await;
        tracing::info!("shutting down: stopping intake and jobs");
    }
    agent.shutdown.cancel();
    agent.queue.close();
    agent.tracker.close();
    let grace = agent.config.agent.shutdown_grace.get();
    if tokio::time::timeout(grace, agent.tracker.wait())
        .await
        .is_err()
    {
        let left: Vec<String> = agent
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|k| k.to_string())
            .collect();
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
        stats: agent.stats.snapshot(),
    };
    crate::notify::lifecycle(&agent, false);
    if let Some(alerts) = &agent.alerts {
        alerts.flush(Duration::from_secs(5)).await;
    }
    tracing::info!(?summary, "h264-agent stopped");
    Ok(summary)
}

/// Logs when the first pass over every source has been reconciled (jobs may still run), and
/// tells systemd the agent is ready (`READY=1`; nothing without `$NOTIFY_SOCKET`). While the
/// pass goes on, systemd is asked to wait longer every [`STARTUP_EXTEND`], so a large backlog
/// does not hit `TimeoutStartSec=` while it makes progress.
async fn report_startup_reconcile(agent: Arc<Agent>, started: std::time::Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut extended = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if agent.queue.depth() == 0 && agent.queue.processing() == 0 {
            let seen = agent.stats.snapshot().seen;
            tracing::info!(
                sources = seen,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "start-up reconcile finished"
            );
            let folders = agent.roots.len();
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
                    agent.stats.snapshot().seen,
                    agent.queue.depth()
                ),
            );
        }
    }
}

/// How often a start-up reconcile still under way asks systemd for more time.
const STARTUP_EXTEND: Duration = Duration::from_secs(10);

async fn wait_until_idle(agent: &Agent) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut idle_ticks = 0;
    loop {
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Two idle looks in a row, so that a key between queue and job is not missed.
        if agent.queue.is_idle() && agent.jobs_in_flight() == 0 {
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
    match crate::child::run_captured(&mut cmd, Duration::from_secs(20), &CancellationToken::new())
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

/// SHA256 of the settings that shape outputs: a change means new outputs would differ.
pub fn spec_hash(config: &AgentConfig) -> String {
    let t = &config.transcode;
    let shape = serde_json::json!({
        "preset": t.preset, "crf": t.crf, "profile": t.profile, "level": t.level,
        "pix_fmt": t.pix_fmt, "deinterlace": t.deinterlace, "remux": t.remux,
        "audio_bitrate": t.audio_bitrate, "extra_args": t.extra_args,
    });
    let digest = Sha256::digest(shape.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
