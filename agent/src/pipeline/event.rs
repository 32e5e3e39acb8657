//! What jobs did, told to the fleet as it happens: a `tokio::sync::broadcast` channel whose
//! sending never blocks and goes nowhere without listeners (the fleet session subscribes).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::broadcast;

use super::stage::Stage;

/// How many events a slow listener may fall behind before it misses some.
const CAPACITY: usize = 1024;

/// What a job did.
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// When.
    pub at: SystemTime,
    /// `converted`, or the journal state a failure led to (`failed`, `retrying`, `cancelled`,
    /// `interrupted`, `conflict`).
    pub kind: &'static str,
    /// The source.
    pub file: PathBuf,
    /// The stage it ended in.
    pub stage: Stage,
    /// What happened (empty for a conversion).
    pub message: String,
    /// The configuration generation the job ran under.
    pub generation: u64,
}

impl JobEvent {
    /// An event that happens now.
    pub fn now(
        kind: &'static str,
        file: &Path,
        stage: Stage,
        message: &str,
        generation: u64,
    ) -> Self {
        Self {
            at: SystemTime::now(),
            kind,
            file: file.to_path_buf(),
            stage,
            message: message.to_string(),
            generation,
        }
    }
}

/// The sending side of the job events (a cheap clone).
#[derive(Debug, Clone)]
pub struct Events(broadcast::Sender<JobEvent>);

impl Default for Events {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Events {
    /// Tells listeners what a job did; without listeners it goes nowhere.
    pub fn emit(&self, event: JobEvent) {
        let _ = self.0.send(event);
    }

    /// A new listener, which receives the events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.0.subscribe()
    }
}
