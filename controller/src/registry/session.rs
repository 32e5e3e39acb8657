//! What agent sessions do to the registry: register from a Hello (and resync), ask what to
//! push, record ACKs, NACKs, stats and events, disconnect; and the commands queued for them.

use std::sync::Arc;

use h264_proto::v1::{
    AgentCommand, AgentEvent, AgentStats, Assignment, AssignmentAck, AssignmentNack, Hello,
};
use tokio::sync::{mpsc, Notify};

use super::{Counters, Entry, Live, Registry};
use crate::model::{now_ms, AgentRecord, EventRecord, Nack};

/// Commands queued per session at most (pause and resume are rare).
const COMMAND_QUEUE: usize = 8;
/// Labels a Hello may report at most; the rest are dropped.
pub const MAX_LABELS: usize = 32;
/// The longest label key and value kept.
pub const MAX_LABEL_KEY: usize = 63;
/// The longest label value kept.
pub const MAX_LABEL_VALUE: usize = 256;
/// The longest file name, stage, kind or message of an event kept (longer ones are cut).
pub const MAX_EVENT_FIELD: usize = 4096;

/// Why a Hello is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    /// The agent has a live session and the new one cannot prove the same identity.
    #[error("agent `{0}` already has a live session; a second session may take over only with the agent's certificate (the live one ends when its connection does)")]
    LiveSession(String),
    /// The controller knows as many agents as it may.
    #[error("this controller knows {0} agents, its max_agents: delete agents that are gone (`fleetctl delete agent ID`) or raise max_agents")]
    Full(usize),
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// What a session gets when its Hello is accepted.
#[derive(Debug)]
pub struct SessionTicket {
    /// This session's number; a newer session of the same agent supersedes it.
    pub id: u64,
    /// Woken when there may be something to push, or when the session is superseded.
    pub wake: Arc<Notify>,
    /// Commands (pause, resume) to forward to the agent.
    pub commands: mpsc::Receiver<AgentCommand>,
}

/// What a session should do next.
#[derive(Debug, PartialEq)]
pub enum Push {
    /// A newer session of the same agent took over: end this one.
    Superseded,
    /// Nothing to send.
    Nothing,
    /// Send this assignment.
    Send(Assignment),
}

/// Why a command cannot be forwarded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// No such agent.
    #[error("no agent `{0}`")]
    UnknownAgent(String),
    /// The agent has no session now.
    #[error("agent `{0}` is not connected to the controller")]
    NotConnected(String),
    /// Its command queue is full.
    #[error("agent `{0}` has too many commands waiting; try again")]
    Busy(String),
}

fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Registry {
    /// Registers (or updates) the agent of a Hello, makes this its live session, gives a new
    /// agent the fleet-wide target, and takes its running state from the Hello: the resync.
    ///
    /// `proved` is the identity the session's client certificate proved (already checked to
    /// be this agent's). A session that proved it supersedes an older one; one that did not
    /// is refused while the agent has a live session. A new agent past `max_agents` is
    /// refused.
    pub fn register(
        &self,
        hello: &Hello,
        proved: bool,
        max_agents: usize,
    ) -> Result<SessionTicket, RegisterError> {
        let mut inner = self.lock();
        match inner.agents.get(&hello.agent_id) {
            Some(e) if e.session.is_some() && !proved => {
                return Err(RegisterError::LiveSession(hello.agent_id.clone()))
            }
            None if inner.agents.len() >= max_agents => {
                return Err(RegisterError::Full(inner.agents.len()))
            }
            _ => {}
        }
        inner.next_session += 1;
        let id = inner.next_session;
        let fleet_target = inner.fleet_target;
        let fleet_trace = inner.fleet_trace.clone();
        let entry = inner
            .agents
            .entry(hello.agent_id.clone())
            .or_insert_with(|| {
                let mut e = Entry::new(AgentRecord {
                    id: hello.agent_id.clone(),
                    desired: fleet_target,
                    ..AgentRecord::default()
                });
                e.trace = fleet_trace;
                e
            });
        let r = &mut entry.record;
        r.reported_labels = hello
            .labels
            .iter()
            .filter(|(k, v)| k.len() <= MAX_LABEL_KEY && v.len() <= MAX_LABEL_VALUE)
            .take(MAX_LABELS)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        r.cert_identity = if proved {
            h264_trust::Identity::Agent(hello.agent_id.clone()).uri()
        } else {
            String::new()
        };
        r.version = bounded(hello.agent_version.clone(), MAX_LABEL_VALUE);
        r.capabilities = hello
            .capabilities
            .iter()
            .take(64)
            .map(|c| bounded(c.clone(), MAX_LABEL_VALUE))
            .collect();
        r.last_seen_ms = now_ms();
        r.running_generation = hello.running_generation;
        r.running_sha256.clone_from(&hello.running_sha256);
        r.highest_accepted = r.highest_accepted.max(hello.highest_accepted_generation);
        if r.running_generation != 0 {
            // It runs that generation, so it accepted it (perhaps before a restart of ours).
            r.acked_generation = r.running_generation;
        }
        // Whatever was in flight before is gone with the old session.
        r.awaiting = None;
        let wake = Arc::new(Notify::new());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        if let Some(old) = entry.session.replace(Live {
            id,
            wake: wake.clone(),
            commands: tx,
            pushed: None,
            shadow_sent: None,
        }) {
            tracing::info!(agent = %hello.agent_id, old = old.id, new = id, "a new session replaces the agent's previous one");
            old.wake.notify_one();
        }
        inner.touch(&hello.agent_id);
        drop(inner);
        self.changed();
        Ok(SessionTicket {
            id,
            wake,
            commands: rx,
        })
    }

    /// What session `session` of `agent` should send now (see the module docs of the registry).
    pub fn next_push(&self, agent: &str, session: u64) -> Push {
        let mut inner = self.lock();
        let Some(entry) = inner.agents.get(agent) else {
            return Push::Superseded;
        };
        let Some(live) = entry.session.as_ref().filter(|l| l.id == session) else {
            return Push::Superseded;
        };
        let r = &entry.record;
        let Some(d) = r.desired else {
            return Push::Nothing;
        };
        let Some(rev) = inner.revisions.get(&d.generation).cloned() else {
            tracing::error!(
                agent,
                generation = d.generation,
                "desired revision is unknown"
            );
            return Push::Nothing;
        };
        let runs_it = r.running_generation == d.generation && r.running_sha256 == rev.sha256;
        if runs_it || r.nacked.contains_key(&d.generation) || live.pushed == Some(d.generation) {
            return Push::Nothing;
        }
        let assignment = Assignment {
            generation: rev.generation,
            sha256: rev.sha256.clone(),
            canonical: rev.canonical.clone(),
            nonce: nonce(),
            rollback: d.rollback,
            traceparent: entry.trace.clone(),
            signature: rev
                .signed
                .as_ref()
                .map(|s| s.signature.clone())
                .unwrap_or_default(),
            signer_key: rev
                .signed
                .as_ref()
                .map(|s| s.key.clone())
                .unwrap_or_default(),
        };
        if let Some(entry) = inner.agents.get_mut(agent) {
            entry.record.awaiting = Some(d.generation);
            if let Some(live) = entry.session.as_mut() {
                live.pushed = Some(d.generation);
            }
        }
        inner.touch(agent);
        drop(inner);
        Counters::bump(&self.counters.assignments_sent);
        self.changed();
        Push::Send(assignment)
    }

    /// The agent runs `ack.generation` now.
    pub fn ack(&self, agent: &str, ack: &AssignmentAck) {
        Counters::bump(&self.counters.acks);
        self.update(agent, |entry, revision_sha| {
            let r = &mut entry.record;
            if let Some(expected) = revision_sha.as_ref().filter(|s| **s != ack.sha256) {
                // The agent applied something else than what was sent: changed in transit, or
                // a forged ACK. Never shown as synced.
                tracing::error!(agent, generation = ack.generation, acked = %ack.sha256, %expected, "the ACK names another SHA256 than the revision's: not synced");
                if r.awaiting == Some(ack.generation) {
                    r.awaiting = None;
                }
                let n = Nack {
                    stage: "hash".into(),
                    field: String::new(),
                    message: format!(
                        "the agent runs SHA256 {} for generation {}, not the revision's {expected}: changed in transit? Use TLS and signed revisions",
                        bounded(ack.sha256.clone(), 64),
                        ack.generation
                    ),
                    at_ms: now_ms(),
                };
                r.nacked.insert(ack.generation, n.clone());
                return Some(EventRecord {
                    agent_id: agent.to_owned(),
                    at_ms: n.at_ms,
                    kind: "nack".into(),
                    file: String::new(),
                    stage: n.stage,
                    message: n.message,
                    generation: ack.generation,
                });
            }
            r.acked_generation = ack.generation;
            r.running_generation = ack.generation;
            r.running_sha256 = revision_sha.unwrap_or_else(|| ack.sha256.clone());
            r.highest_accepted = r.highest_accepted.max(ack.generation);
            if r.awaiting == Some(ack.generation) {
                r.awaiting = None;
            }
            None
        }, ack.generation);
    }

    /// The agent refused `nack.generation`: remembered (it is not pushed again) and logged as
    /// an event.
    pub fn nack(&self, agent: &str, nack: &AssignmentNack) {
        Counters::bump(&self.counters.nacks);
        self.update(agent, |entry, _| {
            let n = Nack {
                stage: nack.stage().name().to_owned(),
                field: bounded(nack.field.clone(), MAX_LABEL_VALUE),
                message: bounded(nack.message.clone(), MAX_EVENT_FIELD),
                at_ms: now_ms(),
            };
            tracing::warn!(agent, generation = nack.generation, refused = %n.describe(), "agent refused a revision");
            let r = &mut entry.record;
            if r.awaiting == Some(nack.generation) {
                r.awaiting = None;
            }
            r.nacked.insert(nack.generation, n.clone());
            Some(EventRecord {
                agent_id: agent.to_owned(),
                at_ms: n.at_ms,
                kind: "nack".into(),
                file: String::new(),
                stage: n.stage,
                message: if n.field.is_empty() { n.message } else { format!("{}: {}", n.field, n.message) },
                generation: nack.generation,
            })
        }, nack.generation);
    }

    /// The agent's latest stats (the running generation among them).
    pub fn stats(&self, agent: &str, stats: AgentStats) {
        Counters::bump(&self.counters.stats);
        let generation = stats.running_generation;
        self.update(
            agent,
            move |entry, revision_sha| {
                let r = &mut entry.record;
                if r.running_generation != generation {
                    r.running_generation = generation;
                    r.running_sha256 = revision_sha.unwrap_or_default();
                }
                r.stats = stats.stats;
                None
            },
            generation,
        );
    }

    /// An event the agent reported.
    pub fn event(&self, agent: &str, event: AgentEvent) {
        Counters::bump(&self.counters.events);
        self.update(
            agent,
            |entry, _| {
                // An event without a generation ran under what the agent runs now.
                let generation = if event.generation == 0 {
                    entry.record.running_generation
                } else {
                    event.generation
                };
                // The agent's clock is its own: a time in the future is taken as now.
                let now = now_ms();
                let (kind, stage) = (event.kind().name(), event.stage().name());
                Some(EventRecord {
                    agent_id: agent.to_owned(),
                    at_ms: if event.at_ms > 0 && event.at_ms <= now {
                        event.at_ms
                    } else {
                        now
                    },
                    kind: kind.to_owned(),
                    file: bounded(event.file, MAX_EVENT_FIELD),
                    stage: stage.to_owned(),
                    message: bounded(event.message, MAX_EVENT_FIELD),
                    generation,
                })
            },
            0,
        );
    }

    /// Applies `f` to the agent's entry (given the SHA256 of revision `generation`, if known),
    /// records the event it returns, updates last-seen, marks it dirty and signals the change.
    fn update(
        &self,
        agent: &str,
        f: impl FnOnce(&mut Entry, Option<String>) -> Option<EventRecord>,
        generation: u64,
    ) {
        let mut inner = self.lock();
        let sha = inner.revisions.get(&generation).map(|r| r.sha256.clone());
        let Some(entry) = inner.agents.get_mut(agent) else {
            return;
        };
        entry.record.last_seen_ms = now_ms();
        if let Some(event) = f(entry, sha) {
            inner.add_event(event);
        }
        inner.touch(agent);
        drop(inner);
        self.changed();
    }

    /// Session `session` of `agent` ended; the agent is disconnected unless a newer session
    /// already took over.
    pub fn disconnect(&self, agent: &str, session: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.agents.get_mut(agent) else {
            return;
        };
        if entry.session.as_ref().is_none_or(|l| l.id != session) {
            return;
        }
        entry.session = None;
        entry.record.last_seen_ms = now_ms();
        inner.touch(agent);
        drop(inner);
        self.changed();
    }

    /// Queues a command for the agent's session.
    pub fn command(&self, agent: &str, command: AgentCommand) -> Result<(), CommandError> {
        let inner = self.lock();
        let entry = inner
            .agents
            .get(agent)
            .ok_or_else(|| CommandError::UnknownAgent(agent.to_owned()))?;
        let live = entry
            .session
            .as_ref()
            .ok_or_else(|| CommandError::NotConnected(agent.to_owned()))?;
        live.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::Busy(agent.to_owned()),
            mpsc::error::TrySendError::Closed(_) => CommandError::NotConnected(agent.to_owned()),
        })
    }
}
