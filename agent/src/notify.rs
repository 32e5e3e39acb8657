//! Operator notifications raised by the pipeline. Each is logged where it happens; this module is
//! the one place that turns them into [`crate::alerts`], so the pipeline does not depend on how
//! alerts are delivered.

use std::path::Path;

use crate::alerts::{Alert, AlertKind};
use crate::disk::Level;
use crate::state::Agent;

fn send(agent: &Agent, alert: Alert) {
    if let Some(alerter) = &agent.alerts {
        alerter.send(alert);
    }
}

fn fact(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// The disk guard changed a volume's level.
pub fn disk_level(agent: &Agent, path: &Path, from: Level, to: Level, what: &str) {
    let kind = match to {
        Level::Critical => AlertKind::DiskCritical,
        Level::Warn if from < Level::Warn => AlertKind::DiskWarn,
        _ => return,
    };
    let action = if to == Level::Critical {
        "no new jobs start until free space is back above disk.critical plus disk.hysteresis; running jobs go on"
    } else {
        "nothing yet: intake stops if free space falls below disk.critical"
    };
    send(
        agent,
        Alert {
            kind,
            subject: format!("disk {}: {}", to.as_str(), path.display()),
            facts: vec![fact("volume", path.display()), fact("free space", what)],
            action: action.into(),
            dedup_key: format!("{}:{}", kind.as_str(), path.display()),
        },
    );
}

/// The disk guard set or released its hold on intake.
pub fn disk_hold(agent: &Agent, held: bool) {
    let (kind, subject, action) = if held {
        (
            AlertKind::PausedByDiskGuard,
            "intake paused: a volume is below disk.critical",
            "no new jobs start; the agent resumes by itself when space comes back",
        )
    } else {
        (
            AlertKind::ResumedByDiskGuard,
            "intake resumed: free space is back",
            "jobs start again",
        )
    };
    send(
        agent,
        Alert {
            kind,
            subject: subject.into(),
            facts: Vec::new(),
            action: action.into(),
            dedup_key: kind.as_str().into(),
        },
    );
}

/// A file failed for good.
pub fn file_failed(agent: &Agent, source: &Path, stage: &str, message: &str, action: &str) {
    send(
        agent,
        Alert {
            kind: AlertKind::FileFailed,
            subject: format!("conversion failed: {}", source.display()),
            facts: vec![
                fact("file", source.display()),
                fact("stage", stage),
                fact("error", message),
            ],
            action: action.into(),
            dedup_key: format!("file_failed:{}", source.display()),
        },
    );
}

/// A file was converted, with a warning about how (a cut tail dropped, a tolerant rung of the
/// retry ladder needed).
pub fn file_warning(agent: &Agent, source: &Path, output: &Path, warnings: &[String]) {
    let mut facts = vec![
        fact("file", source.display()),
        fact("output", output.display()),
    ];
    facts.extend(warnings.iter().map(|w| fact("warning", w)));
    send(
        agent,
        Alert {
            kind: AlertKind::FileWarning,
            subject: format!("converted with a warning: {}", source.display()),
            facts,
            action: "converted and published; check the output if the warning matters".into(),
            dedup_key: format!("file_warning:{}", source.display()),
        },
    );
}

/// The agent started or stopped.
pub fn lifecycle(agent: &Agent, started: bool) {
    let kind = if started {
        AlertKind::AgentStarted
    } else {
        AlertKind::AgentStopped
    };
    let roots: Vec<String> = agent
        .roots
        .iter()
        .map(|r| r.source.display().to_string())
        .collect();
    send(
        agent,
        Alert {
            kind,
            subject: format!(
                "h264-agent {} {}",
                agent.id,
                if started { "started" } else { "stopped" }
            ),
            facts: vec![
                fact("version", env!("CARGO_PKG_VERSION")),
                fact("watching", roots.join(", ")),
                fact("workers", agent.config.agent.workers),
            ],
            action: if started {
                "watching and converting"
            } else {
                "no longer converting"
            }
            .into(),
            dedup_key: format!("{}:{}", kind.as_str(), std::process::id()),
        },
    );
}

/// A configuration was rejected (for example an invalid TOML, with the agent running on the
/// legacy INI beside it).
pub fn config_rejected(agent: &Agent, what: &str, action: &str) {
    send(
        agent,
        Alert {
            kind: AlertKind::ConfigRejected,
            subject: "configuration rejected".into(),
            facts: vec![fact("problem", what)],
            action: action.into(),
            dedup_key: format!("config_rejected:{what}"),
        },
    );
}

/// Messages waiting in the alert queue.
pub fn queue_depth(agent: &Agent) -> usize {
    agent.alerts.as_ref().map_or(0, |a| a.queue_depth())
}
