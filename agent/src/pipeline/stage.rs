//! The stages of a job, by name: one vocabulary for the logs, the trace, the journal, the
//! control API, the fleet events and the metrics.

/// A stage of a job, in the order a job runs them (the deep probe runs beside the transcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The quick checks: not empty, ffprobe reads it, the programme of a multiplex, not
    /// scrambled, a video stream, whole packets, the minimum duration.
    Readiness,
    /// The caption check (do the first frames carry captions?), beside the transcode; the caption
    /// plan comes from the readiness probe's own ffprobe run.
    Probe,
    /// FFmpeg, whose own log gives the recording's damage.
    Transcode,
    /// The output's streams, duration and captions checked against the source's.
    Verify,
    /// Caption sidecars.
    Captions,
    /// Sidecars and the MP4 given their final names.
    Publish,
    /// What happens to the source afterwards (kept, moved, quarantined).
    Dispose,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 7] = [
        Stage::Readiness,
        Stage::Probe,
        Stage::Transcode,
        Stage::Verify,
        Stage::Captions,
        Stage::Publish,
        Stage::Dispose,
    ];

    /// The stage's own name (snake_case): its span's name and its name in the logs.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Readiness => "readiness",
            Stage::Probe => "probe",
            Stage::Transcode => "transcode",
            Stage::Verify => "verify",
            Stage::Captions => "captions",
            Stage::Publish => "publish",
            Stage::Dispose => "dispose",
        }
    }

    /// The stage as the journal's `stage` column, the control API, the fleet events and the
    /// progress files name it. The input checks (readiness and the deep probe) have always been
    /// recorded as `validate`, so journals written by earlier versions read the same.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Readiness | Stage::Probe => "validate",
            other => other.name(),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job is, for the control API and the metrics: waiting for a worker, or in a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    /// Waiting for a worker (or for intake to reopen).
    #[default]
    Waiting,
    /// Running a stage.
    In(Stage),
}

impl Phase {
    /// `waiting`, or the stage's [`Stage::as_str`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::In(stage) => stage.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wire_strings() {
        let names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "readiness",
                "probe",
                "transcode",
                "verify",
                "captions",
                "publish",
                "dispose"
            ]
        );
        let wire: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            wire,
            [
                "validate",
                "validate",
                "transcode",
                "verify",
                "captions",
                "publish",
                "dispose"
            ]
        );
        assert_eq!(Phase::Waiting.as_str(), "waiting");
        assert_eq!(Phase::In(Stage::Transcode).as_str(), "transcode");
    }
}
