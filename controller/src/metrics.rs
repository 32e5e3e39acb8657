//! The controller's metrics, as OpenTelemetry instruments (exported over OTLP when configured
//! and served to Prometheus on `metrics_listen`). Prometheus names:
//!
//! | name | type | labels | what |
//! |------|------|--------|------|
//! | `h264_controller_sessions_connected` | gauge | | agents with a live session |
//! | `h264_controller_agents` | gauge | | agents known (connected or not) |
//! | `h264_controller_assignments` | gauge | `state`: not_sent, pending, synced, error | agents by the sync state of their desired revision |
//! | `h264_controller_rollouts` | gauge | `phase`: Pending ... Superseded | 1 for the current (latest) rollout's phase, 0 for the others |
//! | `h264_controller_rollbacks_total` | counter | `cause`: the failed gate (ack, nack, lost, failure_rate, baseline), abort, undo | rollbacks |
//! | `h264_controller_assignments_sent_total` | counter | | assignments pushed to agents |
//! | `h264_controller_assignment_replies_total` | counter | `reply`: ack, nack | the agents' answers |
//! | `h264_controller_agent_stats_total` | counter | | stats messages ingested |
//! | `h264_controller_agent_events_total` | counter | | job events ingested |
//!
//! # Concurrency
//! Every instrument is observable: its callback reads the registry (one lock, a count) or the
//! rollout engine (one lock, a copy of the phase) when the metrics are collected, i.e. on a
//! scrape or an OTLP export, never on the sessions' paths. The counters it reads are atomics
//! the sessions bump ([`crate::registry::Counters`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use crate::registry::Registry;
use crate::rollout::{Phase, Rollouts};

const PHASES: [Phase; 7] = [
    Phase::Pending,
    Phase::Progressing,
    Phase::Paused,
    Phase::Succeeded,
    Phase::Aborted,
    Phase::RolledBack,
    Phase::Superseded,
];

/// Registers the controller's instruments on `meter`; they live as long as its provider.
pub fn register(meter: &Meter, registry: Arc<Registry>, rollouts: Arc<Rollouts>) {
    let r = registry.clone();
    meter
        .u64_observable_gauge("h264_controller_sessions_connected")
        .with_description("Agents with a live session to this controller")
        .with_callback(move |o| o.observe(r.connected() as u64, &[]))
        .build();
    let r = registry.clone();
    meter
        .u64_observable_gauge("h264_controller_agents")
        .with_description("Agents this controller knows, connected or not")
        .with_callback(move |o| o.observe(r.known() as u64, &[]))
        .build();
    let r = registry.clone();
    meter
        .u64_observable_gauge("h264_controller_assignments")
        .with_description("Agents by the sync state of their desired revision")
        .with_callback(move |o| {
            for (state, n) in r.sync_counts() {
                o.observe(n, &[KeyValue::new("state", state.as_str())]);
            }
        })
        .build();
    let engine = rollouts.clone();
    meter
        .u64_observable_gauge("h264_controller_rollouts")
        .with_description("1 for the phase of the current (latest) rollout, 0 for the others")
        .with_callback(move |o| {
            let Some(current) = engine.phase() else {
                return;
            };
            for phase in PHASES {
                o.observe(
                    u64::from(phase == current),
                    &[KeyValue::new("phase", phase.as_str())],
                );
            }
        })
        .build();
    meter
        .u64_observable_counter("h264_controller_rollbacks")
        .with_description(
            "Rollbacks to the stable revision, by cause: the failed gate, abort or undo",
        )
        .with_callback(move |o| {
            for (cause, n) in rollouts.rollbacks() {
                o.observe(n, &[KeyValue::new("cause", cause)]);
            }
        })
        .build();
    let r = registry.clone();
    meter
        .u64_observable_counter("h264_controller_assignments_sent")
        .with_description("Assignments pushed to agents")
        .with_callback(move |o| {
            o.observe(r.counters().assignments_sent.load(Ordering::Relaxed), &[])
        })
        .build();
    let r = registry.clone();
    meter
        .u64_observable_counter("h264_controller_assignment_replies")
        .with_description("The agents' answers to assignments: ack or nack")
        .with_callback(move |o| {
            let c = r.counters();
            o.observe(
                c.acks.load(Ordering::Relaxed),
                &[KeyValue::new("reply", "ack")],
            );
            o.observe(
                c.nacks.load(Ordering::Relaxed),
                &[KeyValue::new("reply", "nack")],
            );
        })
        .build();
    let r = registry.clone();
    meter
        .u64_observable_counter("h264_controller_agent_stats")
        .with_description("Stats messages ingested from agents")
        .with_callback(move |o| o.observe(r.counters().stats.load(Ordering::Relaxed), &[]))
        .build();
    meter
        .u64_observable_counter("h264_controller_agent_events")
        .with_description("Job events ingested from agents")
        .with_callback(move |o| o.observe(registry.counters().events.load(Ordering::Relaxed), &[]))
        .build();
}
