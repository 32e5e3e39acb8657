//! The engine's side of shadow steps (module docs of [`super::shadow`]): picking the agents
//! that shadow, taking in their comparisons, judging the gates, and keeping the registry's
//! shadow target in step with the state.

use std::collections::BTreeSet;

use h264_proto::v1::ShadowComparison;

use super::engine::Verdict;
use super::shadow::{self, ShadowRecord};
use super::{percent_of, stable_hash, Phase, RolloutState, Rollouts, StepPlan};
use crate::registry::ShadowTarget;

impl Rollouts {
    /// The agents of a shadow step of `percent` (None: the canary cohort, as many agents as
    /// the plan's first canary step, else one), in the order cohorts grow: labelled canaries
    /// first, then by the stable hash of their id.
    pub(super) fn pick_shadow_cohort(&self, s: &mut RolloutState, percent: Option<u8>) {
        let mut agents = self.registry.rollout_agents(s.generation);
        let size = match percent {
            Some(p) => percent_of(p, agents.len()),
            None => s
                .plan
                .steps
                .iter()
                .find_map(|p| match p {
                    StepPlan::Canary(n) => Some(*n as usize),
                    _ => None,
                })
                .unwrap_or(1),
        };
        agents.sort_by_cached_key(|a| (!a.canary, stable_hash(&a.id), a.id.clone()));
        s.shadow_cohort = agents.into_iter().take(size).map(|a| a.id).collect();
        tracing::info!(
            rollout = s.id,
            step = s.step,
            agents = ?s.shadow_cohort,
            "shadow step: these agents convert with the candidate beside production"
        );
    }

    /// Takes the comparisons agents reported into the state: only those of this rollout and
    /// candidate, from agents of its shadow cohort. Returns whether any was taken.
    pub(super) fn take_shadow(&self, s: &mut RolloutState) -> bool {
        let reported = self.registry.take_shadow_comparisons();
        if reported.is_empty() {
            return false;
        }
        let now = self.clock.now_ms();
        let mut taken = false;
        for (agent, c) in reported {
            let ours = s.phase.is_active()
                && s.in_shadow_step()
                && c.rollout == s.id
                && c.candidate_generation == s.generation
                && s.shadow_cohort.contains(&agent);
            if !ours {
                tracing::debug!(%agent, rollout = c.rollout, file = %c.file, "a shadow comparison outside the current shadow step is ignored");
                continue;
            }
            tracing::info!(
                rollout = s.id, %agent, file = %c.file, candidate_ok = c.candidate_ok,
                ssim = c.candidate_ssim, production_ssim = c.production_ssim,
                cues_identical = c.cues_identical, "shadow comparison"
            );
            s.shadow.push(ShadowRecord {
                agent,
                step: s.step,
                comparison: ShadowComparison {
                    at_ms: now,
                    ..c.with_finite_measures()
                },
            });
            taken = true;
        }
        shadow::bound(&mut s.shadow);
        taken
    }

    /// The gates of the shadow step that lasts `ms`: a worst-case gate that fails rolls back
    /// at once; at the end, too few recordings pauses (inconclusive), else every gate decides.
    pub(super) fn evaluate_shadow(&self, s: &mut RolloutState, ms: u64) -> Verdict {
        let g = s.plan.gates.shadow;
        let step = s.step;
        let cohort: BTreeSet<&str> = s.shadow_cohort.iter().map(String::as_str).collect();
        let refused: Vec<String> = self
            .registry
            .rollout_agents(s.generation)
            .into_iter()
            .filter(|a| a.refused && cohort.contains(a.id.as_str()))
            .map(|a| format!("{} ({})", a.id, a.refusal))
            .collect();
        if !refused.is_empty() {
            let measured = format!(
                "{} NACK(s) of the shadow candidate: {}",
                refused.len(),
                refused.join(", ")
            );
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
        let records: Vec<ShadowRecord> = s
            .shadow
            .iter()
            .filter(|r| r.step == step)
            .cloned()
            .collect();
        let refs: Vec<&ShadowRecord> = records.iter().collect();
        let end = self.clock.now_ms() - s.step_started_ms >= ms as i64;
        let verdicts = shadow::judge(&refs, &g, end);
        if let Some(v) = verdicts.iter().find(|v| v.final_failure) {
            self.roll_back(
                s,
                Phase::RolledBack,
                v.gate,
                v.measured.clone(),
                v.threshold.clone(),
                false,
            );
            return Verdict::Changed;
        }
        if !end {
            return Verdict::Wait;
        }
        if records.len() < g.min_files as usize {
            let reason = format!(
                "inconclusive: the shadow step compared {} recording(s), {} needed; `fleetctl rollout promote` to go on without them, `abort` to stop",
                records.len(),
                g.min_files
            );
            self.inconclusive(
                s,
                "shadow.min_files",
                format!("{} recording(s) compared", records.len()),
                format!("at least {}", g.min_files),
                reason,
            );
            return Verdict::Changed;
        }
        if let Some(v) = verdicts.iter().find(|v| !v.passed) {
            self.roll_back(
                s,
                Phase::RolledBack,
                v.gate,
                v.measured.clone(),
                v.threshold.clone(),
                false,
            );
            return Verdict::Changed;
        }
        self.gate(
            s,
            "shadow.min_files",
            true,
            format!("{} recording(s) compared", records.len()),
            format!("at least {}", g.min_files),
        );
        for v in verdicts {
            self.gate(s, v.gate, true, v.measured, v.threshold);
        }
        Verdict::Next
    }

    /// Points the registry's shadow target at what the state says: the shadow cohort while a
    /// shadow step is current and the rollout active, nobody otherwise.
    pub(super) fn sync_shadow_target(&self, s: &RolloutState) {
        let target = (s.phase.is_active() && s.in_shadow_step()).then(|| ShadowTarget {
            rollout: s.id,
            generation: s.generation,
            agents: s.shadow_cohort.iter().cloned().collect::<BTreeSet<_>>(),
            workers: s.plan.gates.shadow_workers.clamp(1, 8),
        });
        self.registry.set_shadow_target(target);
    }
}
