//! The retry and quarantine decision: a pure function of how an attempt failed and where the
//! job stands (attempt, rung of the retry ladder, why it was cancelled). It runs no process and
//! touches nothing; [`super::outcome`] applies what it decides (journal, stats, alerts, events,
//! quarantine, requeue).
//!
//! The rules: a decode or timestamp failure ([`Class::Damaged`]) is retried at once one rung up
//! the ladder, whatever `max_attempts` says, and is final on the last rung. A transient failure
//! is retried on the same rung after a backoff while `attempt < max_attempts`. Anything else is
//! final: the source is quarantined or left in place, per its root's `on_failure`. A cancel is
//! the environment's doing (a pause, shutdown) or the source's (deleted, rewritten).

use super::failure::{Class, Failure};
use super::registry::CancelReason;
use super::stage::Stage;
use crate::journal::JobState;
use crate::transcode::Rung;

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Retry at once on `rung`, one up the retry ladder.
    RetryNow {
        /// The rung the next attempt runs on.
        rung: Rung,
    },
    /// Retry after the backoff, on the same `rung`.
    RetryLater {
        /// The rung the next attempt runs on.
        rung: Rung,
    },
    /// Final: the source is quarantined or left in place (its root's `on_failure`), alerted.
    Quarantine,
    /// The source changed (`requeue`: converted again once stable) or vanished.
    Cancelled {
        /// Whether the key is looked at again.
        requeue: bool,
    },
    /// The environment stopped the job: an operator's pause (`requeue`: it waits for the
    /// resume) or shutdown (redone at the next start).
    EnvironmentHold {
        /// Whether the key is looked at again.
        requeue: bool,
    },
    /// The output name was taken by a file this job must not replace.
    Conflict,
}

/// Where the job stands when its attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The attempt that failed (from 1).
    pub attempt: u32,
    /// `transcode.max_attempts`.
    pub max_attempts: u32,
    /// The rung it ran on.
    pub rung: Rung,
    /// Why it was cancelled, if it was.
    pub cancelled: Option<CancelReason>,
}

/// The decision with what the journal, the event, the log and the trace say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happens next.
    pub decision: Decision,
    /// The journal state it leads to.
    pub state: JobState,
    /// The stage it is recorded against.
    pub stage: Stage,
    /// The message recorded in the journal and the event, and alerted.
    pub message: String,
    /// The failed stage and error for the trace (none for a cancel).
    pub error: Option<(Stage, String)>,
}

/// Decides what follows `failure` for a job at `standing`.
pub fn decide(failure: Failure, standing: Standing) -> Verdict {
    let Standing {
        attempt,
        max_attempts,
        rung,
        cancelled,
    } = standing;
    // The rung an attempt failed on is named in its message (the journal, the trace, `fleetctl
    // agent errors`).
    let on_rung = |message: String| format!("{message} [rung: {}]", rung.as_str());
    let (stage, class, message) = match failure {
        Failure::Cancelled => return cancel(cancelled),
        Failure::Conflict(message) => {
            return Verdict {
                decision: Decision::Conflict,
                state: JobState::Conflict,
                stage: Stage::Publish,
                error: Some((Stage::Publish, message.clone())),
                message,
            }
        }
        Failure::Failed {
            stage,
            class,
            message,
        } => (stage, class, message),
    };
    let (class, message) = match class {
        Class::Damaged => match rung.next() {
            Some(next) => {
                let message = on_rung(message);
                return Verdict {
                    decision: Decision::RetryNow { rung: next },
                    state: JobState::Retrying,
                    stage,
                    error: Some((stage, message.clone())),
                    message: format!(
                        "{message}; the next attempt climbs to rung `{}` (FFmpeg input options {})",
                        next.as_str(),
                        next.input_options().join(" ")
                    ),
                };
            }
            None => (
                Class::Permanent,
                format!(
                    "{}; no rung of the retry ladder ({}) converted it",
                    on_rung(message),
                    Rung::ALL.map(Rung::as_str).join(", ")
                ),
            ),
        },
        class if rung != Rung::Standard => (class, on_rung(message)),
        class => (class, message),
    };
    let error = Some((stage, message.clone()));
    if class == Class::Transient && attempt < max_attempts {
        return Verdict {
            decision: Decision::RetryLater { rung },
            state: JobState::Retrying,
            stage,
            message,
            error,
        };
    }
    // The input checks refuse a file at once: "gave up" would suggest retries.
    let message = if attempt >= max_attempts && stage.as_str() != Stage::Readiness.as_str() {
        format!("{message} (gave up after {attempt} attempt(s))")
    } else {
        message
    };
    Verdict {
        decision: Decision::Quarantine,
        state: JobState::Failed,
        stage,
        message,
        error,
    }
}

/// A cancelled attempt: the source's doing, or the environment's.
fn cancel(reason: Option<CancelReason>) -> Verdict {
    let (decision, state, message) = match reason {
        Some(CancelReason::SourceDeleted) => (
            Decision::Cancelled { requeue: false },
            JobState::Cancelled,
            "the source was deleted or moved away during the job; nothing was published",
        ),
        Some(CancelReason::SourceChanged) => (
            Decision::Cancelled { requeue: true },
            JobState::Cancelled,
            "the source changed during the job; it will be converted again once stable",
        ),
        Some(CancelReason::Paused) => (
            Decision::EnvironmentHold { requeue: true },
            JobState::Interrupted,
            "stopped by an operator's pause; it will be redone after the resume",
        ),
        Some(CancelReason::OutputRootGone) => (
            Decision::EnvironmentHold { requeue: true },
            JobState::Interrupted,
            "the output root went missing or unreachable during the job; it will be redone when it is back",
        ),
        Some(CancelReason::WatchRootGone) => (
            Decision::EnvironmentHold { requeue: true },
            JobState::Interrupted,
            "the watch root went missing or unreachable during the job; it will be redone when it is back",
        ),
        None => (
            Decision::EnvironmentHold { requeue: false },
            JobState::Interrupted,
            "the agent shut down during the job; it will be redone at the next start",
        ),
    };
    Verdict {
        decision,
        state,
        stage: Stage::Transcode,
        message: message.to_string(),
        error: None,
    }
}

#[cfg(test)]
mod tests;
