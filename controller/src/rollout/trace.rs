//! The rollout's trace: one trace from the request that started it (fleetctl's span, through
//! the admin call) to every agent applying the revision.
//!
//! Span tree (names as exported):
//!
//! ```text
//! rollout                      rollout.id, generation, stable_generation, steps
//! ├── rollout.step             rollout.id, step, kind, percent | canary | pause_ms, cohort_size, phase
//! │   ├── rollout.push         rollout.id, generation, agents, cohort_size, agent.ids
//! │   │   └── (agent) assignment.apply ...   through the assignment's traceparent
//! │   ├── rollout.gate         rollout.id, step, gate, result, measured, threshold
//! │   └── rollout.rollback     rollout.id, generation, stable_generation, gate, measured,
//! │                            threshold, agents, by_operator, phase
//! ```
//!
//! A push is made when a step gives the revision to agents that did not have it (the canary,
//! the agents a percentage adds, those left at the end); a gate for every verdict; a rollback
//! when a gate fails or the operator aborts or undoes (then `gate` is empty, `by_operator`
//! true).
//!
//! The engine runs for a long time and across restarts, so these spans are short (each covers
//! the decision it names) and find their parent through the W3C `traceparent` strings kept in
//! [`RolloutTrace`], which is saved with the rollout's state: a step entered by a tick hours
//! later, even by a restarted controller, continues the same trace. A step entered by an
//! operator's verb (`resume`, `promote`, `abort`) is linked to that call's span too.

use h264_telemetry::propagate::{set_parent_from_traceparent, traceparent_of};
use opentelemetry::trace::TraceContextExt as _;
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{RolloutState, StepPlan};

/// The trace context a rollout's later spans continue (empty strings: not traced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutTrace {
    /// The `traceparent` of the `rollout` span (made when it started).
    pub rollout: String,
    /// The `traceparent` of the current step's `rollout.step` span.
    pub step: String,
}

/// The most agent ids a push span lists.
const MAX_IDS: usize = 50;

/// The `rollout` span of a rollout being started (a child of the current span: the admin
/// call). The caller keeps its traceparent in the state.
pub(super) fn rollout(s: &RolloutState) -> Span {
    tracing::info_span!(
        "rollout",
        rollout.id = s.id,
        generation = s.generation,
        stable_generation = s.stable_generation,
        steps = %s.plan.describe(),
    )
}

/// The `rollout.step` span of step `i`: a child of the rollout's span, linked to the
/// operator's call when one is in force.
pub(super) fn step(s: &RolloutState, i: usize) -> Span {
    let plan = s.plan.steps.get(i).copied();
    let kind = match plan {
        Some(StepPlan::Canary(_)) => "canary",
        Some(StepPlan::Percent(_)) => "percent",
        Some(StepPlan::Pause(_)) => "pause",
        Some(StepPlan::Shadow { .. }) => "shadow",
        None => "done",
    };
    let span = tracing::info_span!(
        "rollout.step",
        rollout.id = s.id,
        step = i,
        kind,
        percent = Empty,
        canary = Empty,
        pause_ms = Empty,
        cohort_size = Empty,
        phase = Empty,
    );
    match plan {
        Some(StepPlan::Canary(n)) => _ = span.record("canary", n),
        Some(StepPlan::Percent(p)) => _ = span.record("percent", p),
        Some(StepPlan::Pause(Some(ms))) => _ = span.record("pause_ms", ms),
        Some(StepPlan::Shadow { ms, percent }) => {
            span.record("pause_ms", ms);
            if let Some(p) = percent {
                span.record("percent", p);
            }
        }
        _ => {}
    }
    continue_trace(&span, &s.trace.rollout);
    span
}

/// Records how the step ended up (cohort size, phase).
pub(super) fn step_done(span: &Span, s: &RolloutState) {
    span.record("cohort_size", s.cohort.len());
    span.record("phase", s.phase.as_str());
}

/// The `rollout.push` span: the new revision given to `agents` more agents (listed in
/// `new_ids`); enter it while assigning, so that the assignments carry its context.
pub(super) fn push(s: &RolloutState, agents: usize, new_ids: &[String]) -> Span {
    let mut ids = new_ids
        .iter()
        .take(MAX_IDS)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if new_ids.len() > MAX_IDS {
        ids.push_str(&format!(",... ({} more)", new_ids.len() - MAX_IDS));
    }
    let span = tracing::info_span!(
        "rollout.push",
        rollout.id = s.id,
        generation = s.generation,
        agents,
        cohort_size = s.cohort.len(),
        agent.ids = %ids,
    );
    continue_trace(&span, &s.trace.step);
    span
}

/// A `rollout.gate` span for one verdict (ended at once); a failed gate has the error status.
pub(super) fn gate(s: &RolloutState, gate: &str, passed: bool, measured: &str, threshold: &str) {
    let span = tracing::info_span!(
        "rollout.gate",
        rollout.id = s.id,
        step = s.step,
        gate,
        result = if passed { "passed" } else { "failed" },
        measured,
        threshold,
        otel.status_description = Empty,
    );
    continue_trace(&span, &s.trace.step);
    if !passed {
        span.record(
            "otel.status_description",
            format!("gate `{gate}` failed: measured {measured}, threshold {threshold}").as_str(),
        );
    }
}

/// The `rollout.rollback` span: every agent back on the stable revision; enter it while
/// assigning. A rollback by a failed gate carries the gate's numbers and the error status.
pub(super) fn rollback(
    s: &RolloutState,
    gate: &str,
    measured: &str,
    threshold: &str,
    by_operator: bool,
) -> Span {
    let span = tracing::info_span!(
        "rollout.rollback",
        rollout.id = s.id,
        generation = s.generation,
        stable_generation = s.stable_generation,
        step = s.step,
        gate,
        measured,
        threshold,
        by_operator,
        agents = Empty,
        phase = Empty,
        otel.status_description = Empty,
    );
    continue_trace(&span, &s.trace.step);
    if !by_operator {
        span.record(
            "otel.status_description",
            format!(
                "gate `{gate}` failed: measured {measured}, threshold {threshold}; rolled back to generation {}",
                s.stable_generation
            )
            .as_str(),
        );
    }
    span
}

/// Makes `span` a child of `traceparent` (when there is one) and links it to the span in force
/// when that is another trace's (an operator's call acting on the rollout).
fn continue_trace(span: &Span, traceparent: &str) {
    if !set_parent_from_traceparent(span, traceparent) {
        return;
    }
    let caller = Span::current().context();
    let caller = caller.span().span_context().clone();
    let ours = h264_telemetry::propagate::context_from_traceparent(traceparent);
    let same_trace =
        ours.is_some_and(|cx| cx.span().span_context().trace_id() == caller.trace_id());
    if caller.is_valid() && !same_trace {
        span.add_link(caller);
    }
}

/// The traceparent of `span` (empty when it is not traced).
pub(super) fn context_of(span: &Span) -> String {
    traceparent_of(span)
}
