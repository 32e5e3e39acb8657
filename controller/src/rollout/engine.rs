//! The engine: the current rollout, its step transitions and gates (module docs of
//! [`crate::rollout`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use h264_alerts::{Alert, Alerter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::alert::{self, Failed};
use super::trace;
use super::{percent_of, stable_hash, Clock, GateResult, Phase, Plan, RolloutState, StepPlan};
use crate::registry::{Registry, RolloutAgent};
use crate::store::Store;

/// The rollout engine.
#[derive(Debug)]
pub struct Rollouts {
    pub(super) registry: Arc<Registry>,
    pub(super) store: Arc<Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) current: Mutex<Option<RolloutState>>,
    changes: watch::Sender<u64>,
    /// Where rollbacks, aborts and undos are raised (logged, e-mailed when configured); none:
    /// only this module's own log lines.
    alerts: Option<Arc<Alerter>>,
    /// Rollbacks since the controller started, by cause (the failed gate, `abort`, `undo`).
    rollbacks: Mutex<BTreeMap<String, u64>>,
}

impl Rollouts {
    /// The engine, with the newest rollout the store holds (an active one continues).
    pub fn load(
        registry: Arc<Registry>,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::store::StoreError> {
        let current = store.latest_rollout()?.and_then(|text| {
            match serde_json::from_str::<RolloutState>(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the saved rollout; ignoring it");
                    None
                }
            }
        });
        if let Some(s) = &current {
            tracing::info!(
                rollout = s.id,
                generation = s.generation,
                phase = s.phase.as_str(),
                step = s.step,
                "rollout loaded"
            );
            if s.phase.is_active() {
                // What is pushed to the cohort from now on joins the rollout's trace.
                registry.adopt_trace(s.generation, &s.cohort, &s.trace.step);
            }
        }
        let engine = Self {
            registry,
            store,
            clock,
            current: Mutex::new(current),
            changes: watch::Sender::new(0),
            alerts: None,
            rollbacks: Mutex::new(BTreeMap::new()),
        };
        if let Some(s) = engine.lock().as_ref() {
            engine.sync_shadow_target(s);
        }
        Ok(engine)
    }

    /// Raises the rollout alerts through `alerter` from now on.
    pub fn with_alerter(mut self, alerter: Arc<Alerter>) -> Self {
        self.alerts = Some(alerter);
        self
    }

    /// Raises `alert` (never waits on the network; see [`Alerter::send`]).
    pub(super) fn alert(&self, alert: Alert) {
        if let Some(alerter) = &self.alerts {
            alerter.send(alert);
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Option<RolloutState>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that sees every change of the rollout.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The current (or last) rollout.
    pub fn current(&self) -> Option<RolloutState> {
        self.lock().clone()
    }

    /// The current (or last) rollout's phase.
    pub fn phase(&self) -> Option<Phase> {
        self.lock().as_ref().map(|s| s.phase)
    }

    /// Rollbacks since the controller started, by cause: the failed gate, `abort` or `undo`.
    pub fn rollbacks(&self) -> Vec<(String, u64)> {
        let counts = self.rollbacks.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts one rollback.
    pub(super) fn count_rollback(&self, cause: &str) {
        let mut counts = self.rollbacks.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(cause.to_owned()).or_default() += 1;
    }

    /// Saves the state and tells watchers (blocking: SQLite).
    pub(super) fn save(&self, s: &mut RolloutState) {
        s.updated_ms = self.clock.now_ms();
        self.sync_shadow_target(s);
        match serde_json::to_string(s) {
            Ok(text) => {
                if let Err(e) = self.store.save_rollout(s.id, s.generation, &text) {
                    tracing::error!(error = %e, rollout = s.id, "cannot save the rollout state");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the rollout state"),
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Evaluates the current rollout's gates and moves it on (blocking: may write SQLite).
    pub fn tick(&self) {
        let mut guard = self.lock();
        let Some(s) = guard.as_mut() else {
            return;
        };
        if s.phase == Phase::Pending {
            s.phase = Phase::Progressing;
            self.enter_step(s, 0);
        }
        let mut changed = self.track(s);
        changed |= self.take_shadow(s);
        // A wait (for a human, an inconclusive soak, offline agents) still watches for lost
        // agents; an operator's pause holds everything.
        if s.phase == Phase::Paused && !s.paused_by_operator && self.lost_gate(s) {
            self.save(s);
            return;
        }
        if s.phase == Phase::Paused && s.paused_for_unavailable {
            let (offline, limit) = self.unavailable(s);
            if limit.is_none_or(|l| offline <= l) {
                // Enough came back: the step goes on, its ACK deadline starting again.
                s.phase = Phase::Progressing;
                s.paused_for_unavailable = false;
                s.step_started_ms = self.clock.now_ms();
                s.reason.clear();
                tracing::info!(
                    rollout = s.id,
                    step = s.step,
                    offline,
                    "rollout continues: cohort agents returned"
                );
                changed = true;
            }
        }
        while s.phase == Phase::Progressing {
            match self.evaluate(s) {
                Verdict::Wait => break,
                Verdict::Next => {
                    let next = s.step + 1;
                    self.enter_step(s, next);
                    changed = false;
                }
                Verdict::Changed => {
                    changed = true;
                    break;
                }
            }
        }
        if changed {
            self.save(s);
        }
    }

    /// Makes step `i` current: grows the cohort and assigns, or starts a soak or a wait; past
    /// the last step, the rollout succeeded. Saves.
    pub(super) fn enter_step(&self, s: &mut RolloutState, i: usize) {
        let span = trace::step(s, i);
        let _entered = span.enter();
        s.trace.step = trace::context_of(&span);
        let now = self.clock.now_ms();
        s.step = i;
        s.step_started_ms = now;
        s.paused_for_unavailable = false;
        if !matches!(s.plan.steps.get(i), Some(StepPlan::Pause(_))) {
            // A soak counts the attempts since its cohort last grew (the ACKs included).
            s.baseline_new = self.registry.job_counts(s.generation);
            s.baseline_stable = self.registry.job_counts(s.stable_generation);
        }
        match s.plan.steps.get(i).copied() {
            None => {
                let everyone: Vec<String> = self
                    .registry
                    .rollout_agents(s.generation)
                    .into_iter()
                    .filter(|a| a.desired != Some(s.generation))
                    .map(|a| a.id)
                    .collect();
                let n = if everyone.is_empty() {
                    self.registry.assign_everyone(s.generation, false)
                } else {
                    let push = trace::push(s, everyone.len(), &everyone);
                    push.in_scope(|| self.registry.assign_everyone(s.generation, false))
                };
                self.record_target(s.generation, false, n);
                s.cohort = self
                    .registry
                    .rollout_agents(s.generation)
                    .into_iter()
                    .map(|a| a.id)
                    .collect();
                s.phase = Phase::Succeeded;
                s.reason = format!("every step passed; generation {} is stable", s.generation);
                s.finished_ms = Some(now);
                tracing::info!(
                    rollout = s.id,
                    generation = s.generation,
                    "rollout succeeded"
                );
            }
            Some(StepPlan::Canary(n)) => self.grow(s, n as usize),
            Some(StepPlan::Percent(p)) => {
                let total = self.registry.rollout_agents(s.generation).len();
                self.grow(s, percent_of(p, total));
            }
            Some(StepPlan::Pause(None)) => {
                s.phase = Phase::Paused;
                s.reason = "waiting for a human (`fleetctl rollout resume` or `promote`)".into();
            }
            Some(StepPlan::Pause(Some(_))) => {}
            Some(StepPlan::Shadow { percent, .. }) => self.pick_shadow_cohort(s, percent),
        }
        if s.phase == Phase::Progressing {
            s.reason.clear();
        }
        tracing::info!(
            rollout = s.id,
            step = i,
            cohort = s.cohort.len(),
            phase = s.phase.as_str(),
            "rollout step"
        );
        trace::step_done(&span, s);
        self.save(s);
    }

    /// Adds agents to the cohort until it holds `size` (or every agent), and assigns them.
    fn grow(&self, s: &mut RolloutState, size: usize) {
        let mut agents = self.registry.rollout_agents(s.generation);
        agents.sort_by_cached_key(|a| (!a.canary, stable_hash(&a.id), a.id.clone()));
        let mut members: HashSet<String> = s.cohort.iter().cloned().collect();
        let before = s.cohort.len();
        for a in agents {
            if s.cohort.len() >= size {
                break;
            }
            if members.insert(a.id.clone()) {
                if a.connected {
                    s.seen_online.insert(a.id.clone());
                }
                s.cohort.push(a.id);
            }
        }
        let added = &s.cohort[before..];
        let assign = || self.registry.assign_agents(s.generation, &s.cohort, false);
        if added.is_empty() {
            assign();
        } else {
            trace::push(s, added.len(), added).in_scope(assign);
        }
    }

    /// Notes which cohort agents are connected: one seen connected and now gone is lost from
    /// the first tick that sees it gone. Returns whether anything changed.
    fn track(&self, s: &mut RolloutState) -> bool {
        if !s.phase.is_active() {
            return false;
        }
        let now = self.clock.now_ms();
        let connected: HashMap<String, bool> = self
            .registry
            .rollout_agents(s.generation)
            .into_iter()
            .map(|a| (a.id, a.connected))
            .collect();
        let mut changed = false;
        for id in &s.cohort {
            // An agent deleted from the registry is gone for good: it counts as lost too.
            if connected.get(id).copied().unwrap_or(false) {
                changed |= s.seen_online.insert(id.clone());
                changed |= s.offline_since.remove(id).is_some();
            } else if s.seen_online.contains(id) && !s.offline_since.contains_key(id) {
                s.offline_since.insert(id.clone(), now);
                changed = true;
            }
        }
        changed
    }

    /// The `lost` gate: a cohort agent seen connected and gone for longer than `max_lost`
    /// rolls back (returns true, the caller saves).
    fn lost_gate(&self, s: &mut RolloutState) -> bool {
        let now = self.clock.now_ms();
        let max_lost_ms = s.plan.gates.max_lost_ms;
        let mut lost: Vec<(&String, i64)> = s
            .offline_since
            .iter()
            .map(|(id, since)| (id, now - since))
            .filter(|(_, gone)| *gone > max_lost_ms as i64)
            .collect();
        if lost.is_empty() {
            return false;
        }
        lost.sort_by_key(|(id, gone)| (std::cmp::Reverse(*gone), (*id).clone()));
        let list: Vec<String> = lost
            .iter()
            .map(|(id, gone)| format!("{id} disconnected for {}", ms(*gone as u64)))
            .collect();
        let measured = format!("{} lost: {}", lost.len(), list.join(", "));
        let threshold = format!("no cohort agent lost longer than {}", ms(max_lost_ms));
        self.roll_back(s, Phase::RolledBack, "lost", measured, threshold, false);
        true
    }

    /// Offline cohort agents now, and how many `max_unavailable` tolerates (`None`: any).
    fn unavailable(&self, s: &RolloutState) -> (usize, Option<usize>) {
        let connected: HashSet<String> = self
            .registry
            .rollout_agents(s.generation)
            .into_iter()
            .filter(|a| a.connected)
            .map(|a| a.id)
            .collect();
        let offline = s
            .cohort
            .iter()
            .filter(|id| !connected.contains(*id))
            .count();
        (offline, s.plan.gates.max_unavailable.limit(s.cohort.len()))
    }

    fn record_target(&self, generation: u64, rollback: bool, agents: usize) {
        let desired = crate::model::Desired {
            generation,
            rollback,
        };
        if let Err(e) =
            self.store
                .record_assignment(generation, "rollout", rollback, agents, Some(desired))
        {
            tracing::error!(error = %e, "cannot record the rollout's assignment");
        }
    }

    /// The gates of the current step.
    fn evaluate(&self, s: &mut RolloutState) -> Verdict {
        let Some(step) = s.plan.steps.get(s.step).copied() else {
            return Verdict::Wait;
        };
        let now = self.clock.now_ms();
        let agents = self.registry.rollout_agents(s.generation);
        let cohort: HashSet<&str> = s.cohort.iter().map(String::as_str).collect();
        let members: Vec<&RolloutAgent> = agents
            .iter()
            .filter(|a| cohort.contains(a.id.as_str()))
            .collect();
        let refused: Vec<String> = members
            .iter()
            .filter(|a| a.refused)
            .map(|a| format!("{} ({})", a.id, a.refusal))
            .collect();
        if !refused.is_empty() {
            let measured = format!("{} NACK(s): {}", refused.len(), refused.join(", "));
            self.roll_back(
                s,
                Phase::RolledBack,
                "nack",
                measured,
                "0 NACKs".into(),
                false,
            );
            return Verdict::Changed;
        }
        if self.lost_gate(s) {
            return Verdict::Changed;
        }
        let g = s.plan.gates;
        match step {
            StepPlan::Canary(_) | StepPlan::Percent(_) => {
                let online: Vec<&&RolloutAgent> = members.iter().filter(|a| a.connected).collect();
                let acked = online.iter().filter(|a| a.running == s.generation).count();
                let offline = members.len() - online.len() + (s.cohort.len() - members.len());
                if let Some(limit) = g
                    .max_unavailable
                    .limit(s.cohort.len())
                    .filter(|l| offline > *l)
                {
                    let measured = format!("{offline} of {} cohort agents offline", s.cohort.len());
                    let threshold = format!(
                        "at most {limit} (max_unavailable: {})",
                        g.max_unavailable.describe()
                    );
                    self.gate(s, "unavailable", false, measured, threshold);
                    s.phase = Phase::Paused;
                    s.paused_for_unavailable = true;
                    s.reason = format!(
                        "too many cohort agents offline: {offline} > max_unavailable {limit}; waiting for them to return or `fleetctl rollout promote`"
                    );
                    tracing::warn!(
                        rollout = s.id,
                        step = s.step,
                        offline,
                        limit,
                        "rollout paused: too many cohort agents offline"
                    );
                    return Verdict::Changed;
                }
                let measured = format!("{acked} of {} online agents ACKed", online.len());
                let threshold = format!("all within {}", ms(g.ack_deadline_ms));
                if acked == online.len() {
                    self.gate(s, "ack", true, measured, threshold);
                    return Verdict::Next;
                }
                if now - s.step_started_ms >= g.ack_deadline_ms as i64 {
                    self.roll_back(s, Phase::RolledBack, "ack", measured, threshold, false);
                    return Verdict::Changed;
                }
                Verdict::Wait
            }
            StepPlan::Pause(None) => Verdict::Wait,
            StepPlan::Shadow { ms, .. } => self.evaluate_shadow(s, ms),
            StepPlan::Pause(Some(soak)) => {
                let new = self.registry.job_counts(s.generation).since(s.baseline_new);
                let stable = self
                    .registry
                    .job_counts(s.stable_generation)
                    .since(s.baseline_stable);
                // Attempts, not jobs: a revision under which every attempt fails (each retried
                // with backoff) shows at its first failure, not after the last retry.
                let enough = new.attempts() >= u64::from(g.min_jobs);
                let rate = new.failure_rate();
                let measured = format!(
                    "{:.3} ({} failed of {} attempts)",
                    rate,
                    new.failed_attempts(),
                    new.attempts()
                );
                let threshold = format!(
                    "<= {:.3}, at least {} attempts",
                    g.max_failure_rate, g.min_jobs
                );
                if enough && rate > g.max_failure_rate {
                    self.roll_back(
                        s,
                        Phase::RolledBack,
                        "failure_rate",
                        measured,
                        threshold,
                        false,
                    );
                    return Verdict::Changed;
                }
                if now - s.step_started_ms < soak as i64 {
                    return Verdict::Wait;
                }
                if !enough {
                    let reason = format!(
                        "inconclusive: {} attempt(s) under generation {} during the soak, {} needed; `fleetctl rollout promote` to go on",
                        new.attempts(),
                        s.generation,
                        g.min_jobs
                    );
                    self.inconclusive(
                        s,
                        "data",
                        format!("{} attempts", new.attempts()),
                        format!("at least {}", g.min_jobs),
                        reason,
                    );
                    return Verdict::Changed;
                }
                self.gate(s, "failure_rate", true, measured, threshold);
                if stable.attempts() >= u64::from(g.min_jobs) {
                    let limit = stable.failure_rate() + g.baseline_margin;
                    let measured = format!("{rate:.3} vs stable {:.3}", stable.failure_rate());
                    let threshold = format!("<= stable + {:.3}", g.baseline_margin);
                    if rate > limit {
                        self.roll_back(
                            s,
                            Phase::RolledBack,
                            "baseline",
                            measured,
                            threshold,
                            false,
                        );
                        return Verdict::Changed;
                    }
                    self.gate(s, "baseline", true, measured, threshold);
                }
                Verdict::Next
            }
        }
    }

    pub(super) fn gate(
        &self,
        s: &mut RolloutState,
        gate: &str,
        passed: bool,
        measured: String,
        threshold: String,
    ) {
        trace::gate(s, gate, passed, &measured, &threshold);
        s.gates.push(GateResult {
            at_ms: self.clock.now_ms(),
            step: s.step,
            gate: gate.into(),
            passed,
            measured,
            threshold,
        });
    }

    /// Too little data to judge: the gate recorded as not passed and the rollout paused with
    /// `reason`, for an operator to promote or abort. Does not save (the caller does).
    pub(super) fn inconclusive(
        &self,
        s: &mut RolloutState,
        gate: &str,
        measured: String,
        threshold: String,
        reason: String,
    ) {
        self.gate(s, gate, false, measured, threshold);
        s.phase = Phase::Paused;
        s.reason = reason;
        tracing::warn!(
            rollout = s.id,
            step = s.step,
            gate,
            "rollout paused: inconclusive"
        );
    }

    /// Every agent back on the stable revision at once (marked rollback); the failed gate
    /// recorded; the alert logged and raised (e-mailed when configured). Does not save (the
    /// caller does).
    pub(super) fn roll_back(
        &self,
        s: &mut RolloutState,
        phase: Phase,
        gate: &str,
        measured: String,
        threshold: String,
        by_operator: bool,
    ) {
        if !by_operator {
            // Recorded first: its time is when the gate failed, before the rollback is sent.
            self.gate(s, gate, false, measured.clone(), threshold.clone());
        }
        let span = trace::rollback(s, gate, &measured, &threshold, by_operator);
        let _entered = span.enter();
        self.count_rollback(if by_operator { "abort" } else { gate });
        let n = self.registry.assign_everyone(s.stable_generation, true);
        span.record("agents", n);
        span.record("phase", phase.as_str());
        self.record_target(s.stable_generation, true, n);
        if !by_operator {
            s.reason = format!(
                "gate `{gate}` failed at step {} ({}): measured {measured}, threshold {threshold}; rolled back to generation {}",
                s.step,
                s.plan.steps.get(s.step).map_or_else(String::new, |p| p.describe()),
                s.stable_generation
            );
            tracing::error!(alert = true, rollout = s.id, generation = s.generation, stable = s.stable_generation, gate, %measured, %threshold, "ALERT: rollout gate failed; every agent is rolled back to the stable revision");
            let failed = Failed {
                gate,
                measured: &measured,
                threshold: &threshold,
            };
            let revision = self.registry.revision(s.generation);
            self.alert(alert::rolled_back(s, revision.as_deref(), failed, n));
        } else {
            s.reason = format!("{measured}; back on generation {}", s.stable_generation);
            tracing::warn!(alert = true, rollout = s.id, generation = s.generation, stable = s.stable_generation, "ALERT: rollout stopped by the operator; every agent is rolled back to the stable revision");
            let revision = self.registry.revision(s.generation);
            self.alert(alert::aborted(s, revision.as_deref(), n));
        }
        s.phase = phase;
        s.finished_ms = Some(self.clock.now_ms());
        if !by_operator {
            let verb = format!("rollout.{}", phase.as_str().to_lowercase());
            self.audit_decision(&verb, s, &s.reason.clone());
        }
    }

    /// Records an automated decision (a rollback, a supersede) in the audit trail, as
    /// `controller`; a failure to write it is logged.
    pub(super) fn audit_decision(&self, verb: &str, s: &RolloutState, result: &str) {
        let sha256 = self
            .registry
            .revision(s.generation)
            .map(|r| r.sha256.clone())
            .unwrap_or_default();
        let record = crate::store::AuditRecord {
            id: 0,
            at_ms: self.clock.now_ms(),
            who: "controller".into(),
            role: "automated".into(),
            verb: verb.to_owned(),
            arguments: serde_json::json!({
                "rollout": s.id,
                "step": s.step,
                "stable_generation": s.stable_generation,
            })
            .to_string(),
            generation: s.generation,
            sha256,
            result: result.to_owned(),
        };
        if let Err(e) = self.store.audit(&record) {
            tracing::error!(error = %e, verb, "cannot write the audit trail");
        }
    }
}

pub(super) enum Verdict {
    /// Nothing to do yet.
    Wait,
    /// The step passed.
    Next,
    /// The state changed (paused, rolled back): save and stop.
    Changed,
}

fn ms(v: u64) -> String {
    humantime::format_duration(Duration::from_millis(v)).to_string()
}

/// Runs the engine until `shutdown`: a tick on every registry change (at most every 20 ms)
/// and at least every 200 ms (soak timers).
pub async fn drive(engine: Arc<Rollouts>, shutdown: CancellationToken) {
    let mut changes = engine.registry.subscribe();
    loop {
        let e = engine.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || e.tick()).await {
            tracing::error!(error = %err, "the rollout engine failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changes.changed() => tokio::time::sleep(Duration::from_millis(20)).await,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

impl Plan {
    /// The first step's description (for logs).
    pub fn describe(&self) -> String {
        self.steps
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
