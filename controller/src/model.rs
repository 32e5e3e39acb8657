//! The controller's records: revisions, agents as the controller sees them, their events. The
//! store persists them; the registry keeps them in memory and turns them into protocol messages.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use h264_proto::v1::StatsReply;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// An immutable, numbered fleet configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Its number: 1, 2, 3, ... in the order they were applied.
    pub generation: u64,
    /// SHA256 (hex) of `canonical`.
    pub sha256: String,
    /// The manifest's `metadata.name` when it was applied.
    pub name: String,
    /// The spec's canonical bytes (`FleetSpec::canonical_json`).
    pub canonical: Vec<u8>,
    /// When it was applied.
    pub created_at_ms: i64,
    /// The operator's signature, when it was applied signed.
    pub signed: Option<Signed>,
}

/// An operator's signature of a revision (see `h264_trust::signing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The public key, `ed25519:BASE64`.
    pub key: String,
    /// The signature, base64.
    pub signature: String,
}

/// The revision an agent should run, and whether it is a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    /// The revision's generation.
    pub generation: u64,
    /// Sent with the rollback mark (the agent then accepts a generation below its highest).
    pub rollback: bool,
}

/// Where an agent stands with its desired revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncState {
    /// Nothing to send, or not sent yet (no revision, or the agent is offline).
    #[default]
    NotSent,
    /// Sent; no answer yet.
    Pending,
    /// The agent runs its desired revision.
    Synced,
    /// The agent refused its desired revision (see the NACK).
    Error,
}

impl SyncState {
    /// The name used in the protocol and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotSent => "not_sent",
            Self::Pending => "pending",
            Self::Synced => "synced",
            Self::Error => "error",
        }
    }

    /// Reads [`SyncState::as_str`] back (unknown text: `NotSent`).
    pub fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "synced" => Self::Synced,
            "error" => Self::Error,
            _ => Self::NotSent,
        }
    }
}

/// Why an agent refused a revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nack {
    /// "hash", "parse", "validation", "capability", "generation" or "apply".
    pub stage: String,
    /// The key at fault, if any.
    pub field: String,
    /// The agent's message.
    pub message: String,
    /// When the NACK arrived.
    pub at_ms: i64,
}

impl Nack {
    /// `stage: field: message` (the field left out when empty).
    pub fn describe(&self) -> String {
        if self.field.is_empty() {
            format!("{}: {}", self.stage, self.message)
        } else {
            format!("{}: {}: {}", self.stage, self.field, self.message)
        }
    }
}

/// One agent as the controller knows it; what the database keeps between restarts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRecord {
    /// The id from its Hello.
    pub id: String,
    /// The operator's labels (`fleetctl label agent`): what selectors and rollouts use.
    pub labels: BTreeMap<String, String>,
    /// The labels its Hello reported: shown, never selected on.
    pub reported_labels: BTreeMap<String, String>,
    /// The identity its client certificate proved in its current or last session (empty:
    /// none).
    pub cert_identity: String,
    /// Its version.
    pub version: String,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// The last time it said anything.
    pub last_seen_ms: i64,
    /// The revision it should run.
    pub desired: Option<Desired>,
    /// The last generation it acknowledged.
    pub acked_generation: u64,
    /// The generation it reports running (0: its local file).
    pub running_generation: u64,
    /// The SHA256 of what it runs, from its Hello or ACK.
    pub running_sha256: String,
    /// The generation sent to it and not answered yet.
    pub awaiting: Option<u64>,
    /// The highest generation it ever accepted (from its Hello and ACKs).
    pub highest_accepted: u64,
    /// Generations it refused, and why; these are not pushed to it again.
    pub nacked: BTreeMap<u64, Nack>,
    /// Its latest stats.
    pub stats: Option<StatsReply>,
}

impl AgentRecord {
    /// The sync state, derived from the desired, running, refused and awaited generations.
    pub fn sync_state(&self) -> SyncState {
        let Some(d) = self.desired else {
            return SyncState::NotSent;
        };
        if self.running_generation == d.generation {
            SyncState::Synced
        } else if self.nacked.contains_key(&d.generation) {
            SyncState::Error
        } else if self.awaiting == Some(d.generation) {
            SyncState::Pending
        } else {
            SyncState::NotSent
        }
    }

    /// The NACK behind [`SyncState::Error`], described; empty otherwise.
    pub fn sync_error(&self) -> String {
        match (self.sync_state(), self.desired) {
            (SyncState::Error, Some(d)) => self
                .nacked
                .get(&d.generation)
                .map(Nack::describe)
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Whether all of `selector`'s labels match.
    pub fn matches(&self, selector: &crate::selector::Selector) -> bool {
        selector.matches(&self.labels)
    }
}

/// An event an agent reported (a job converted or failed, a NACK, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The agent.
    pub agent_id: String,
    /// When it happened.
    pub at_ms: i64,
    /// "converted", "failed", "retrying", "cancelled", "conflict", "nack", ...
    pub kind: String,
    /// The source file, if any.
    pub file: String,
    /// The stage, if any.
    pub stage: String,
    /// What happened.
    pub message: String,
    /// The generation it ran under.
    pub generation: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_state_follows_desired_running_nacked_awaiting() {
        let mut r = AgentRecord::default();
        assert_eq!(r.sync_state(), SyncState::NotSent);
        r.desired = Some(Desired {
            generation: 2,
            rollback: false,
        });
        assert_eq!(r.sync_state(), SyncState::NotSent);
        r.awaiting = Some(2);
        assert_eq!(r.sync_state(), SyncState::Pending);
        r.nacked.insert(
            2,
            Nack {
                stage: "hash".into(),
                field: String::new(),
                message: "mismatch".into(),
                at_ms: 0,
            },
        );
        assert_eq!(r.sync_state(), SyncState::Error);
        assert_eq!(r.sync_error(), "hash: mismatch");
        r.running_generation = 2;
        assert_eq!(r.sync_state(), SyncState::Synced);
        assert_eq!(r.sync_error(), "");
        for s in [
            SyncState::NotSent,
            SyncState::Pending,
            SyncState::Synced,
            SyncState::Error,
        ] {
            assert_eq!(SyncState::parse(s.as_str()), s);
        }
    }
}
