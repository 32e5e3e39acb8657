//! The operator's verbs (and apply's start): each a blocking call that changes the current
//! rollout and saves it.

use super::{alert, trace, Phase, Plan, RolloutState, Rollouts};

/// Why a verb cannot be done now.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerbError {
    /// There is no rollout (or none active, for the verbs that need one).
    #[error("{0}")]
    NoRollout(String),
    /// The verb does not fit the phase.
    #[error("{0}")]
    Phase(String),
    /// The request makes no sense (unknown revision, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Rollouts {
    /// Starts rolling `generation` out with `plan`, superseding an active rollout. The stable
    /// revision is the fleet-wide target now (the last that succeeded, or what every agent got).
    pub fn start(&self, generation: u64, plan: Plan) -> Result<RolloutState, VerbError> {
        if self.registry.revision(generation).is_none() {
            return Err(VerbError::Invalid(format!(
                "there is no revision {generation} (see `fleetctl get revisions`)"
            )));
        }
        let Some(stable) = self.registry.fleet_target().map(|d| d.generation) else {
            return Err(VerbError::Invalid(
                "no stable revision yet: the first revision is assigned to every agent by apply"
                    .into(),
            ));
        };
        if stable == generation {
            return Err(VerbError::Invalid(format!(
                "generation {generation} is already the fleet's revision"
            )));
        }
        if plan.steps.is_empty() {
            return Err(VerbError::Invalid(
                "a rollout needs at least one step".into(),
            ));
        }
        let now = self.clock.now_ms();
        let mut guard = self.lock();
        let mut id = 1;
        if let Some(old) = guard.as_mut() {
            id = old.id + 1;
            if old.phase.is_active() {
                old.phase = Phase::Superseded;
                old.reason = format!("superseded by the rollout of generation {generation}");
                old.finished_ms = Some(now);
                tracing::warn!(rollout = old.id, "rollout superseded");
                self.save(old);
                self.audit_decision("rollout.supersede", old, &old.reason.clone());
            }
        }
        tracing::info!(rollout = id, generation, stable, steps = %plan.describe(), "rollout started");
        let mut s = RolloutState {
            id,
            generation,
            stable_generation: stable,
            plan,
            phase: Phase::Progressing,
            step: 0,
            step_started_ms: now,
            cohort: Vec::new(),
            baseline_new: Default::default(),
            baseline_stable: Default::default(),
            reason: String::new(),
            paused_by_operator: false,
            gates: Vec::new(),
            seen_online: Default::default(),
            offline_since: Default::default(),
            paused_for_unavailable: false,
            created_ms: now,
            updated_ms: now,
            finished_ms: None,
            trace: Default::default(),
            shadow_cohort: Vec::new(),
            shadow: Vec::new(),
        };
        // The rollout's span continues the caller's trace; every later span continues it.
        let span = trace::rollout(&s);
        let _entered = span.enter();
        s.trace.rollout = trace::context_of(&span);
        self.registry.forget_refusals(generation);
        self.enter_step(&mut s, 0);
        *guard = Some(s.clone());
        drop(guard);
        self.tick();
        Ok(self.current().unwrap_or(s))
    }

    fn active<T>(
        &self,
        f: impl FnOnce(&Self, &mut RolloutState) -> Result<T, VerbError>,
    ) -> Result<T, VerbError> {
        let mut guard = self.lock();
        let Some(s) = guard.as_mut() else {
            return Err(VerbError::NoRollout("there is no rollout".into()));
        };
        if !s.phase.is_active() {
            return Err(VerbError::Phase(format!(
                "rollout {} of generation {} is {}, not running",
                s.id,
                s.generation,
                s.phase.as_str()
            )));
        }
        let out = f(self, s)?;
        self.save(s);
        Ok(out)
    }

    /// Holds the rollout at its step until `resume`.
    pub fn pause(&self) -> Result<RolloutState, VerbError> {
        self.active(|_, s| {
            s.phase = Phase::Paused;
            s.paused_by_operator = true;
            // Held until `resume`, which starts the step again (and checks again).
            s.paused_for_unavailable = false;
            s.reason = "paused by the operator (`fleetctl rollout resume` to go on)".into();
            Ok(s.clone())
        })
    }

    /// Continues: after an operator's pause the same step starts again; a wait for a human or
    /// an inconclusive soak moves to the next step.
    pub fn resume(&self) -> Result<RolloutState, VerbError> {
        self.active(|e, s| {
            if s.phase != Phase::Paused {
                return Err(VerbError::Phase("the rollout is not paused".into()));
            }
            s.phase = Phase::Progressing;
            if s.paused_by_operator {
                // The step starts again (its ACK deadline or soak too).
                s.paused_by_operator = false;
                let same = s.step;
                e.enter_step(s, same);
            } else {
                let next = s.step + 1;
                e.enter_step(s, next);
            }
            Ok(())
        })?;
        self.tick();
        Ok(self.current().expect("a rollout"))
    }

    /// Skips the current step (a pause, a soak), or (`full`) every remaining step.
    pub fn promote(&self, full: bool) -> Result<RolloutState, VerbError> {
        self.active(|e, s| {
            s.phase = Phase::Progressing;
            s.paused_by_operator = false;
            let next = if full { s.plan.steps.len() } else { s.step + 1 };
            e.enter_step(s, next);
            Ok(())
        })?;
        self.tick();
        Ok(self.current().expect("a rollout"))
    }

    /// Stops the rollout and puts every agent back on the stable revision.
    pub fn abort(&self) -> Result<RolloutState, VerbError> {
        self.active(|e, s| {
            e.roll_back(
                s,
                Phase::Aborted,
                "",
                "aborted by the operator".into(),
                String::new(),
                true,
            );
            Ok(s.clone())
        })
    }

    /// Instant rollback of a finished rollout: every agent gets `to` (default: the stable
    /// revision before the last rollout) at once, marked rollback.
    pub fn undo(&self, to: Option<u64>) -> Result<RolloutState, VerbError> {
        let mut guard = self.lock();
        let Some(s) = guard.as_mut() else {
            return Err(VerbError::NoRollout("there is no rollout to undo".into()));
        };
        if s.phase.is_active() {
            return Err(VerbError::Phase(
                "the rollout is still running: `fleetctl rollout abort` stops it".into(),
            ));
        }
        let to = to.unwrap_or(s.stable_generation);
        if self.registry.revision(to).is_none() {
            return Err(VerbError::Invalid(format!("there is no revision {to}")));
        }
        let span = trace::rollback(s, "", "undone by the operator", "", true);
        let _entered = span.enter();
        self.count_rollback("undo");
        let n = self.registry.assign_everyone(to, true);
        span.record("agents", n);
        span.record("phase", "RolledBack");
        if let Err(e) = self.store.record_assignment(
            to,
            "rollout undo",
            true,
            n,
            Some(crate::model::Desired {
                generation: to,
                rollback: true,
            }),
        ) {
            tracing::error!(error = %e, "cannot record the undo");
        }
        let before = s.phase;
        s.phase = Phase::RolledBack;
        s.stable_generation = to;
        s.reason = format!("undone by the operator: every agent back on generation {to}");
        s.finished_ms = Some(self.clock.now_ms());
        tracing::warn!(
            alert = true,
            rollout = s.id,
            to,
            "ALERT: rollout undone by the operator"
        );
        let revision = self.registry.revision(s.generation);
        self.alert(alert::undone(s, revision.as_deref(), before, to, n));
        self.save(s);
        Ok(s.clone())
    }

    /// Starts the last rollout again (same revision and plan) after a rollback or abort.
    pub fn retry(&self) -> Result<RolloutState, VerbError> {
        let Some(s) = self.current() else {
            return Err(VerbError::NoRollout("there is no rollout to retry".into()));
        };
        if !matches!(
            s.phase,
            Phase::RolledBack | Phase::Aborted | Phase::Superseded
        ) {
            return Err(VerbError::Phase(format!(
                "rollout {} is {}: only a rolled back, aborted or superseded rollout can be retried",
                s.id,
                s.phase.as_str()
            )));
        }
        self.start(s.generation, s.plan)
    }
}

impl Rollouts {
    /// A new revision assigned to every agent by apply (no strategy) supersedes a running
    /// rollout.
    pub fn supersede(&self, generation: u64) {
        let mut guard = self.lock();
        if let Some(s) = guard.as_mut().filter(|s| s.phase.is_active()) {
            s.phase = Phase::Superseded;
            s.reason = format!("superseded by generation {generation}, applied to every agent");
            s.finished_ms = Some(self.clock.now_ms());
            tracing::warn!(rollout = s.id, generation, "rollout superseded");
            self.save(s);
            self.audit_decision("rollout.supersede", s, &s.reason.clone());
        }
    }
}
