//! The composition root: every handle the agent's subsystems own is created here, once, and
//! each subsystem receives only the handles it needs ([`JobCtx`] for jobs, [`View`] for the
//! control API and the session, [`Sources`] for the watchers, [`Observed`] for the metrics'
//! gauges). [`Wired`] itself is never passed to anything: it exists so that [`super::run`] can
//! start and stop the agent.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use h264_config::AgentConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::options::{agent_id, RunOptions};
use crate::control::View;
use crate::disk::DiskGuard;
use crate::intake::Intake;
use crate::journal::Journal;
use crate::key::SourceKey;
use crate::metrics::{JobMetrics, Observed};
use crate::notify::Notifier;
use crate::pipeline::{Events, JobCtx, Jobs};
use crate::queue::WorkQueue;
use crate::readiness::Stability;
use crate::roots::Root;
use crate::session::SessionCtx;
use crate::settings::{Settings, SettingsTx};
use crate::stats::Stats;
use crate::watch::Sources;

/// The agent's handles, wired.
#[derive(Debug)]
pub struct Wired {
    /// The local configuration file (the session's merge base; the sections that no
    /// revision changes, read at start-up).
    pub local: Arc<AgentConfig>,
    /// The sending half of the settings channel, for the session.
    pub settings: SettingsTx,
    /// The jobs' context.
    pub jobs: Arc<JobCtx>,
    /// The read model of the control API and the session.
    pub view: View,
    /// What the watchers work with.
    pub sources: Sources,
    /// What the metrics' gauges read; dropped when the run ends.
    pub observed: Arc<Observed>,
}

impl Wired {
    /// Creates every handle. `initial`: the settings the agent starts with; the agent's id
    /// comes from `local` ([`agent_id`]).
    pub fn new(
        local: AgentConfig,
        initial: Settings,
        journal: Journal,
        roots: Vec<Root>,
        notifier: Notifier,
        options: &RunOptions,
        shutdown: &CancellationToken,
    ) -> Self {
        let local = Arc::new(local);
        let (settings_tx, settings) = crate::settings::channel(initial);
        let health = Arc::new(crate::root_health::RootHealth::new(
            &roots,
            notifier.clone(),
        ));
        let roots: Arc<[Root]> = roots.into();
        let intake = Arc::new(Intake::default());
        let folders = roots
            .iter()
            .map(|r| r.output.clone())
            .chain(std::iter::once(local.agent.state_dir.clone()))
            .collect();
        let disk = Arc::new(DiskGuard::new(
            folders,
            settings.clone(),
            intake.clone(),
            notifier.clone(),
        ));
        let tracker = TaskTracker::new();
        let shadow = Arc::new(crate::shadow::Shadow::new(
            local.agent.state_dir.join("shadow"),
            tracker.clone(),
            shutdown.child_token(),
        ));
        disk.guard_shadow(shadow.clone());
        let registry = Jobs::default();
        let queue: Arc<WorkQueue<SourceKey>> = Arc::new(WorkQueue::new());
        let stats = Arc::new(Stats::default());
        let journal = Arc::new(journal);
        let jobs = Arc::new(JobCtx {
            settings: settings.clone(),
            roots: roots.clone(),
            journal: journal.clone(),
            queue: queue.clone(),
            jobs: registry.clone(),
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
            health: health.clone(),
            intake: intake.clone(),
            workers: Arc::new(Semaphore::new(local.agent.workers.max(1))),
            ahead: Arc::new(Semaphore::new(local.agent.workers.max(1))),
            tracker,
            shutdown: shutdown.clone(),
            once: options.once,
            history: crate::session::history::open_for(&local).map(Arc::new),
            shadow,
        });
        let view = View {
            id: agent_id(&local),
            started_at: std::time::Instant::now(),
            config_warnings: options.config_warnings.clone().into(),
            settings,
            journal,
            stats,
            jobs: registry.clone(),
            queue: queue.clone(),
            disk: disk.clone(),
            health: health.clone(),
            intake,
            notifier: notifier.clone(),
        };
        let sources = Sources {
            scanning: roots.iter().map(|_| AtomicBool::new(false)).collect(),
            roots,
            queue: queue.clone(),
            jobs: registry.clone(),
            shutdown: shutdown.clone(),
            health,
        };
        let observed = Arc::new(Observed {
            queue,
            jobs: registry,
            disk,
            notifier,
        });
        Self {
            local,
            settings: settings_tx,
            jobs,
            view,
            sources,
            observed,
        }
    }

    /// The fleet session's context.
    pub fn session(&self) -> SessionCtx {
        SessionCtx {
            local: self.local.clone(),
            settings: self.settings.clone(),
            view: self.view.clone(),
            events: self.jobs.events.clone(),
            shutdown: self.jobs.shutdown.clone(),
            history: self.jobs.history.clone(),
            shadow: self.jobs.shadow.clone(),
        }
    }

    /// The watch roots' source folders, for the log and the alerts.
    pub fn root_names(&self) -> Vec<String> {
        self.sources
            .roots
            .iter()
            .map(|r| r.source.display().to_string())
            .collect()
    }
}
