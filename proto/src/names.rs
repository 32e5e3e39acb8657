//! The protocol's enums by the names people read (logs, the journal, the controller's database,
//! fleetctl's output): `JobStage::Transcode` is `transcode`, `RolloutPhase::RolledBack` is
//! `RolledBack`, as they were spelled when they travelled as strings. One table per enum, so
//! each side converts at its boundary the same way. The unspecified value is the empty name,
//! and a name no value has reads as unspecified (a peer of another version).

use crate::v1::{EventKind, JobStage, NackStage, RolloutPhase, SyncState};

/// `name()` and `from_name()` from one table of (value, name).
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name people read; empty for the unspecified value.
            pub fn name(self) -> &'static str {
                match self {
                    $ty::Unspecified => "",
                    $($ty::$variant => $name,)+
                }
            }

            /// The value of `name`; unspecified for a name no value has.
            pub fn from_name(name: &str) -> Self {
                match name {
                    $($name => $ty::$variant,)+
                    _ => $ty::Unspecified,
                }
            }
        }
    };
}

names!(JobStage {
    Readiness => "readiness",
    Probe => "probe",
    Transcode => "transcode",
    Captions => "captions",
    Verify => "verify",
    Publish => "publish",
    Dispose => "dispose",
    Waiting => "waiting",
    Validate => "validate",
    Reconcile => "reconcile",
});

names!(EventKind {
    Converted => "converted",
    Retrying => "retrying",
    Failed => "failed",
    Cancelled => "cancelled",
    Conflict => "conflict",
    Interrupted => "interrupted",
    Nack => "nack",
});

names!(NackStage {
    Hash => "hash",
    Signature => "signature",
    Parse => "parse",
    Validation => "validation",
    Capability => "capability",
    Generation => "generation",
    Apply => "apply",
});

names!(SyncState {
    NotSent => "not_sent",
    Pending => "pending",
    Synced => "synced",
    Error => "error",
});

names!(RolloutPhase {
    Pending => "Pending",
    Progressing => "Progressing",
    Paused => "Paused",
    Succeeded => "Succeeded",
    Aborted => "Aborted",
    RolledBack => "RolledBack",
    Superseded => "Superseded",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_has_a_name_that_reads_back() {
        for v in 0..32 {
            if let Ok(s) = JobStage::try_from(v) {
                assert_eq!(JobStage::from_name(s.name()), s, "{s:?}");
                // The name is the snake_case of the protobuf value's suffix.
                let proto = s.as_str_name().strip_prefix("JOB_STAGE_").unwrap();
                assert!(s == JobStage::Unspecified || proto.eq_ignore_ascii_case(s.name()));
            }
            if let Ok(k) = EventKind::try_from(v) {
                assert_eq!(EventKind::from_name(k.name()), k, "{k:?}");
            }
            if let Ok(n) = NackStage::try_from(v) {
                assert_eq!(NackStage::from_name(n.name()), n, "{n:?}");
            }
            if let Ok(s) = SyncState::try_from(v) {
                assert_eq!(SyncState::from_name(s.name()), s, "{s:?}");
            }
            if let Ok(p) = RolloutPhase::try_from(v) {
                assert_eq!(RolloutPhase::from_name(p.name()), p, "{p:?}");
            }
        }
        assert_eq!(JobStage::from_name("no such stage"), JobStage::Unspecified);
        assert_eq!(RolloutPhase::RolledBack.name(), "RolledBack");
        assert_eq!(SyncState::NotSent.name(), "not_sent");
    }
}
