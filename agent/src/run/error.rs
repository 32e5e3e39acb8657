//! What stops the agent from starting or running.

use std::path::PathBuf;

use crate::journal::JournalError;

/// A problem that stops the agent from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    /// The state folder cannot be created or used.
    #[error("state folder {path}: {source}; check agent.state_dir and its permissions")]
    StateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The journal cannot be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// FFmpeg or ffprobe is missing or does not run.
    #[error("{program} does not run ({why}); install FFmpeg (`apt-get install ffmpeg`) or set transcode.{key}")]
    MissingTool {
        /// The program as configured.
        program: String,
        /// The config key that names it.
        key: &'static str,
        /// What went wrong.
        why: String,
    },
    /// A watch root cannot be used.
    #[error("{0}; check the [[watch]] section")]
    Root(std::io::Error),
    /// A watch or output root the agent has seen before is missing or unreachable, in
    /// `--once` mode (a daemon holds it and waits instead).
    #[error("the {kind} root {} is missing or unreachable ({why}); it existed before, so it is not recreated: mount the share (or bring its server back) and run again", path.display())]
    RootUnavailable {
        /// The root.
        path: PathBuf,
        /// `watch` or `output`.
        kind: &'static str,
        /// Why.
        why: String,
    },
    /// Another agent uses the state folder.
    #[error(transparent)]
    Lock(#[from] crate::plumbing::lock::LockError),
    /// The control address cannot be used (another agent listens there).
    #[error(transparent)]
    Control(#[from] crate::control::BindError),
}
