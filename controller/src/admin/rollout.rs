//! `Rollout`: fleetctl's rollout verbs, each answered with the rollout's status.

use std::time::Duration;

use h264_config::fleet::{FleetSpec, MaxUnavailable, Step};
use h264_config::units::HumanDuration;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{RolloutCohort, RolloutGate, RolloutRequest, RolloutStart, RolloutStatus};
use tonic::Status;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::Admin;
use crate::rollout::{Plan, RolloutState, StepPlan, VerbError};

pub(super) async fn rollout(admin: &Admin, req: RolloutRequest) -> Result<RolloutStatus, Status> {
    let Some(verb) = req.verb else {
        return Err(Status::invalid_argument("no rollout verb given"));
    };
    let name = match &verb {
        Verb::Start(_) => "start",
        Verb::Status(_) => "status",
        Verb::Pause(_) => "pause",
        Verb::Resume(_) => "resume",
        Verb::Promote(_) => "promote",
        Verb::Abort(_) => "abort",
        Verb::Undo(_) => "undo",
        Verb::Retry(_) => "retry",
    };
    tracing::Span::current().set_attribute("verb", name);
    let _write = match verb {
        Verb::Status(_) => None,
        _ => Some(admin.writes.lock().await),
    };
    let plan = match &verb {
        Verb::Start(s) => Some(start_plan(admin, s)?),
        _ => None,
    };
    let engine = admin.rollouts.clone();
    let result = super::in_span(move || match verb {
        Verb::Start(s) => engine
            .start(s.generation, plan.expect("a plan for start"))
            .map(Some),
        Verb::Status(_) => Ok(engine.current()),
        Verb::Pause(_) => engine.pause().map(Some),
        Verb::Resume(_) => engine.resume().map(Some),
        Verb::Promote(p) => engine.promote(p.full).map(Some),
        Verb::Abort(_) => engine.abort().map(Some),
        Verb::Undo(u) => engine
            .undo((u.to_generation > 0).then_some(u.to_generation))
            .map(Some),
        Verb::Retry(_) => engine.retry().map(Some),
    })
    .await
    .map_err(|e| Status::internal(format!("rollout task failed: {e}")))?
    .map_err(|e| match e {
        VerbError::NoRollout(_) => Status::not_found(e.to_string()),
        VerbError::Phase(_) => Status::failed_precondition(e.to_string()),
        VerbError::Invalid(_) => Status::invalid_argument(e.to_string()),
    })?;
    admin.flush().await?;
    Ok(result.map_or_else(RolloutStatus::default, |s| status(admin, &s)))
}

/// The plan of a start: the revision's `spec.rollout`, its steps replaced by `steps` if given.
fn start_plan(admin: &Admin, start: &RolloutStart) -> Result<Plan, Status> {
    let generation = start.generation;
    let revision = admin.registry.revision(generation).ok_or_else(|| {
        Status::not_found(format!(
            "there is no revision {generation} (see `fleetctl get revisions`)"
        ))
    })?;
    let text = String::from_utf8_lossy(&revision.canonical);
    let mut plan = match FleetSpec::from_canonical_json(&text) {
        Ok(spec) => Plan::from(&spec.rollout),
        Err(e) => {
            tracing::warn!(generation, error = %e, "cannot read the revision's rollout; using the default");
            Plan::from(&h264_config::fleet::Rollout::default())
        }
    };
    overrides(&mut plan, start)?;
    Ok(plan)
}

/// The command line's replacements for the revision's steps, `max_unavailable` and `max_lost`.
fn overrides(plan: &mut Plan, start: &RolloutStart) -> Result<(), Status> {
    let steps = start.steps.as_str();
    if !steps.trim().is_empty() {
        plan.steps = parse_steps(steps).map_err(Status::invalid_argument)?;
    }
    if !start.max_unavailable.trim().is_empty() {
        let m = MaxUnavailable::parse(&start.max_unavailable).ok_or_else(|| {
            Status::invalid_argument(format!(
                "--max-unavailable `{}`: expected a count (2) or a share of the cohort (10%)",
                start.max_unavailable
            ))
        })?;
        plan.gates.max_unavailable = m.into();
    }
    if !start.max_lost.trim().is_empty() {
        let d = humantime::parse_duration(start.max_lost.trim()).map_err(|e| {
            Status::invalid_argument(format!(
                "--max-lost `{}`: {e} (expected a duration such as 2m)",
                start.max_lost
            ))
        })?;
        plan.gates.max_lost_ms = d.as_millis() as u64;
    }
    Ok(())
}

/// `canary:1,pause:30s,percent:25,pause:{},percent:100`.
pub fn parse_steps(text: &str) -> Result<Vec<StepPlan>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| {
                format!("step `{item}`: expected shadow:DURATION[/PERCENT], canary:N, percent:N, pause:DURATION or pause:{{}}")
            })?;
        let bad = |why: &str| format!("step `{item}`: {why}");
        let step = match key {
            "canary" => StepPlan::Canary(value.parse().map_err(|_| bad("N is a whole number"))?),
            "percent" => {
                let p: u8 = value.parse().map_err(|_| bad("N is 1 to 100"))?;
                if p == 0 || p > 100 {
                    return Err(bad("N is 1 to 100"));
                }
                StepPlan::Percent(p)
            }
            "shadow" => {
                // `shadow:2h` (the canary cohort) or `shadow:2h/25` (25 % of the fleet).
                let (d, p) = match value.split_once('/') {
                    Some((d, p)) => {
                        let p: u8 = p
                            .trim()
                            .trim_end_matches('%')
                            .parse()
                            .map_err(|_| bad("shadow:DURATION/PERCENT, PERCENT 1 to 100"))?;
                        if p == 0 || p > 100 {
                            return Err(bad("shadow:DURATION/PERCENT, PERCENT 1 to 100"));
                        }
                        (d, Some(p))
                    }
                    None => (value, None),
                };
                let d: Duration = humantime::parse_duration(d.trim())
                    .map_err(|e| bad(&format!("bad duration: {e}")))?;
                if d.is_zero() {
                    return Err(bad("a shadow step lasts 1s or more"));
                }
                StepPlan::Shadow {
                    ms: d.as_millis() as u64,
                    percent: p,
                }
            }
            "pause" if value == "{}" || value.is_empty() => StepPlan::Pause(None),
            "pause" => {
                let d: Duration = humantime::parse_duration(value)
                    .map_err(|e| bad(&format!("bad duration: {e}")))?;
                StepPlan::Pause(Some(d.as_millis() as u64))
            }
            _ => return Err(bad("expected shadow, canary, percent or pause")),
        };
        out.push(step);
    }
    if out.is_empty() {
        return Err("no steps given".into());
    }
    // The manifest's sequence rules hold for steps given on the command line too.
    let as_manifest: Vec<Step> = out
        .iter()
        .map(|p| match p {
            StepPlan::Canary(n) => Step::Canary(*n),
            StepPlan::Percent(n) => Step::Percent(*n),
            StepPlan::Pause(ms) => Step::Pause(ms.map(HumanDuration::from_millis)),
            StepPlan::Shadow { ms, percent } => Step::Shadow(h264_config::fleet::ShadowStep {
                duration: HumanDuration::from_millis(*ms),
                percent: *percent,
            }),
        })
        .collect();
    let errors: Vec<String> = h264_config::fleet::rollout::check_steps(&as_manifest, "steps")
        .into_iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(out)
}

fn status(admin: &Admin, s: &RolloutState) -> RolloutStatus {
    let agents = admin.registry.rollout_agents(s.generation);
    let mut cohort = RolloutCohort {
        agents: s.cohort.len() as u32,
        ..RolloutCohort::default()
    };
    let members: std::collections::HashSet<&str> = s.cohort.iter().map(String::as_str).collect();
    for a in agents.iter().filter(|a| members.contains(a.id.as_str())) {
        if a.running == s.generation {
            cohort.synced += 1;
        } else if a.refused {
            cohort.error += 1;
        } else if !a.connected {
            cohort.offline += 1;
        } else {
            cohort.pending += 1;
        }
    }
    RolloutStatus {
        id: s.id,
        generation: s.generation,
        stable_generation: s.stable_generation,
        phase: h264_proto::v1::RolloutPhase::from_name(s.phase.as_str()).into(),
        step: s.step as u32,
        step_description: s
            .plan
            .steps
            .get(s.step)
            .map_or_else(|| "done".into(), |p| p.describe()),
        steps: s.plan.steps.iter().map(|p| p.describe()).collect(),
        cohort: Some(cohort),
        fleet_agents: agents.len() as u32,
        gates: s
            .gates
            .iter()
            .map(|g| RolloutGate {
                at_ms: g.at_ms,
                step: g.step as u32,
                gate: g.gate.clone(),
                passed: g.passed,
                measured: g.measured.clone(),
                threshold: g.threshold.clone(),
            })
            .collect(),
        reason: s.reason.clone(),
        created_at_ms: s.created_ms,
        updated_at_ms: s.updated_ms,
        step_started_at_ms: s.step_started_ms,
        finished_at_ms: s.finished_ms.unwrap_or_default(),
        shadow: super::shadow::status(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_overrides_steps_max_unavailable_and_max_lost() {
        let mut plan = Plan::from(&h264_config::fleet::Rollout::default());
        let start = RolloutStart {
            generation: 1,
            steps: "canary:1,percent:100".into(),
            max_unavailable: "10%".into(),
            max_lost: "2m".into(),
        };
        overrides(&mut plan, &start).unwrap();
        assert_eq!(plan.steps, [StepPlan::Canary(1), StepPlan::Percent(100)]);
        assert_eq!(
            plan.gates.max_unavailable,
            MaxUnavailable::Percent(10).into()
        );
        assert_eq!(plan.gates.max_lost_ms, 120_000);
        for (field, bad) in [("max_unavailable", "200%"), ("max_lost", "soon")] {
            let mut start = RolloutStart::default();
            match field {
                "max_unavailable" => start.max_unavailable = bad.into(),
                _ => start.max_lost = bad.into(),
            }
            let err = overrides(&mut plan, &start).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().contains(bad), "{}", err.message());
        }
    }

    #[test]
    fn steps_parse_from_the_command_line() {
        assert_eq!(
            parse_steps("canary:1, pause:30s,percent:50,pause:{},percent:100").unwrap(),
            [
                StepPlan::Canary(1),
                StepPlan::Pause(Some(30_000)),
                StepPlan::Percent(50),
                StepPlan::Pause(None),
                StepPlan::Percent(100)
            ]
        );
        assert!(parse_steps("percent:0").is_err());
        assert!(parse_steps("bake:1").is_err());
        assert!(parse_steps("").is_err());
        // The manifest's sequence rules: cohorts only grow, canaries first, end at 100 %.
        let shrinking = parse_steps("percent:50,percent:25,percent:100").unwrap_err();
        assert!(
            shrinking.contains("not above the previous step"),
            "{shrinking}"
        );
        let late_canary = parse_steps("percent:50,canary:1,percent:100").unwrap_err();
        assert!(
            late_canary.contains("canary step comes after"),
            "{late_canary}"
        );
        let short = parse_steps("canary:1,percent:50").unwrap_err();
        assert!(short.contains("never reach the whole fleet"), "{short}");
    }
}
