//! `h264-alerts`: operator alerts for h264create's programs (`h264-agent`, `h264-controller`).
//! Every alert is logged, and, when `[alerts.email]` is set, e-mailed (HTML and plain text)
//! through a write-ahead dead-letter queue on disk. The settings are the agent's `[alerts]`
//! section ([`h264_config::agent::Alerts`]), which the controller's config file takes too.
//!
//! ```no_run
//! # async fn example(cfg: h264_config::agent::Alerts) -> std::io::Result<()> {
//! use h264_alerts::{Alert, AlertKind, Alerter, Origin};
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let origin = Origin::controller("127.0.0.1:7443");
//! let alerter = Alerter::start(&cfg, &origin, "var/controller".as_ref(), shutdown.clone())?;
//! alerter.send(Alert {
//!     kind: AlertKind::RolloutAborted,
//!     subject: "rollout 3 aborted".into(),
//!     facts: vec![("rollout".into(), "3".into())],
//!     action: "every agent was assigned the stable revision 2".into(),
//!     dedup_key: "rollout-3-aborted".into(),
//! });
//! shutdown.cancel();
//! alerter.flush(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Theory of operation
//! [`Alerter::send`] is synchronous and never touches the network. It logs the alert with
//! `tracing` (always, whatever happens to e-mail), then asks [`dedup`] whether the alert's
//! `dedup_key` was already mailed within `dedup_window`: if so the alert is only counted, and
//! the count is written into the next message for that key. Otherwise the message is
//! [`render`]ed and written to the [`queue`] — one JSON file per message under
//! `state_dir/alerts-queue/`, written atomically (temp, fsync, rename, directory fsync) — and
//! the delivery task is woken.
//!
//! The queue is bounded by `queue_limit`: when it is full, the oldest messages are replaced by
//! one summary message that lists their subjects and times; nothing is dropped unmentioned.
//!
//! The delivery task (module `deliver`) owns every delivery pass (a pass lock makes passes
//! exclusive, so a message is never sent by two passes at once). A pass sends the messages
//! that are due, oldest first, each over [`smtp`] within the configured timeout; a file is
//! removed only after the server accepted its message. A failed message has its attempt count
//! and next-attempt time (exponential backoff with jitter) written back into its file, so the
//! schedule survives restarts; a transient failure (no connection, TLS, timeout, 4xx,
//! authentication refused) also ends the pass and holds further passes back for a backoff, so
//! a dead server costs one attempt per backoff, not one per queued message. A permanent
//! rejection (5xx) of one message only delays that message. [`Alerter::flush`] at shutdown
//! makes one last pass over everything, whatever its schedule, bounded by a timeout.
//!
//! Delivery is at least once: a crash (or a flush timeout) between the server's acceptance and
//! the removal of the file sends that message again later. The copy carries the same
//! `Message-ID`, so mail systems and readers can recognise the duplicate. The queue belongs to
//! one process: the agent's control-address guard and the controller's state-folder lock keep
//! a second one off the same state directory.

#![forbid(unsafe_code)]

mod alerter;
pub mod dedup;
mod deliver;
pub mod queue;
pub mod render;
pub mod smtp;

pub use alerter::Alerter;
pub use render::Origin;

/// What happened: the agent's kinds first, then the controller's (`Rollout*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A recording failed for good (after its last attempt).
    FileFailed,
    /// A recording was converted, but not as it came: its cut last packet was dropped, or only
    /// a tolerant rung of the retry ladder converted it.
    FileWarning,
    /// A volume's free space fell below the warning threshold.
    DiskWarn,
    /// A volume's free space fell below the critical threshold.
    DiskCritical,
    /// The disk guard paused intake.
    PausedByDiskGuard,
    /// The disk guard resumed intake: space came back.
    ResumedByDiskGuard,
    /// A watch or output root went missing or unreachable (a share not mounted, a server
    /// down): its jobs wait.
    RootUnavailable,
    /// A root that was missing or unreachable is back: its jobs start again.
    RootRestored,
    /// The agent started.
    AgentStarted,
    /// The agent stopped.
    AgentStopped,
    /// A new configuration was rejected; the agent kept the previous one.
    ConfigRejected,
    /// Controller: a rollout's gate failed and every agent was rolled back to the stable
    /// revision automatically.
    RolloutRolledBack,
    /// Controller: the operator aborted a rollout; every agent is back on the stable revision.
    RolloutAborted,
    /// Controller: the operator undid a finished rollout; every agent was assigned the earlier
    /// revision.
    RolloutUndone,
}

impl AlertKind {
    /// A stable name for logs and queue files, e.g. `file_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FileFailed => "file_failed",
            AlertKind::FileWarning => "file_warning",
            AlertKind::DiskWarn => "disk_warn",
            AlertKind::DiskCritical => "disk_critical",
            AlertKind::PausedByDiskGuard => "paused_by_disk_guard",
            AlertKind::ResumedByDiskGuard => "resumed_by_disk_guard",
            AlertKind::RootUnavailable => "root_unavailable",
            AlertKind::RootRestored => "root_restored",
            AlertKind::AgentStarted => "agent_started",
            AlertKind::AgentStopped => "agent_stopped",
            AlertKind::ConfigRejected => "config_rejected",
            AlertKind::RolloutRolledBack => "rollout_rolled_back",
            AlertKind::RolloutAborted => "rollout_aborted",
            AlertKind::RolloutUndone => "rollout_undone",
        }
    }

    /// What an operator reads, e.g. "file failed".
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::FileFailed => "file failed",
            AlertKind::FileWarning => "file converted with a warning",
            AlertKind::DiskWarn => "disk space low (warning)",
            AlertKind::DiskCritical => "disk space critical",
            AlertKind::PausedByDiskGuard => "intake paused by the disk guard",
            AlertKind::ResumedByDiskGuard => "intake resumed by the disk guard",
            AlertKind::RootUnavailable => "watch or output root missing or unreachable",
            AlertKind::RootRestored => "watch or output root back",
            AlertKind::AgentStarted => "agent started",
            AlertKind::AgentStopped => "agent stopped",
            AlertKind::ConfigRejected => "configuration rejected",
            AlertKind::RolloutRolledBack => "rollout rolled back (gate failed)",
            AlertKind::RolloutAborted => "rollout aborted by the operator",
            AlertKind::RolloutUndone => "rollout undone by the operator",
        }
    }

    /// How loud the log line is.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::FileFailed
            | AlertKind::DiskCritical
            | AlertKind::RootUnavailable
            | AlertKind::ConfigRejected
            | AlertKind::RolloutRolledBack => Severity::Error,
            AlertKind::DiskWarn
            | AlertKind::FileWarning
            | AlertKind::PausedByDiskGuard
            | AlertKind::RolloutAborted
            | AlertKind::RolloutUndone => Severity::Warning,
            AlertKind::ResumedByDiskGuard
            | AlertKind::RootRestored
            | AlertKind::AgentStarted
            | AlertKind::AgentStopped => Severity::Info,
        }
    }
}

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Error,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// One line, e.g. "news.ts failed in transcode".
    pub subject: String,
    /// Details in order, e.g. `("file", ..)`, `("stage", ..)`, `("error", ..)`.
    pub facts: Vec<(String, String)>,
    /// What the program did about it, e.g. "moved the source to quarantine".
    pub action: String,
    /// Alerts with the same key are mailed at most once per `dedup_window`.
    pub dedup_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AlertKind; 14] = [
        AlertKind::FileFailed,
        AlertKind::FileWarning,
        AlertKind::DiskWarn,
        AlertKind::DiskCritical,
        AlertKind::PausedByDiskGuard,
        AlertKind::ResumedByDiskGuard,
        AlertKind::RootUnavailable,
        AlertKind::RootRestored,
        AlertKind::AgentStarted,
        AlertKind::AgentStopped,
        AlertKind::ConfigRejected,
        AlertKind::RolloutRolledBack,
        AlertKind::RolloutAborted,
        AlertKind::RolloutUndone,
    ];

    #[test]
    fn names_are_unique_and_rollout_kinds_are_loud_enough() {
        let mut names: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(AlertKind::RolloutRolledBack.severity(), Severity::Error);
        assert_eq!(AlertKind::RolloutAborted.severity(), Severity::Warning);
        assert_eq!(AlertKind::RolloutUndone.severity(), Severity::Warning);
        assert_eq!(
            AlertKind::RolloutUndone.label(),
            "rollout undone by the operator"
        );
    }
}
