//! The operator alerts of rollouts: what an automatic rollback, an abort and an undo tell the
//! on-call engineer (the gate with its numbers, the step, the cohort and what the controller
//! did). They go through the shared [`h264_alerts::Alerter`]: always logged, e-mailed when the
//! controller's `[alerts.email]` is set.

use h264_alerts::{Alert, AlertKind};

use super::{Phase, RolloutState};
use crate::model::Revision;

/// Cohort members named in a message; the rest are counted.
const NAMED: usize = 20;

/// What failed, as the gate saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failed<'a> {
    /// The gate's name (`nack`, `ack`, `failure_rate`, `baseline`, `lost`).
    pub gate: &'a str,
    /// What was measured.
    pub measured: &'a str,
    /// The threshold it was held to.
    pub threshold: &'a str,
}

/// A gate failed and every agent was assigned the stable revision (`agents`: how many
/// assignments that changed).
pub(super) fn rolled_back(
    s: &RolloutState,
    revision: Option<&Revision>,
    failed: Failed<'_>,
    agents: usize,
) -> Alert {
    let mut facts = head(s, revision);
    facts.extend([
        fact("gate", failed.gate),
        fact("measured", failed.measured),
        fact("threshold", failed.threshold),
    ]);
    facts.extend(progress(s));
    Alert {
        kind: AlertKind::RolloutRolledBack,
        subject: format!(
            "rollout {} of revision {} rolled back to revision {}: gate `{}` failed",
            s.id, s.generation, s.stable_generation, failed.gate
        ),
        facts,
        action: format!(
            "{} `fleetctl rollout status` shows every gate; `fleetctl rollout retry` starts the \
             rollout again once the revision is fixed.",
            assigned(s.stable_generation, agents)
        ),
        dedup_key: key(s, AlertKind::RolloutRolledBack),
    }
}

/// The operator aborted the rollout and every agent was assigned the stable revision.
pub(super) fn aborted(s: &RolloutState, revision: Option<&Revision>, agents: usize) -> Alert {
    let mut facts = head(s, revision);
    facts.extend(progress(s));
    Alert {
        kind: AlertKind::RolloutAborted,
        subject: format!(
            "rollout {} of revision {} aborted by the operator; back on revision {}",
            s.id, s.generation, s.stable_generation
        ),
        facts,
        action: assigned(s.stable_generation, agents),
        dedup_key: key(s, AlertKind::RolloutAborted),
    }
}

/// The operator undid the finished rollout `s` (it was `before`): every agent was assigned
/// revision `to`.
pub(super) fn undone(
    s: &RolloutState,
    revision: Option<&Revision>,
    before: Phase,
    to: u64,
    agents: usize,
) -> Alert {
    let mut facts = head(s, revision);
    facts.extend([
        fact("phase before the undo", before.as_str()),
        fact("undone to revision", to),
        fact("cohort", cohort(&s.cohort)),
    ]);
    Alert {
        kind: AlertKind::RolloutUndone,
        subject: format!(
            "rollout {} of revision {} undone by the operator; every agent back on revision {to}",
            s.id, s.generation
        ),
        facts,
        action: assigned(to, agents),
        dedup_key: format!("{}-to-{to}", key(s, AlertKind::RolloutUndone)),
    }
}

/// The rollout, its revision and the stable one.
fn head(s: &RolloutState, revision: Option<&Revision>) -> Vec<(String, String)> {
    let rev = match revision {
        Some(r) => format!(
            "{} ({}, sha256 {})",
            s.generation,
            r.name,
            r.sha256.get(..12).unwrap_or(&r.sha256)
        ),
        None => s.generation.to_string(),
    };
    vec![
        fact("rollout", s.id),
        fact("revision", rev),
        fact("stable revision", s.stable_generation),
    ]
}

/// Where the rollout was: its step, its cohort, its steps, when it started.
fn progress(s: &RolloutState) -> Vec<(String, String)> {
    let step = match s.plan.steps.get(s.step) {
        Some(p) => format!(
            "{} of {} ({})",
            s.step + 1,
            s.plan.steps.len(),
            p.describe()
        ),
        None => format!("after the last of {}", s.plan.steps.len()),
    };
    let started = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(s.created_ms).unwrap_or(0));
    vec![
        fact("step", step),
        fact("cohort", cohort(&s.cohort)),
        fact("steps", s.plan.describe()),
        fact("started", humantime::format_rfc3339_seconds(started)),
    ]
}

fn cohort(ids: &[String]) -> String {
    let plural = if ids.len() == 1 { "" } else { "s" };
    let mut text = format!("{} agent{plural}", ids.len());
    if !ids.is_empty() {
        text.push_str(": ");
        text.push_str(&ids[..ids.len().min(NAMED)].join(", "));
        if ids.len() > NAMED {
            text.push_str(&format!(" and {} more", ids.len() - NAMED));
        }
    }
    text
}

/// `changed`: how many agents' assignments this changed (the others had it already).
fn assigned(generation: u64, changed: usize) -> String {
    let plural = if changed == 1 { "" } else { "s" };
    format!(
        "every agent was assigned the stable revision {generation} at once, marked as a \
         rollback ({changed} assignment{plural} changed); agents offline now get it when they \
         return."
    )
}

fn key(s: &RolloutState, kind: AlertKind) -> String {
    format!("rollout-{}-{}", s.id, kind.as_str())
}

fn fact(name: &str, value: impl ToString) -> (String, String) {
    (name.to_owned(), value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{GatePlan, Plan, StepPlan, Unavailable};

    /// A rollback at the soak of step 2 (fields left out take their serde defaults).
    fn state() -> RolloutState {
        let plan = Plan {
            steps: vec![
                StepPlan::Canary(1),
                StepPlan::Pause(Some(30_000)),
                StepPlan::Percent(100),
            ],
            gates: GatePlan {
                max_failure_rate: 0.05,
                min_jobs: 2,
                ack_deadline_ms: 30_000,
                baseline_margin: 0.05,
                max_lost_ms: 300_000,
                max_unavailable: Unavailable::Unlimited,
                shadow: Default::default(),
                shadow_workers: 1,
            },
        };
        serde_json::from_value(serde_json::json!({
            "id": 4,
            "generation": 7,
            "stable_generation": 6,
            "plan": plan,
            "phase": "RolledBack",
            "step": 1,
            "step_started_ms": 0,
            "cohort": ["studio-1"],
            "baseline_new": {"converted": 0, "failed": 0},
            "baseline_stable": {"converted": 0, "failed": 0},
            "reason": "",
            "paused_by_operator": false,
            "gates": [],
            "created_ms": 1_700_000_000_000_i64,
            "updated_ms": 0,
            "finished_ms": null,
        }))
        .expect("a rollout state")
    }

    fn facts(a: &Alert) -> Vec<(&str, &str)> {
        a.facts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_rollback_carries_the_gate_its_numbers_and_the_action() {
        let revision = Revision {
            generation: 7,
            sha256: "0123456789abcdef0123".into(),
            name: "studios".into(),
            canonical: Vec::new(),
            created_at_ms: 0,
            signed: None,
        };
        let failed = Failed {
            gate: "failure_rate",
            measured: "1.000 (3 failed of 3 attempts)",
            threshold: "<= 0.050, at least 2 attempts",
        };
        let a = rolled_back(&state(), Some(&revision), failed, 12);
        assert_eq!(a.kind, AlertKind::RolloutRolledBack);
        assert_eq!(
            a.subject,
            "rollout 4 of revision 7 rolled back to revision 6: gate `failure_rate` failed"
        );
        assert_eq!(
            facts(&a),
            [
                ("rollout", "4"),
                ("revision", "7 (studios, sha256 0123456789ab)"),
                ("stable revision", "6"),
                ("gate", "failure_rate"),
                ("measured", "1.000 (3 failed of 3 attempts)"),
                ("threshold", "<= 0.050, at least 2 attempts"),
                ("step", "2 of 3 (pause: 30s)"),
                ("cohort", "1 agent: studio-1"),
                ("steps", "canary: 1, pause: 30s, percent: 100"),
                ("started", "2023-11-14T22:13:20Z"),
            ]
        );
        assert!(
            a.action
                .starts_with("every agent was assigned the stable revision 6 at once"),
            "{}",
            a.action
        );
        assert!(
            a.action.contains("(12 assignments changed)"),
            "{}",
            a.action
        );
        assert_eq!(a.dedup_key, "rollout-4-rollout_rolled_back");
    }

    #[test]
    fn abort_and_undo_say_what_the_operator_did() {
        let a = aborted(&state(), None, 1);
        assert_eq!(a.kind, AlertKind::RolloutAborted);
        assert!(a
            .subject
            .contains("aborted by the operator; back on revision 6"));
        assert!(a.action.contains("(1 assignment changed)"), "{}", a.action);
        let u = undone(&state(), None, Phase::Succeeded, 5, 3);
        assert_eq!(u.kind, AlertKind::RolloutUndone);
        assert!(
            u.subject.ends_with("every agent back on revision 5"),
            "{}",
            u.subject
        );
        assert!(facts(&u).contains(&("phase before the undo", "Succeeded")));
        assert!(facts(&u).contains(&("undone to revision", "5")));
        assert!(u.action.contains("stable revision 5"), "{}", u.action);
        assert_ne!(u.dedup_key, a.dedup_key);
    }

    #[test]
    fn a_big_cohort_is_named_in_part() {
        let ids: Vec<String> = (0..25).map(|i| format!("a{i}")).collect();
        let text = cohort(&ids);
        assert!(text.starts_with("25 agents: a0, a1"), "{text}");
        assert!(text.ends_with("a19 and 5 more"), "{text}");
        assert_eq!(cohort(&[]), "0 agents");
    }
}
