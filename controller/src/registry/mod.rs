//! The fleet registry: every agent and revision the controller knows, in memory, as the one
//! source of truth the sessions, the admin API and the persister share.
//!
//! # Theory of operation
//! One `std::sync::Mutex` guards the whole state; every method takes it, changes or copies what
//! it needs and lets go, never across an `.await` (critical sections are a map lookup and a few
//! field writes; a snapshot of 1,000 agents copies their records). After each change it
//! bumps a `watch` counter, which the fleet watches await, and marks the agent dirty for the
//! persister, which saves dirty agents in batches ([`crate::persist`]). Stats therefore cost a
//! lock and a copy, not a database write.
//!
//! Pushing is level-triggered: a change of an agent's desired revision only wakes its session
//! (a `Notify`, which keeps a permit, so no wake-up is lost); the session task then asks
//! [`Registry::next_push`] what, if anything, to send. The answer depends only on the state
//! (desired, running, refused, already sent in this session), so duplicate wake-ups send
//! nothing twice and a reconnect resends exactly what is missing.
//!
//! Tracing: whoever changes an agent's desired revision does it inside a span (an admin call
//! continuing fleetctl's trace, a rollout's push or rollback); the registry keeps that span's
//! W3C `traceparent` with the desired revision, and the assignment pushed for it carries it,
//! even when the agent only returns hours later, so the agent's apply joins that trace. The
//! counters ([`Counters`]) are atomics bumped outside the lock, read by the metrics.

mod assign;
mod rollout;
mod session;
mod shadow;
mod trust;
mod view;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use h264_proto::v1::AgentCommand;
use tokio::sync::{mpsc, watch, Notify};

pub use assign::{AssignError, Assigned, Target};
pub use rollout::{JobCounts, RolloutAgent};
pub use session::{
    bounded, CommandError, Push, RegisterError, SessionTicket, MAX_EVENT_FIELD, MAX_LABELS,
    MAX_LABEL_KEY, MAX_LABEL_VALUE,
};
pub use shadow::ShadowTarget;
pub use trust::{apply_label_changes, LabelError};

use crate::model::{AgentRecord, Desired, EventRecord, Revision, SyncState};
use crate::store::Batch;

/// Events kept in memory per agent (for `describe` and `agent errors`).
pub const RECENT_EVENTS: usize = 32;
/// Unsaved events kept at most (the oldest are dropped if the database falls behind).
const MAX_UNSAVED_EVENTS: usize = 10_000;

/// The shared fleet state; see the module docs.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
    counters: Counters,
}

/// What went through the agent sessions since the controller started (for the metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Assignments sent to agents.
    pub assignments_sent: AtomicU64,
    /// ACKs received.
    pub acks: AtomicU64,
    /// NACKs received.
    pub nacks: AtomicU64,
    /// Stats messages ingested.
    pub stats: AtomicU64,
    /// Job events ingested.
    pub events: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Inner {
    agents: HashMap<String, Entry>,
    revisions: BTreeMap<u64, Arc<Revision>>,
    fleet_target: Option<Desired>,
    /// The `traceparent` of the span that set `fleet_target` (empty: untraced).
    fleet_trace: String,
    dirty: HashSet<String>,
    unsaved_events: VecDeque<EventRecord>,
    dropped_events: u64,
    next_session: u64,
    /// Attempts reported per generation (for the rollout gates).
    jobs: HashMap<u64, JobCounts>,
    /// The shadow work of the fleet (set by the rollout engine).
    shadow: Option<ShadowTarget>,
    /// Comparisons reported by shadowing agents, for the rollout engine.
    shadow_inbox: VecDeque<(String, h264_proto::v1::ShadowComparison)>,
}

#[derive(Debug)]
struct Entry {
    record: AgentRecord,
    recent: VecDeque<EventRecord>,
    session: Option<Live>,
    /// The `traceparent` of the span that set `record.desired` (empty: untraced); sent with
    /// the assignment.
    trace: String,
}

/// The live session of a connected agent.
#[derive(Debug)]
struct Live {
    id: u64,
    wake: Arc<Notify>,
    commands: mpsc::Sender<AgentCommand>,
    /// The generation sent in this session (not sent again in it).
    pushed: Option<u64>,
    /// The shadow work this session told its agent about.
    shadow_sent: shadow::Sent,
}

impl Entry {
    fn new(record: AgentRecord) -> Self {
        Self {
            record,
            recent: VecDeque::new(),
            session: None,
            trace: String::new(),
        }
    }

    fn push_event(&mut self, event: EventRecord) {
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
    }
}

impl Inner {
    fn touch(&mut self, id: &str) {
        if !self.dirty.contains(id) {
            self.dirty.insert(id.to_owned());
        }
    }

    fn add_event(&mut self, event: EventRecord) {
        match event.kind.as_str() {
            "converted" => self.jobs.entry(event.generation).or_default().converted += 1,
            "failed" => self.jobs.entry(event.generation).or_default().failed += 1,
            "retrying" => self.jobs.entry(event.generation).or_default().retried += 1,
            _ => {}
        }
        if let Some(entry) = self.agents.get_mut(&event.agent_id) {
            entry.push_event(event.clone());
        }
        if self.unsaved_events.len() == MAX_UNSAVED_EVENTS {
            self.unsaved_events.pop_front();
            self.dropped_events += 1;
        }
        self.unsaved_events.push_back(event);
    }
}

impl Registry {
    /// A registry holding what the store had: revisions, agents (all disconnected) with their
    /// recent events, and the fleet-wide target.
    pub fn load(
        revisions: Vec<Revision>,
        agents: Vec<(AgentRecord, Vec<EventRecord>)>,
        fleet_target: Option<Desired>,
    ) -> Self {
        let mut inner = Inner {
            fleet_target,
            ..Inner::default()
        };
        for r in revisions {
            inner.revisions.insert(r.generation, Arc::new(r));
        }
        for (record, events) in agents {
            let mut entry = Entry::new(record);
            for e in events {
                entry.push_event(e);
            }
            inner.agents.insert(entry.record.id.clone(), entry);
        }
        Self {
            inner: Mutex::new(inner),
            changes: watch::Sender::new(0),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Signals watchers that something changed.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every change (as a counter).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Takes what the persister should write: the dirty agents' records and the new events.
    pub fn take_batch(&self) -> Batch {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        let agents = dirty
            .iter()
            .filter_map(|id| inner.agents.get(id).map(|e| e.record.clone()))
            .collect();
        let events = inner.unsaved_events.drain(..).collect();
        if inner.dropped_events > 0 {
            tracing::warn!(
                dropped = inner.dropped_events,
                "the database fell behind: some agent events were not saved"
            );
            inner.dropped_events = 0;
        }
        Batch { agents, events }
    }

    /// Puts back a batch that could not be saved, so the next flush retries it.
    pub fn restore_batch(&self, batch: Batch) {
        let mut inner = self.lock();
        for a in batch.agents {
            inner.touch(&a.id);
        }
        for e in batch.events.into_iter().rev() {
            if inner.unsaved_events.len() < MAX_UNSAVED_EVENTS {
                inner.unsaved_events.push_front(e);
            }
        }
    }

    /// A revision, by generation.
    pub fn revision(&self, generation: u64) -> Option<Arc<Revision>> {
        self.lock().revisions.get(&generation).cloned()
    }

    /// The newest revision.
    pub fn latest_revision(&self) -> Option<Arc<Revision>> {
        self.lock().revisions.values().next_back().cloned()
    }

    /// How many agents have a live session.
    pub fn connected(&self) -> usize {
        self.lock()
            .agents
            .values()
            .filter(|e| e.session.is_some())
            .count()
    }

    /// How many agents are known (connected or not).
    pub fn known(&self) -> usize {
        self.lock().agents.len()
    }

    /// How many agents are in each sync state.
    pub fn sync_counts(&self) -> [(SyncState, u64); 4] {
        let mut counts = [
            (SyncState::NotSent, 0),
            (SyncState::Pending, 0),
            (SyncState::Synced, 0),
            (SyncState::Error, 0),
        ];
        for e in self.lock().agents.values() {
            let state = e.record.sync_state();
            if let Some(c) = counts.iter_mut().find(|(s, _)| *s == state) {
                c.1 += 1;
            }
        }
        counts
    }

    /// The session counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Gives the agents `ids` whose desired revision is `generation` and that have no trace
    /// the trace `traceparent` (a restarted controller continuing a rollout: what it pushes
    /// from now on joins the rollout's trace).
    pub fn adopt_trace(&self, generation: u64, ids: &[String], traceparent: &str) {
        if traceparent.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for id in ids {
            if let Some(e) = inner.agents.get_mut(id) {
                if e.trace.is_empty() && e.record.desired.map(|d| d.generation) == Some(generation)
                {
                    e.trace = traceparent.to_owned();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
