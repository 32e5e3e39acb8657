//! Operator alerts: every alert is logged, and, when `[alerts.email]` is set, e-mailed (HTML
//! and plain text) through a write-ahead dead-letter queue on disk.
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
//! one agent: the control address guard keeps a second agent off the same state directory.

mod alerter;
pub mod dedup;
mod deliver;
pub mod queue;
pub mod render;
pub mod smtp;

pub use alerter::Alerter;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A recording failed for good (after its last attempt).
    FileFailed,
    /// A volume's free space fell below the warning threshold.
    DiskWarn,
    /// A volume's free space fell below the critical threshold.
    DiskCritical,
    /// The disk guard paused intake.
    PausedByDiskGuard,
    /// The disk guard resumed intake: space came back.
    ResumedByDiskGuard,
    /// The agent started.
    AgentStarted,
    /// The agent stopped.
    AgentStopped,
    /// A new configuration was rejected; the agent kept the previous one.
    ConfigRejected,
}

impl AlertKind {
    /// A stable name for logs and queue files, e.g. `file_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::FileFailed => "file_failed",
            AlertKind::DiskWarn => "disk_warn",
            AlertKind::DiskCritical => "disk_critical",
            AlertKind::PausedByDiskGuard => "paused_by_disk_guard",
            AlertKind::ResumedByDiskGuard => "resumed_by_disk_guard",
            AlertKind::AgentStarted => "agent_started",
            AlertKind::AgentStopped => "agent_stopped",
            AlertKind::ConfigRejected => "config_rejected",
        }
    }

    /// What an operator reads, e.g. "file failed".
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::FileFailed => "file failed",
            AlertKind::DiskWarn => "disk space low (warning)",
            AlertKind::DiskCritical => "disk space critical",
            AlertKind::PausedByDiskGuard => "intake paused by the disk guard",
            AlertKind::ResumedByDiskGuard => "intake resumed by the disk guard",
            AlertKind::AgentStarted => "agent started",
            AlertKind::AgentStopped => "agent stopped",
            AlertKind::ConfigRejected => "configuration rejected",
        }
    }

    /// How loud the log line is.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::FileFailed | AlertKind::DiskCritical | AlertKind::ConfigRejected => {
                Severity::Error
            }
            AlertKind::DiskWarn | AlertKind::PausedByDiskGuard => Severity::Warning,
            AlertKind::ResumedByDiskGuard | AlertKind::AgentStarted | AlertKind::AgentStopped => {
                Severity::Info
            }
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
    /// What the agent did about it, e.g. "moved the source to quarantine".
    pub action: String,
    /// Alerts with the same key are mailed at most once per `dedup_window`.
    pub dedup_key: String,
}
