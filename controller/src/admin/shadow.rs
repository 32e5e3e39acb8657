//! Shadow steps for operators: the totals in `rollout status` and `ShadowReport`, every
//! comparison of a rollout (`fleetctl rollout shadow-report`).

use h264_proto::v1::{
    ShadowAgentTotals, ShadowRecord as WireRecord, ShadowReportReply, ShadowReportRequest,
    ShadowStatus,
};
use tonic::Status;

use super::Admin;
use crate::rollout::shadow::{self, AgentTotals, ShadowRecord};
use crate::rollout::{RolloutState, StepPlan};

/// The shadow part of a rollout's status; `None` for a rollout without shadow steps.
pub(super) fn status(s: &RolloutState) -> Option<ShadowStatus> {
    if !s
        .plan
        .steps
        .iter()
        .any(|p| matches!(p, StepPlan::Shadow { .. }))
    {
        return None;
    }
    let totals = shadow::totals(&s.shadow);
    Some(ShadowStatus {
        cohort: s.shadow_cohort.clone(),
        agents: totals
            .agents
            .iter()
            .map(|(id, t)| wire_totals(id, t))
            .collect(),
        total: Some(wire_totals("", &totals.all)),
        worst: shadow::worst(&s.shadow, shadow::WORST_SHOWN)
            .into_iter()
            .map(wire)
            .collect(),
    })
}

fn wire_totals(id: &str, t: &AgentTotals) -> ShadowAgentTotals {
    ShadowAgentTotals {
        agent_id: id.to_owned(),
        files: t.files,
        failures: t.failures,
        min_ssim: t.min_ssim,
        max_size_ratio: t.max_size_ratio,
        speed_ratio: t.speed_ratio,
        caption_mismatches: t.caption_mismatches,
        cpu_ratio: t.cpu_ratio,
    }
}

/// One comparison as the admin API sends it.
pub(super) fn wire(r: &ShadowRecord) -> WireRecord {
    WireRecord {
        agent_id: r.agent.clone(),
        step: r.step as u32,
        comparison: Some(r.comparison.clone()),
    }
}

/// `ShadowReport`: every comparison of rollout `req.rollout` (0: the current or last one).
pub(super) async fn report(
    admin: &Admin,
    req: ShadowReportRequest,
) -> Result<ShadowReportReply, Status> {
    let current = admin.rollouts.current();
    let state = match (req.rollout, current) {
        (0, Some(s)) => s,
        (0, None) => return Err(Status::not_found("there is no rollout yet")),
        (id, Some(s)) if s.id == id => s,
        (id, _) => {
            let text = admin
                .blocking_result(move |store| store.rollout(id))
                .await?
                .map_err(|e| Status::internal(e.to_string()))?
                .ok_or_else(|| Status::not_found(format!("there is no rollout {id}")))?;
            serde_json::from_str::<RolloutState>(&text).map_err(|e| {
                Status::internal(format!(
                    "the saved state of rollout {id} cannot be read: {e}"
                ))
            })?
        }
    };
    let mut records: Vec<WireRecord> = state.shadow.iter().map(wire).collect();
    for r in &mut records {
        if let Some(c) = r.comparison.as_mut() {
            c.rollout = state.id;
            c.candidate_generation = state.generation;
            c.production_generation = state.stable_generation;
        }
    }
    Ok(ShadowReportReply {
        rollout: state.id,
        generation: state.generation,
        records,
    })
}
