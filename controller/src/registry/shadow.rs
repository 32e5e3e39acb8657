//! Shadow steps in the registry: which agents shadow which candidate (the target the rollout
//! engine sets), what each session has told its agent, and the comparisons agents report,
//! queued for the engine.
//!
//! Like assignments, shadow assignments are level-triggered: a change of the target wakes the
//! sessions of the agents it concerns, and each session asks [`Registry::next_shadow_push`]
//! whether its agent's shadow work differs from what this session last sent (a new session
//! starts from "nothing sent": the agent drops shadow work when a session ends).

use std::collections::BTreeSet;

use h264_proto::v1::{Assignment, ShadowAssignment, ShadowComparison};

use super::{Registry, MAX_EVENT_FIELD};
use crate::registry::bounded;

/// Comparisons queued for the engine at most (the oldest are dropped beyond).
const MAX_INBOX: usize = 10_000;

/// Which agents shadow, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowTarget {
    /// The rollout.
    pub rollout: u64,
    /// The candidate revision.
    pub generation: u64,
    /// The agents that shadow.
    pub agents: BTreeSet<String>,
    /// Shadow conversions per agent at once.
    pub workers: u32,
}

/// What a session has told its agent: (rollout, generation) shadowed, or nothing.
pub(super) type Sent = Option<(u64, u64)>;

impl Registry {
    /// Makes `target` the shadow work of the fleet (`None`: no agent shadows) and wakes the
    /// sessions of the agents whose work changes. Cheap when nothing changes.
    pub fn set_shadow_target(&self, target: Option<ShadowTarget>) {
        let mut inner = self.lock();
        if inner.shadow == target {
            return;
        }
        let old = inner.shadow.take();
        let touched: BTreeSet<String> = old
            .iter()
            .chain(target.iter())
            .flat_map(|t| t.agents.iter().cloned())
            .collect();
        tracing::info!(
            rollout = target.as_ref().map(|t| t.rollout),
            generation = target.as_ref().map(|t| t.generation),
            agents = target.as_ref().map_or(0, |t| t.agents.len()),
            "shadow work changed"
        );
        inner.shadow = target;
        for id in touched {
            if let Some(live) = inner.agents.get(&id).and_then(|e| e.session.as_ref()) {
                live.wake.notify_one();
            }
        }
    }

    /// The shadow work now.
    pub fn shadow_target(&self) -> Option<ShadowTarget> {
        self.lock().shadow.clone()
    }

    /// The shadow assignment session `session` of `agent` should send now, if its agent's
    /// shadow work changed since this session last said.
    pub fn next_shadow_push(&self, agent: &str, session: u64) -> Option<ShadowAssignment> {
        let mut inner = self.lock();
        let target = inner
            .shadow
            .as_ref()
            .filter(|t| t.agents.contains(agent))
            .cloned();
        let want: Sent = target.as_ref().map(|t| (t.rollout, t.generation));
        let revision = target
            .as_ref()
            .and_then(|t| inner.revisions.get(&t.generation).cloned());
        let live = inner
            .agents
            .get_mut(agent)?
            .session
            .as_mut()
            .filter(|l| l.id == session)?;
        if live.shadow_sent == want {
            return None;
        }
        let (candidate, rollout, workers) = match (&target, revision) {
            (Some(t), Some(rev)) => {
                let signed = rev.signed.as_ref();
                let candidate = Assignment {
                    generation: rev.generation,
                    sha256: rev.sha256.clone(),
                    canonical: rev.canonical.clone(),
                    nonce: String::new(),
                    rollback: false,
                    traceparent: String::new(),
                    signature: signed.map(|s| s.signature.clone()).unwrap_or_default(),
                    signer_key: signed.map(|s| s.key.clone()).unwrap_or_default(),
                };
                (Some(candidate), t.rollout, t.workers)
            }
            (Some(t), None) => {
                tracing::error!(
                    agent,
                    generation = t.generation,
                    "the shadow candidate is an unknown revision"
                );
                return None;
            }
            (None, _) => (None, 0, 0),
        };
        live.shadow_sent = want;
        Some(ShadowAssignment {
            candidate,
            rollout,
            workers,
        })
    }

    /// A comparison an agent reported: queued for the rollout engine (text fields bounded).
    pub fn shadow_comparison(&self, agent: &str, mut c: ShadowComparison) {
        c.file = bounded(c.file, MAX_EVENT_FIELD);
        c.candidate_error = bounded(c.candidate_error, MAX_EVENT_FIELD);
        c.caption_difference = bounded(c.caption_difference, MAX_EVENT_FIELD);
        c.sidecar_difference = bounded(c.sidecar_difference, MAX_EVENT_FIELD);
        c.sidecar_formats = bounded(c.sidecar_formats, 64);
        c.production_layout = bounded(c.production_layout, 256);
        c.candidate_layout = bounded(c.candidate_layout, 256);
        let mut inner = self.lock();
        if !inner.agents.contains_key(agent) {
            return;
        }
        if inner.shadow_inbox.len() >= MAX_INBOX {
            inner.shadow_inbox.pop_front();
            tracing::warn!("shadow comparisons came faster than the rollout engine took them; the oldest was dropped");
        }
        inner.shadow_inbox.push_back((agent.to_owned(), c));
        drop(inner);
        self.changed();
    }

    /// Takes the queued comparisons.
    pub fn take_shadow_comparisons(&self) -> Vec<(String, ShadowComparison)> {
        self.lock().shadow_inbox.drain(..).collect()
    }
}
