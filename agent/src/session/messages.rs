//! The messages the agent sends over its session: hello, stats, job events, ACK and NACK.

use std::time::SystemTime;

use h264_proto::v1::agent_message::Body;
use h264_proto::v1::{
    AgentEvent, AgentMessage, AgentStats, Assignment, AssignmentAck, AssignmentNack, EventKind,
    Hello, JobStage, NackStage,
};

use super::assign::{Nack, Revisions};
use super::caps::Capabilities;
use super::ctx::SessionCtx;
use crate::pipeline::JobEvent;

fn message(body: Body) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

fn ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The generation and SHA256 the agent runs: the fleet revision's, or 0 and the local
/// effective configuration's hash.
pub fn running(agent: &SessionCtx, revisions: &Revisions) -> (u64, String) {
    let pipeline = agent.settings.current();
    match &revisions.running {
        Some((generation, sha256)) if *generation == pipeline.generation => {
            (*generation, sha256.clone())
        }
        _ => (pipeline.generation, pipeline.sha256.clone()),
    }
}

/// The first message of a session.
pub fn hello(agent: &SessionCtx, revisions: &Revisions, caps: &Capabilities) -> AgentMessage {
    let (running_generation, running_sha256) = running(agent, revisions);
    message(Body::Hello(Hello {
        agent_id: agent.view.id.clone(),
        labels: agent
            .local
            .controller
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        capabilities: caps.names(),
        running_generation,
        running_sha256,
        highest_accepted_generation: revisions.highest_accepted,
    }))
}

/// The agent's stats now; `None` when the journal cannot be read (logged).
pub fn stats(agent: &SessionCtx) -> Option<AgentMessage> {
    match agent.view.stats_reply() {
        Ok(stats) => Some(message(Body::Stats(AgentStats {
            at_ms: ms(SystemTime::now()),
            stats: Some(stats),
            running_generation: agent.settings.current().generation,
        }))),
        Err(e) => {
            tracing::warn!(error = %e, "stats for the controller could not be read");
            None
        }
    }
}

/// What a job did.
pub fn event(e: &JobEvent) -> AgentMessage {
    message(Body::Event(AgentEvent {
        at_ms: ms(e.at),
        kind: event_kind(e.kind),
        file: e.file.display().to_string(),
        stage: job_stage(e.stage.as_str()),
        nack_stage: NackStage::Unspecified.into(),
        message: e.message.clone(),
        generation: e.generation,
    }))
}

/// A stage as the protocol carries it: its wire name (`transcode`, `validate`, `waiting`) as a
/// [`JobStage`] (unspecified when the name is none the protocol knows, or empty).
pub fn job_stage(name: &str) -> i32 {
    JobStage::from_name(name).into()
}

/// An event's kind (`converted`, `retrying`, …) as an [`EventKind`].
pub fn event_kind(name: &str) -> i32 {
    EventKind::from_name(name).into()
}

/// The assignment is accepted and in force.
pub fn ack(a: &Assignment) -> AgentMessage {
    message(Body::Ack(AssignmentAck {
        generation: a.generation,
        nonce: a.nonce.clone(),
        sha256: a.sha256.to_ascii_lowercase(),
    }))
}

/// The assignment is refused.
pub fn nack(a: &Assignment, nack: &Nack) -> AgentMessage {
    message(Body::Nack(AssignmentNack {
        generation: a.generation,
        nonce: a.nonce.clone(),
        stage: NackStage::from_name(nack.stage.as_str()).into(),
        field: nack.field.clone(),
        message: nack.message.clone(),
    }))
}

/// A shadow comparison.
pub fn shadow_comparison(c: h264_proto::v1::ShadowComparison) -> AgentMessage {
    message(Body::ShadowComparison(c))
}
