//! How an attempt ended when it did not publish, and the one place each error type of the
//! stages becomes a [`Failure`].

use super::stage::Stage;
use crate::captions::CaptionError;
use crate::plumbing::child::RunError;
use crate::transcode::TranscodeError;

/// What kind of failure it is: what the retry decision ([`decide`](super::decide::decide))
/// looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not worth retrying: the input is invalid or corrupt.
    Permanent,
    /// Might work next time.
    Transient,
    /// Decode or timestamp errors: the next attempt climbs the retry ladder, if a rung is left.
    Damaged,
}

/// How an attempt ended, when it did not publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A stage failed.
    Failed {
        /// The stage.
        stage: Stage,
        /// What kind of failure.
        class: Class,
        /// What went wrong.
        message: String,
    },
    /// Stopped by a cancel (shutdown, a pause, or the source was deleted or changed).
    Cancelled,
    /// The output name was taken meanwhile by a file this job must not replace.
    Conflict(String),
}

impl Failure {
    /// A permanent failure of `stage`.
    pub fn permanent(stage: Stage, message: impl Into<String>) -> Self {
        Self::Failed {
            stage,
            class: Class::Permanent,
            message: message.into(),
        }
    }

    /// A transient failure of `stage`.
    pub fn transient(stage: Stage, message: impl Into<String>) -> Self {
        Self::Failed {
            stage,
            class: Class::Transient,
            message: message.into(),
        }
    }

    /// Decode or timestamp damage found in `stage`.
    pub fn damaged(stage: Stage, message: impl Into<String>) -> Self {
        Self::Failed {
            stage,
            class: Class::Damaged,
            message: message.into(),
        }
    }

    /// A child process of `stage` failed: cancelled, or worth a retry.
    pub fn run(stage: Stage, e: RunError) -> Self {
        match e {
            RunError::Cancelled { .. } => Self::Cancelled,
            e => Self::transient(stage, e.to_string()),
        }
    }

    /// FFmpeg's transcode failed: cancelled, damaged input (climb the ladder), or worth a retry.
    pub fn transcode(e: TranscodeError) -> Self {
        match e {
            TranscodeError::Cancelled => Self::Cancelled,
            e @ TranscodeError::Failed {
                corrupt_input: true,
                ..
            } => Self::damaged(Stage::Transcode, e.to_string()),
            e => Self::transient(Stage::Transcode, e.to_string()),
        }
    }

    /// The caption extraction failed.
    pub fn captions(e: CaptionError) -> Self {
        match e {
            CaptionError::Cancelled => Self::Cancelled,
            e @ CaptionError::Permanent(_) => Self::permanent(Stage::Captions, e.to_string()),
            e @ CaptionError::Exhausted { .. } => Self::transient(Stage::Captions, e.to_string()),
        }
    }

    /// The message a stage span's error status carries (none for a cancel, which is not an
    /// error of the stage).
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Failed { message, .. } | Self::Conflict(message) => Some(message),
            Self::Cancelled => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_class() {
        assert_eq!(
            Failure::captions(CaptionError::Cancelled),
            Failure::Cancelled
        );
        assert_eq!(
            Failure::captions(CaptionError::Permanent("bad".into())),
            Failure::permanent(Stage::Captions, "bad")
        );
        assert_eq!(
            Failure::transcode(TranscodeError::Cancelled),
            Failure::Cancelled
        );
        let run = RunError::Cancelled {
            program: "ffprobe".into(),
        };
        assert_eq!(Failure::run(Stage::Readiness, run), Failure::Cancelled);
    }
}
