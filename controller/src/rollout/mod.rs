//! Rollouts: one revision moved through steps (canary agents, growing percentages, soaks),
//! gated at each step, rolled back to the stable revision when a gate fails.
//!
//! # Theory of operation
//! One rollout is current at a time ([`Rollouts`] holds it behind a mutex). Entering a canary or
//! percent step grows the cohort (agents ordered canaries first, then by a stable hash of their
//! id; the member list is kept, so cohorts only grow) and assigns the new revision to it. A
//! [`Rollouts::tick`] (driven by registry changes and a timer, see [`drive`]) then evaluates the
//! step's gates against the registry: a NACK from a member, or an online member that has not
//! ACKed within `ack_deadline`, rolls back; so does a member seen connected during the rollout
//! that has been disconnected for longer than `max_lost` (gate `lost`). More offline members
//! than `max_unavailable` allows pause a cohort step until enough return (or `promote`).
//! During a soak (`pause: 30s`) the failure rate of the attempts run under the new revision
//! (agents' `converted`, `failed` and `retrying` events: a failed attempt counts when it happens,
//! whether it is retried or not) is compared with the threshold and with the stable agents',
//! counted the same way. A soak that saw fewer than `min_jobs` attempts is inconclusive (true
//! silence): the rollout pauses for a human.
//! A rollback assigns the stable revision (the fleet-wide target before the rollout) to every
//! agent at once, marked as rollback, and raises an alert (module `alert`: the gate with its
//! numbers, the step, the cohort, the action; an abort and an undo raise one too) through the
//! controller's [`h264_alerts::Alerter`], which logs it and e-mails it when configured. Every
//! change of the state is saved to the store as JSON before it is visible, with wall-clock
//! timestamps from the engine's [`Clock`], so a restarted controller continues the step and
//! its soak timer where they were.
//!
//! Every decision is a span of the rollout's trace (module `trace`: `rollout`, `rollout.step`,
//! `rollout.push`, `rollout.gate`, `rollout.rollback`), which continues the trace of the
//! request that started it; the assignments carry the push's (or rollback's) trace context to
//! the agents. Rollbacks are counted by cause for the metrics ([`Rollouts::rollbacks`]).
//!
//! A shadow step (module [`shadow`]) grows no cohort: it picks the agents that shadow (the
//! canary cohort, or a percentage), which keep the stable revision and also convert each
//! recording with the candidate, never published; the registry sends them the candidate as a
//! shadow assignment while the step is current ([`Rollouts::save`] keeps that target in step
//! with the state), and their comparisons gate the step.

mod alert;
mod engine;
pub mod shadow;
mod shadow_step;
mod trace;
mod verbs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use h264_config::fleet::{MaxUnavailable, Rollout, ShadowGates, Step};
use serde::{Deserialize, Serialize};

pub use engine::{drive, Rollouts};
pub use trace::RolloutTrace;
pub use verbs::VerbError;

use crate::registry::JobCounts;

/// Where the engine takes the time from (tests drive it by hand).
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::model::now_ms()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A rollout's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Created, no step entered yet.
    Pending,
    /// Moving through its steps.
    Progressing,
    /// Waiting for a human (`pause: {}`, an inconclusive gate, or `fleetctl rollout pause`).
    Paused,
    /// Every step passed; the revision is the new stable one.
    Succeeded,
    /// Stopped by the operator; the fleet is back on the stable revision.
    Aborted,
    /// A gate failed (or `undo`); the fleet is back on the stable revision.
    RolledBack,
    /// A newer apply or start replaced it.
    Superseded,
}

impl Phase {
    /// Its name in status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Progressing => "Progressing",
            Self::Paused => "Paused",
            Self::Succeeded => "Succeeded",
            Self::Aborted => "Aborted",
            Self::RolledBack => "RolledBack",
            Self::Superseded => "Superseded",
        }
    }

    /// Whether the rollout can still move.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Progressing | Self::Paused)
    }
}

/// One step, as the engine keeps it (durations in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepPlan {
    /// The first N agents (canaries first).
    Canary(u32),
    /// N% of all registered agents, rounded up.
    Percent(u8),
    /// A soak of this many milliseconds, or (None) a wait for a human.
    Pause(Option<u64>),
    /// Shadow for this many milliseconds, with N% of the fleet (None: the canary cohort).
    Shadow {
        /// The step's length.
        ms: u64,
        /// The cohort as a share of the fleet.
        percent: Option<u8>,
    },
}

impl StepPlan {
    /// How status output shows it.
    pub fn describe(self) -> String {
        match self {
            Self::Canary(n) => format!("canary: {n}"),
            Self::Percent(p) => format!("percent: {p}"),
            Self::Pause(Some(ms)) => format!(
                "pause: {}",
                humantime::format_duration(Duration::from_millis(ms))
            ),
            Self::Pause(None) => "pause: {}".into(),
            Self::Shadow { ms, percent } => format!(
                "shadow: {}{}",
                humantime::format_duration(Duration::from_millis(ms)),
                percent.map_or_else(String::new, |p| format!(", percent: {p}"))
            ),
        }
    }
}

impl From<Step> for StepPlan {
    fn from(s: Step) -> Self {
        match s {
            Step::Canary(n) => Self::Canary(n),
            Step::Percent(p) => Self::Percent(p),
            Step::Pause(d) => Self::Pause(d.map(|d| Duration::from(d).as_millis() as u64)),
            Step::Shadow(s) => Self::Shadow {
                ms: Duration::from(s.duration).as_millis() as u64,
                percent: s.percent,
            },
        }
    }
}

/// The thresholds of the gates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GatePlan {
    /// The largest share of failed attempts under the new revision that passes.
    pub max_failure_rate: f64,
    /// Fewer attempts in a soak is inconclusive.
    pub min_jobs: u32,
    /// Online cohort agents must ACK within this (ms).
    pub ack_deadline_ms: u64,
    /// How much worse than the stable agents' failure rate the new revision may be.
    pub baseline_margin: f64,
    /// A cohort agent seen connected and then disconnected for longer than this (ms) fails
    /// the `lost` gate.
    #[serde(default = "default_max_lost_ms")]
    pub max_lost_ms: u64,
    /// How many offline cohort agents a step tolerates before it waits.
    #[serde(default)]
    pub max_unavailable: Unavailable,
    /// The gates of shadow steps.
    #[serde(default)]
    pub shadow: ShadowGates,
    /// Shadow conversions an agent runs at once.
    #[serde(default = "default_shadow_workers")]
    pub shadow_workers: u32,
}

fn default_shadow_workers() -> u32 {
    1
}

fn default_max_lost_ms() -> u64 {
    h264_config::fleet::rollout::DEFAULT_MAX_LOST
        .get()
        .as_millis() as u64
}

/// `rollout.max_unavailable` as the engine keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Unavailable {
    /// Offline cohort agents never block the step.
    #[default]
    Unlimited,
    /// At most this many offline cohort agents (1 or more).
    Count(u32),
    /// At most this share of the cohort (1-100 %), rounded down.
    Percent(u8),
}

impl Unavailable {
    /// The number of offline agents a cohort of `cohort` agents tolerates; `None`: no limit.
    pub fn limit(self, cohort: usize) -> Option<usize> {
        match self {
            Self::Unlimited => None,
            Self::Count(n) => Some(n as usize),
            Self::Percent(p) => Some(usize::from(p) * cohort / 100),
        }
    }

    /// How status output shows it.
    pub fn describe(self) -> String {
        match self {
            Self::Unlimited => "unlimited".into(),
            Self::Count(n) => n.to_string(),
            Self::Percent(p) => format!("{p}%"),
        }
    }
}

impl From<MaxUnavailable> for Unavailable {
    fn from(m: MaxUnavailable) -> Self {
        match m {
            MaxUnavailable::Count(0) => Self::Unlimited,
            MaxUnavailable::Count(n) => Self::Count(n),
            MaxUnavailable::Percent(p) => Self::Percent(p),
        }
    }
}

/// The margin over the stable agents' failure rate that still passes.
pub const BASELINE_MARGIN: f64 = 0.05;

/// The plan of a rollout: its steps and gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<StepPlan>,
    /// The gates.
    pub gates: GatePlan,
}

impl From<&Rollout> for Plan {
    fn from(r: &Rollout) -> Self {
        Self {
            steps: r.steps.iter().copied().map(StepPlan::from).collect(),
            gates: GatePlan {
                max_failure_rate: r.analysis.max_failure_rate,
                min_jobs: r.analysis.min_jobs,
                ack_deadline_ms: Duration::from(r.analysis.ack_deadline).as_millis() as u64,
                baseline_margin: BASELINE_MARGIN,
                max_lost_ms: Duration::from(r.analysis.max_lost).as_millis() as u64,
                max_unavailable: r.max_unavailable.into(),
                shadow: r.analysis.shadow,
                shadow_workers: r.shadow.workers,
            },
        }
    }
}

/// A gate's verdict, with the numbers it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// When it was decided.
    pub at_ms: i64,
    /// The step (index into the plan).
    pub step: usize,
    /// "ack", "nack", "failure_rate", "baseline" or "data".
    pub gate: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured.
    pub measured: String,
    /// The threshold.
    pub threshold: String,
}

/// A rollout's whole state (what the store keeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    /// Its number.
    pub id: u64,
    /// The revision rolled out.
    pub generation: u64,
    /// The revision the fleet ran before (what a rollback goes back to).
    pub stable_generation: u64,
    /// Steps and gates.
    pub plan: Plan,
    /// Its phase.
    pub phase: Phase,
    /// The current step (== steps.len() when done).
    pub step: usize,
    /// When the current step began.
    pub step_started_ms: i64,
    /// The agents given the new revision, in the order they were chosen.
    pub cohort: Vec<String>,
    /// Attempt counts under the new and the stable revision when the cohort last grew.
    pub baseline_new: JobCounts,
    /// See `baseline_new`.
    pub baseline_stable: JobCounts,
    /// Why it is paused or ended.
    pub reason: String,
    /// Paused by the operator (resume continues the same step).
    pub paused_by_operator: bool,
    /// The gate verdicts so far.
    pub gates: Vec<GateResult>,
    /// Cohort agents seen connected during the rollout (only these can be lost).
    #[serde(default)]
    pub seen_online: BTreeSet<String>,
    /// Cohort agents seen connected that are now disconnected, and since when (ms).
    #[serde(default)]
    pub offline_since: BTreeMap<String, i64>,
    /// Paused because more cohort agents are offline than `max_unavailable` allows (the step
    /// goes on by itself when enough return).
    #[serde(default)]
    pub paused_for_unavailable: bool,
    /// When it was created, last changed, and ended.
    pub created_ms: i64,
    /// See `created_ms`.
    pub updated_ms: i64,
    /// See `created_ms`.
    pub finished_ms: Option<i64>,
    /// The trace its later spans continue (module `trace`), saved with it so that a restarted
    /// controller continues the same trace.
    #[serde(default)]
    pub trace: RolloutTrace,
    /// The agents of the current (or last) shadow step.
    #[serde(default)]
    pub shadow_cohort: Vec<String>,
    /// The comparisons reported during shadow steps (at most [`shadow::MAX_RECORDS`]).
    #[serde(default)]
    pub shadow: Vec<shadow::ShadowRecord>,
}

impl RolloutState {
    /// Whether the current step is a shadow step.
    pub fn in_shadow_step(&self) -> bool {
        matches!(
            self.plan.steps.get(self.step),
            Some(StepPlan::Shadow { .. })
        )
    }
}

/// ceil(percent × total / 100).
pub fn percent_of(percent: u8, total: usize) -> usize {
    (usize::from(percent) * total).div_ceil(100)
}

/// The stable hash that orders agents for cohorts (first 8 bytes of SHA256 of the id).
pub fn stable_hash(id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(id.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[cfg(test)]
mod tests;
