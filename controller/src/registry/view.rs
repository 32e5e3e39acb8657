//! Read-only views for the admin API: agent statuses, revisions with their counts, stats and
//! errors of one agent.

use h264_proto::v1::{
    self as pb, AgentEvent, AgentStatus, ErrorEntry, EventKind, JobStage, NackStage, StatsReply,
    SyncState as ProtoSyncState,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Entry, Registry};
use crate::model::{EventRecord, Revision};
use crate::selector::Selector;

/// Event kinds that `agent errors` does not list (they are not errors).
const NOT_ERRORS: &[&str] = &["converted", "started", "progress", "accepted"];

fn event(e: &EventRecord) -> AgentEvent {
    let kind = EventKind::from_name(&e.kind);
    AgentEvent {
        at_ms: e.at_ms,
        kind: kind.into(),
        file: e.file.clone(),
        // A NACK's stage is where the agent refused the revision, not a job's stage.
        stage: if kind == EventKind::Nack {
            JobStage::Unspecified
        } else {
            JobStage::from_name(&e.stage)
        }
        .into(),
        nack_stage: if kind == EventKind::Nack {
            NackStage::from_name(&e.stage)
        } else {
            NackStage::Unspecified
        }
        .into(),
        message: e.message.clone(),
        generation: e.generation,
    }
}

fn status(
    entry: &Entry,
    revisions: &BTreeMap<u64, Arc<Revision>>,
    with_events: bool,
) -> AgentStatus {
    let r = &entry.record;
    let running_signer_key = revisions
        .get(&r.running_generation)
        .and_then(|rev| rev.signed.as_ref())
        .filter(|_| r.running_generation != 0)
        .map(|s| s.key.clone())
        .unwrap_or_default();
    AgentStatus {
        agent_id: r.id.clone(),
        labels: r
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        reported_labels: r
            .reported_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        running_signer_key,
        certificate_identity: r.cert_identity.clone(),
        agent_version: r.version.clone(),
        connected: entry.session.is_some(),
        last_seen_ms: r.last_seen_ms,
        desired_generation: r.desired.map_or(0, |d| d.generation),
        acknowledged_generation: r.acked_generation,
        running_generation: r.running_generation,
        sync_state: ProtoSyncState::from_name(r.sync_state().as_str()).into(),
        sync_error: r.sync_error(),
        stats: r.stats.clone(),
        recent_events: if with_events {
            entry.recent.iter().rev().map(event).collect()
        } else {
            Vec::new()
        },
    }
}

impl Registry {
    /// The agents `selector` matches, by id; `with_events` adds their recent events (newest
    /// first), which the fleet watch leaves out.
    pub fn agents(&self, selector: &Selector, with_events: bool) -> Vec<AgentStatus> {
        let inner = self.lock();
        let mut out: Vec<AgentStatus> = inner
            .agents
            .values()
            .filter(|e| e.record.matches(selector))
            .map(|e| status(e, &inner.revisions, with_events))
            .collect();
        drop(inner);
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        out
    }

    /// One agent, with its recent events.
    pub fn describe(&self, agent: &str) -> Option<AgentStatus> {
        let inner = self.lock();
        inner
            .agents
            .get(agent)
            .map(|e| status(e, &inner.revisions, true))
    }

    /// Every revision, newest first, with how many agents are assigned it and run it.
    pub fn revisions(&self) -> Vec<pb::Revision> {
        let inner = self.lock();
        let out: Vec<pb::Revision> = inner
            .revisions
            .values()
            .rev()
            .map(|r| {
                let assigned = inner.agents.values().filter(|e| {
                    e.record
                        .desired
                        .is_some_and(|d| d.generation == r.generation)
                });
                let (mut n, mut acked) = (0u32, 0u32);
                for e in assigned {
                    n += 1;
                    acked += u32::from(e.record.running_generation == r.generation);
                }
                pb::Revision {
                    generation: r.generation,
                    sha256: r.sha256.clone(),
                    name: r.name.clone(),
                    created_at_ms: r.created_at_ms,
                    assigned: n,
                    acked,
                    signer_key: r.signed.as_ref().map(|s| s.key.clone()).unwrap_or_default(),
                }
            })
            .collect();
        out
    }

    /// The agent's latest stats: `None` for an unknown agent, `Some(None)` when it has sent none.
    pub fn stats_of(&self, agent: &str) -> Option<Option<StatsReply>> {
        self.lock()
            .agents
            .get(agent)
            .map(|e| e.record.stats.clone())
    }

    /// The agent's recent error events, newest first, at most `limit` (0: all kept).
    pub fn errors_of(&self, agent: &str, limit: usize) -> Option<Vec<ErrorEntry>> {
        let inner = self.lock();
        let entry = inner.agents.get(agent)?;
        let errors = entry
            .recent
            .iter()
            .rev()
            .filter(|e| !NOT_ERRORS.contains(&e.kind.as_str()))
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|e| ErrorEntry {
                at_ms: e.at_ms,
                file: e.file.clone(),
                stage: JobStage::from_name(&e.stage).into(),
                kind: e.kind.clone(),
                message: e.message.clone(),
            })
            .collect();
        Some(errors)
    }
}
