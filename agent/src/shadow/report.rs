//! A comparison as the agent reports it: the session's own message, [`ShadowComparison`]
//! (`h264-proto`, where the ratios and caption verdicts every side reads from it live too), so
//! the agent, the controller's saved state and fleetctl share one definition of its fields.

use h264_proto::v1::ShadowComparison;

/// One recording converted by production and by the candidate, compared (see
/// [`super::compare::compare`]); a failed candidate has `candidate_ok: false` and its error
/// ([`ShadowComparison::failed`]).
pub type Comparison = ShadowComparison;

/// `c` as sent for rollout `rollout` of candidate `candidate` (production ran `production`),
/// stamped with the time now.
pub fn addressed(mut c: Comparison, rollout: u64, candidate: u64, production: u64) -> Comparison {
    c.rollout = rollout;
    c.candidate_generation = candidate;
    c.production_generation = production;
    c.at_ms = now_ms();
    c
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
