//! Operator decisions about agents and revisions: labels (what rollouts select on), forgetting
//! an agent, attaching a signature, and which revisions may be pruned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use h264_proto::v1::AgentStatus;

use super::{Registry, MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE};
use crate::model::{Revision, Signed};

/// Why labels cannot be changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    /// No such agent.
    #[error("no agent `{0}` (see `fleetctl get agents`)")]
    UnknownAgent(String),
    /// A change is not `key=value` or `key-`, or is out of bounds.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a label key: 1-63 of `A-Z a-z 0-9 . _ - /`.
fn check_key(key: &str) -> Result<(), LabelError> {
    if key.is_empty()
        || key.len() > MAX_LABEL_KEY
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    {
        return Err(LabelError::Invalid(format!(
            "`{}` is not a label key: 1-{MAX_LABEL_KEY} characters of A-Z a-z 0-9 . _ - /",
            key.escape_debug()
        )));
    }
    Ok(())
}

/// Applies `changes` (`key=value` sets, `key-` removes) to `labels`.
pub fn apply_label_changes(
    labels: &mut BTreeMap<String, String>,
    changes: &[String],
) -> Result<(), LabelError> {
    for change in changes {
        if let Some((k, v)) = change.split_once('=') {
            check_key(k)?;
            if v.len() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
                return Err(LabelError::Invalid(format!(
                    "the value of `{k}` is longer than {MAX_LABEL_VALUE} bytes or holds control characters"
                )));
            }
            labels.insert(k.to_owned(), v.to_owned());
        } else if let Some(k) = change.strip_suffix('-') {
            check_key(k)?;
            labels.remove(k);
        } else {
            return Err(LabelError::Invalid(format!(
                "`{}` is neither key=value (set) nor key- (remove)",
                change.escape_debug()
            )));
        }
    }
    if labels.len() > MAX_LABELS {
        return Err(LabelError::Invalid(format!(
            "an agent has at most {MAX_LABELS} labels"
        )));
    }
    Ok(())
}

impl Registry {
    /// Changes an agent's operator labels; returns the new labels and its status.
    pub fn set_labels(
        &self,
        agent: &str,
        changes: &[String],
    ) -> Result<(BTreeMap<String, String>, AgentStatus), LabelError> {
        let mut inner = self.lock();
        let entry = inner
            .agents
            .get_mut(agent)
            .ok_or_else(|| LabelError::UnknownAgent(agent.to_owned()))?;
        let mut labels = entry.record.labels.clone();
        apply_label_changes(&mut labels, changes)?;
        entry.record.labels = labels.clone();
        inner.touch(agent);
        drop(inner);
        self.changed();
        let status = self.describe(agent).expect("the agent was just labelled");
        Ok((labels, status))
    }

    /// Forgets an agent (its live session, if any, ends); whether it was connected, or `None`
    /// when there is no such agent.
    pub fn delete_agent(&self, agent: &str) -> Option<bool> {
        let mut inner = self.lock();
        let entry = inner.agents.remove(agent)?;
        inner.dirty.remove(agent);
        drop(inner);
        let connected = entry.session.is_some();
        if let Some(live) = entry.session {
            live.wake.notify_one();
        }
        self.changed();
        Some(connected)
    }

    /// Attaches an operator's signature to revision `generation` (same spec, now signed).
    pub fn sign_revision(&self, generation: u64, signed: Signed) {
        let mut inner = self.lock();
        if let Some(old) = inner.revisions.get(&generation) {
            let mut r: Revision = (**old).clone();
            r.signed = Some(signed);
            inner.revisions.insert(generation, Arc::new(r));
        }
        // Agents that refused it for lacking a (trusted) signature may take it now.
        let mut woken = Vec::new();
        for (id, e) in inner.agents.iter_mut() {
            if e.record
                .nacked
                .get(&generation)
                .is_some_and(|n| n.stage == "signature")
            {
                e.record.nacked.remove(&generation);
                if let Some(live) = &mut e.session {
                    live.pushed = None;
                    live.wake.notify_one();
                }
                woken.push(id.clone());
            }
        }
        for id in woken {
            inner.touch(&id);
        }
        drop(inner);
        self.changed();
    }

    /// The revisions that may be pruned to keep `keep`: the oldest beyond the newest `keep`,
    /// never one in `protect`, the fleet-wide target, or one any agent should run, runs or
    /// last acknowledged.
    pub fn prunable_revisions(&self, keep: usize, protect: &[u64]) -> Vec<u64> {
        let inner = self.lock();
        if inner.revisions.len() <= keep {
            return Vec::new();
        }
        let mut protected: BTreeSet<u64> = protect.iter().copied().collect();
        protected.extend(inner.fleet_target.map(|d| d.generation));
        for e in inner.agents.values() {
            let r = &e.record;
            protected.extend(r.desired.map(|d| d.generation));
            protected.insert(r.running_generation);
            protected.insert(r.acked_generation);
        }
        let newest: BTreeSet<u64> = inner.revisions.keys().rev().take(keep).copied().collect();
        inner
            .revisions
            .keys()
            .filter(|g| !newest.contains(g) && !protected.contains(g))
            .copied()
            .collect()
    }

    /// Drops revisions from memory (after they were deleted from the database).
    pub fn forget_revisions(&self, generations: &[u64]) {
        let mut inner = self.lock();
        for g in generations {
            inner.revisions.remove(g);
        }
        drop(inner);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_changes_set_remove_and_refuse() {
        let mut l = BTreeMap::new();
        apply_label_changes(&mut l, &["canary=true".into(), "site=paris".into()]).unwrap();
        apply_label_changes(&mut l, &["site-".into()]).unwrap();
        assert_eq!(l, [("canary".to_string(), "true".to_string())].into());
        for bad in ["canary", "=x", "a b=c", "k=\u{1b}[2J"] {
            assert!(apply_label_changes(&mut l, &[bad.into()]).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("k{i}=v")).collect();
        assert!(apply_label_changes(&mut BTreeMap::new(), &many).is_err());
    }
}
