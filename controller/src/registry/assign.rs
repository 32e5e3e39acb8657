//! Assigning revisions: to every agent (apply, or assign without a target), to one agent, or
//! to the agents a selector matches.

use std::sync::Arc;

use super::Registry;
use crate::model::{Desired, Revision};
use crate::selector::Selector;

/// Which agents an assignment is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every agent, and those that register later.
    All,
    /// One agent (an explicit retry: a revision it refused before is sent again).
    Agent(String),
    /// The agents whose labels match.
    Selector(Selector),
}

impl Target {
    /// How the assignment log names it.
    pub fn describe(&self) -> String {
        match self {
            Self::All => "all".into(),
            Self::Agent(id) => format!("agent={id}"),
            Self::Selector(s) => format!("selector={s:?}"),
        }
    }
}

/// The outcome of an assignment.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// The agents it changed or confirmed, sorted.
    pub agents: Vec<String>,
    /// What the operator should know (an older generation without the rollback mark).
    pub warnings: Vec<String>,
}

/// Why an assignment cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    /// No revision has that generation.
    #[error("there is no revision {0} (see `fleetctl get revisions`)")]
    NoRevision(u64),
    /// No agent has that id.
    #[error("no agent `{0}` (see `fleetctl get agents`)")]
    UnknownAgent(String),
}

impl Registry {
    /// Adds a newly applied revision.
    pub fn add_revision(&self, revision: Revision) {
        self.lock()
            .revisions
            .insert(revision.generation, Arc::new(revision));
        self.changed();
    }

    /// Makes `generation` the desired revision of the target's agents and wakes their
    /// sessions. A target of every agent also becomes the fleet-wide target. The assignments
    /// carry the trace context of the current span (module docs of the registry).
    pub fn assign(
        &self,
        generation: u64,
        target: &Target,
        rollback: bool,
    ) -> Result<Assigned, AssignError> {
        let trace = h264_telemetry::propagate::current_traceparent();
        let mut inner = self.lock();
        if !inner.revisions.contains_key(&generation) {
            return Err(AssignError::NoRevision(generation));
        }
        if let Target::Agent(id) = target {
            if !inner.agents.contains_key(id) {
                return Err(AssignError::UnknownAgent(id.clone()));
            }
        }
        let desired = Desired {
            generation,
            rollback,
        };
        if *target == Target::All {
            inner.fleet_target = Some(desired);
            inner.fleet_trace.clone_from(&trace);
        }
        let mut out = Assigned::default();
        let mut touched = Vec::new();
        for (id, entry) in inner.agents.iter_mut() {
            let selected = match target {
                Target::All => true,
                Target::Agent(want) => want == id,
                Target::Selector(s) => entry.record.matches(s),
            };
            if !selected {
                continue;
            }
            let r = &mut entry.record;
            if !rollback && generation < r.highest_accepted {
                out.warnings.push(format!(
                    "agent {id} has accepted generation {}: generation {generation} without the rollback mark will be refused by it (assign again with --rollback)",
                    r.highest_accepted
                ));
            }
            r.desired = Some(desired);
            entry.trace.clone_from(&trace);
            if matches!(target, Target::Agent(_)) {
                // An explicit retry for one agent: forget its refusal and send again.
                r.nacked.remove(&generation);
                if let Some(live) = entry.session.as_mut() {
                    live.pushed = None;
                }
            }
            if let Some(live) = &entry.session {
                live.wake.notify_one();
            }
            out.agents.push(id.clone());
            touched.push(id.clone());
        }
        for id in touched {
            inner.touch(&id);
        }
        drop(inner);
        out.agents.sort();
        self.changed();
        Ok(out)
    }
}
