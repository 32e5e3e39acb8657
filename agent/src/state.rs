//! The running agent's shared state, handed to every task as `Arc<Agent>`.
//!
//! # Theory of operation
//! Locks here are `std::sync::Mutex`es around small maps, taken for a few statements and never
//! held across an `.await`. `jobs` maps each source with a job in flight to that job's cancel
//! handle: a key has at most one job, and the reconciler consults the map before starting one.
//! `claims` maps each output path to the source that claimed it first, which is how two sources
//! that map to one output are caught before either writes. `events` is a broadcast channel of
//! what jobs did, for the fleet session ([`crate::session`]); sending never blocks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use h264_config::AgentConfig;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::Journal;
use crate::key::{Fingerprint, SourceKey};
use crate::queue::WorkQueue;
use crate::readiness::Stability;
use crate::roots::Root;
use crate::stats::Stats;

/// Why a job was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The source disappeared (deleted or moved away).
    SourceDeleted,
    /// The source changed (a recorder wrote to it again).
    SourceChanged,
    /// An operator paused the agent and asked for running jobs to stop.
    Paused,
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

/// A running job's stage and progress.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// `waiting`, `validate`, `transcode`, `verify`, `captions`, `publish`.
    pub stage: String,
    /// Percent done of the current stage.
    pub percent: f64,
    /// Speed relative to real time.
    pub speed: f64,
    /// The attempt number.
    pub attempt: u32,
}

impl JobHandle {
    /// Cancels the job for `reason`.
    pub fn cancel_for(&self, reason: CancelReason) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.cancel.cancel();
    }
}

/// The configuration that shapes jobs (readiness, transcode, captions), as one revision. A job
/// takes it when it starts and keeps it to the end; applying a revision swaps in a new one.
#[derive(Debug)]
pub struct Pipeline {
    /// The effective configuration (the fleet's sections merged over the local file).
    pub config: AgentConfig,
    /// The fleet revision's generation; 0 for the local file.
    pub generation: u64,
    /// SHA256 of the canonical effective configuration.
    pub sha256: String,
    /// SHA256 of the settings that shape outputs (see [`crate::run::spec_hash`]).
    pub spec_hash: String,
}

impl Pipeline {
    /// The pipeline of `config` at `generation`.
    pub fn new(config: AgentConfig, generation: u64) -> Self {
        Self {
            sha256: config.canonical_sha256(),
            spec_hash: crate::run::spec_hash(&config),
            generation,
            config,
        }
    }
}

/// What a job did, told to the fleet as it happens.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// When.
    pub at: SystemTime,
    /// `converted`, or the journal state a failure led to (`failed`, `retrying`, `cancelled`,
    /// `interrupted`, `conflict`).
    pub kind: &'static str,
    /// The source.
    pub file: PathBuf,
    /// The stage it ended in.
    pub stage: String,
    /// What happened (empty for a conversion).
    pub message: String,
    /// The configuration generation the job ran under.
    pub generation: u64,
}

impl JobEvent {
    /// An event that happens now.
    pub fn now(
        kind: &'static str,
        file: &Path,
        stage: &str,
        message: &str,
        generation: u64,
    ) -> Self {
        Self {
            at: SystemTime::now(),
            kind,
            file: file.to_path_buf(),
            stage: stage.to_string(),
            message: message.to_string(),
            generation,
        }
    }
}

/// Everything the agent's tasks share.
#[derive(Debug)]
pub struct Agent {
    /// The configuration in force.
    pub config: AgentConfig,
    /// The agent's id.
    pub id: String,
    /// The resolved watch roots.
    pub roots: Vec<Root>,
    /// The job journal.
    pub journal: Journal,
    /// Keys waiting for a reconcile.
    pub queue: WorkQueue<SourceKey>,
    /// The configuration jobs run under; swapped when a revision is applied.
    pub pipeline: std::sync::RwLock<Arc<Pipeline>>,
    /// Counters.
    pub stats: Stats,
    /// Jobs in flight, by source.
    pub jobs: Mutex<HashMap<SourceKey, JobHandle>>,
    /// Which source claimed each output path.
    pub claims: Mutex<HashMap<PathBuf, SourceKey>>,
    /// When each source's current size and time were first seen.
    pub stability: Mutex<Stability>,
    /// Bounds how many jobs convert at once.
    pub workers: Arc<Semaphore>,
    /// Every spawned job, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled at shutdown: stops every job.
    pub shutdown: CancellationToken,
    /// `--once`: sources that are still being written are skipped, not waited for.
    pub once: bool,
    /// Whether jobs may start (manual pause, disk guard).
    pub intake: crate::intake::Intake,
    /// When the agent started.
    pub started_at: std::time::Instant,
    /// Warnings from loading the configuration, for `Ping`.
    pub config_warnings: Vec<String>,
    /// The id of the last job submitted (log lines of a job carry its id).
    pub next_job_id: std::sync::atomic::AtomicU64,
    /// Operator alerts: always logged, e-mailed when `[alerts.email]` is set.
    pub alerts: Option<Arc<crate::alerts::Alerter>>,
    /// Volumes and their free space, as the disk guard last saw them.
    pub volumes: Mutex<Vec<crate::disk::VolumeState>>,
    /// What jobs did, as it happens (see [`Agent::emit`]).
    pub events: tokio::sync::broadcast::Sender<JobEvent>,
    /// Where jobs record their outcome, duration and bytes (no-ops without telemetry).
    pub metrics: crate::metrics::JobMetrics,
    /// Shadow work for a rollout's shadow step (idle unless the controller asks).
    pub shadow: Arc<crate::shadow::Shadow>,
}

impl Agent {
    /// The pipeline in force now.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new pipeline; running jobs finish under the one they started with. Returns
    /// the previous one.
    pub fn swap_pipeline(&self, next: Pipeline) -> Arc<Pipeline> {
        let mut slot = self.pipeline.write().unwrap_or_else(|p| p.into_inner());
        tracing::info!(generation = next.generation, sha256 = %next.sha256, "configuration applied");
        std::mem::replace(&mut *slot, Arc::new(next))
    }

    /// Tells listeners (the fleet session) what a job did; without listeners it goes nowhere.
    pub fn emit(&self, event: JobEvent) {
        let _ = self.events.send(event);
    }

    /// The root a key belongs to.
    pub fn root_of(&self, key: &SourceKey) -> Option<&Root> {
        self.roots.iter().find(|r| *r.source == *key.root())
    }

    /// The job in flight for `key`, if any.
    pub fn job(&self, key: &SourceKey) -> Option<JobHandle> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// How many jobs are in flight.
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
