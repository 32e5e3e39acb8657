//! The jobs' context: what a job needs from the rest of the agent, each a small handle owned
//! elsewhere (the settings channel, the journal, the registry, the disk guard, the notifier...),
//! in the shape of kube-runtime's `Context<T>`. Cheap to share as an `Arc`; nothing in it is
//! locked for longer than a few statements.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::event::Events;
use super::metrics::JobMetrics;
use super::registry::Jobs;
use crate::disk::DiskGuard;
use crate::intake::Intake;
use crate::journal::Journal;
use crate::key::SourceKey;
use crate::notify::Notifier;
use crate::queue::WorkQueue;
use crate::readiness::Stability;
use crate::roots::Root;
use crate::settings::SettingsRx;
use crate::stats::Stats;

/// What jobs need from the rest of the agent: each a small handle owned elsewhere.
#[derive(Debug, Clone)]
pub struct JobCtx {
    /// The settings in force (a job takes a snapshot when it starts).
    pub settings: SettingsRx,
    /// The resolved watch roots.
    pub roots: Arc<[Root]>,
    /// The job journal.
    pub journal: Arc<Journal>,
    /// The keys to reconcile (a retry is a delayed requeue).
    pub queue: Arc<WorkQueue<SourceKey>>,
    /// The jobs in flight.
    pub jobs: Jobs,
    /// When each source's current size and time were first seen (forgotten after success).
    pub stability: Arc<Mutex<Stability>>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Where jobs record their outcome, duration and bytes.
    pub metrics: JobMetrics,
    /// What jobs did, for the fleet session.
    pub events: Events,
    /// Operator alerts.
    pub notifier: Notifier,
    /// The disk guard, checked before each job starts.
    pub disk: Arc<DiskGuard>,
    /// Which watch and output roots are missing or unreachable, checked before each job starts
    /// and before a source is deleted or moved.
    pub health: Arc<crate::root_health::RootHealth>,
    /// Whether jobs may start.
    pub intake: Arc<Intake>,
    /// Bounds how many jobs convert at once: a job holds a worker from its start until its
    /// transcode is done (verification and publication run after it gives the worker back).
    pub workers: Arc<Semaphore>,
    /// Bounds how many jobs run their readiness checks ahead of a worker, or wait for one
    /// checked (as many as workers, see [`super::ahead`]).
    pub ahead: Arc<Semaphore>,
    /// Every spawned job, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled at shutdown: stops every job.
    pub shutdown: CancellationToken,
    /// `--once`: neither intake nor the disk guard holds a job back.
    pub once: bool,
    /// Where ended attempts' history records wait for the controller; none without one.
    pub history: Option<Arc<crate::session::history::Outbox>>,
    /// Shadow work: offered each recording production converts (idle unless a rollout's
    /// shadow step names this agent).
    pub shadow: Arc<crate::shadow::Shadow>,
}

impl JobCtx {
    /// The root a key belongs to.
    pub fn root_of(&self, key: &SourceKey) -> Option<&Root> {
        crate::roots::root_of(&self.roots, key)
    }
}
