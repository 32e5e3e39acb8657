//! The decision table: every row is one failure at one standing and what must follow. No
//! process runs.

use super::*;

const MAX: u32 = 3;

fn at(attempt: u32, rung: Rung, cancelled: Option<CancelReason>) -> Standing {
    Standing {
        attempt,
        max_attempts: MAX,
        rung,
        cancelled,
    }
}

#[test]
fn the_decision_table() {
    use Decision::*;
    use Rung::*;
    let transient = || Failure::transient(Stage::Transcode, "ffmpeg died");
    let permanent = || Failure::permanent(Stage::Readiness, "not a recording");
    let damaged = || Failure::damaged(Stage::Verify, "audio short");
    // (name, failure, standing, decision, state, recorded stage)
    let rows: Vec<(&str, Failure, Standing, Decision, JobState, Stage)> = vec![
        (
            "transient, attempts left",
            transient(),
            at(1, Standard, None),
            RetryLater { rung: Standard },
            JobState::Retrying,
            Stage::Transcode,
        ),
        (
            "transient on a higher rung stays on it",
            transient(),
            at(2, Tolerant, None),
            RetryLater { rung: Tolerant },
            JobState::Retrying,
            Stage::Transcode,
        ),
        (
            "transient, last attempt",
            transient(),
            at(MAX, Standard, None),
            Quarantine,
            JobState::Failed,
            Stage::Transcode,
        ),
        (
            "permanent at once",
            permanent(),
            at(1, Standard, None),
            Quarantine,
            JobState::Failed,
            Stage::Readiness,
        ),
        (
            "damaged climbs whatever the attempts",
            damaged(),
            at(MAX + 5, Standard, None),
            RetryNow { rung: Tolerant },
            JobState::Retrying,
            Stage::Verify,
        ),
        (
            "damaged climbs to the last rung",
            damaged(),
            at(2, Tolerant, None),
            RetryNow { rung: Retimed },
            JobState::Retrying,
            Stage::Verify,
        ),
        (
            "damaged on the last rung is final",
            damaged(),
            at(3, Retimed, None),
            Quarantine,
            JobState::Failed,
            Stage::Verify,
        ),
        (
            "source deleted",
            Failure::Cancelled,
            at(1, Standard, Some(CancelReason::SourceDeleted)),
            Cancelled { requeue: false },
            JobState::Cancelled,
            Stage::Transcode,
        ),
        (
            "source changed",
            Failure::Cancelled,
            at(1, Standard, Some(CancelReason::SourceChanged)),
            Cancelled { requeue: true },
            JobState::Cancelled,
            Stage::Transcode,
        ),
        (
            "an operator's pause",
            Failure::Cancelled,
            at(1, Standard, Some(CancelReason::Paused)),
            EnvironmentHold { requeue: true },
            JobState::Interrupted,
            Stage::Transcode,
        ),
        (
            "shutdown",
            Failure::Cancelled,
            at(1, Standard, None),
            EnvironmentHold { requeue: false },
            JobState::Interrupted,
            Stage::Transcode,
        ),
        (
            "output taken",
            Failure::Conflict("taken".into()),
            at(1, Standard, None),
            Conflict,
            JobState::Conflict,
            Stage::Publish,
        ),
    ];
    for (name, failure, standing, decision, state, stage) in rows {
        let v = decide(failure, standing);
        assert_eq!(
            (v.decision, v.state, v.stage),
            (decision, state, stage),
            "{name}"
        );
    }
}

#[test]
fn messages_name_the_rung_and_what_follows() {
    let v = decide(
        Failure::damaged(Stage::Transcode, "bad"),
        at(1, Rung::Standard, None),
    );
    assert!(v
        .message
        .starts_with("bad [rung: standard]; the next attempt climbs to rung `tolerant`"));
    assert_eq!(
        v.error,
        Some((Stage::Transcode, "bad [rung: standard]".into()))
    );
    let v = decide(
        Failure::damaged(Stage::Transcode, "bad"),
        at(3, Rung::Retimed, None),
    );
    assert_eq!(
        v.message,
        "bad [rung: retimed]; no rung of the retry ladder (standard, tolerant, retimed) \
         converted it (gave up after 3 attempt(s))"
    );
    let v = decide(
        Failure::transient(Stage::Publish, "disk full"),
        at(MAX, Rung::Standard, None),
    );
    assert_eq!(v.message, "disk full (gave up after 3 attempt(s))");
    assert_eq!(v.error, Some((Stage::Publish, "disk full".into())));
    let v = decide(
        Failure::permanent(Stage::Probe, "scrambled"),
        at(MAX, Rung::Standard, None),
    );
    assert_eq!(
        v.message, "scrambled",
        "input checks never say they gave up"
    );
    let v = decide(Failure::Cancelled, at(1, Rung::Standard, None));
    assert_eq!(v.error, None);
}
