//! Operator notifications raised by the pipeline. Each is logged where it happens; the
//! [`Notifier`] is the one handle that turns them into [`crate::alerts`], so the pipeline does
//! not depend on how alerts are delivered. It is a cheap clone; without an alerter (alerts could
//! not start) every notification goes nowhere.

use std::path::Path;
use std::sync::Arc;

use crate::alerts::{Alert, AlertKind, Alerter};

/// Sends operator alerts.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    alerter: Option<Arc<Alerter>>,
}

/// A fact of an alert, `name: value`.
pub fn fact(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

impl Notifier {
    /// A notifier sending through `alerter` (none: alerts are only logged where they happen).
    pub fn new(alerter: Option<Arc<Alerter>>) -> Self {
        Self { alerter }
    }

    /// Sends one alert.
    pub fn send(&self, alert: Alert) {
        if let Some(alerter) = &self.alerter {
            alerter.send(alert);
        }
    }

    /// Delivers what is queued, for at most `within` (at shutdown).
    pub async fn flush(&self, within: std::time::Duration) {
        if let Some(alerter) = &self.alerter {
            alerter.flush(within).await;
        }
    }

    /// Messages waiting in the alert queue.
    pub fn queue_depth(&self) -> usize {
        self.alerter.as_ref().map_or(0, |a| a.queue_depth())
    }

    /// A file failed for good.
    pub fn file_failed(&self, source: &Path, stage: &str, message: &str, action: &str) {
        self.send(Alert {
            kind: AlertKind::FileFailed,
            subject: format!("conversion failed: {}", source.display()),
            facts: vec![
                fact("file", source.display()),
                fact("stage", stage),
                fact("error", message),
            ],
            action: action.into(),
            dedup_key: format!("file_failed:{}", source.display()),
        });
    }

    /// A file was converted, with a warning about how (a cut tail dropped, a tolerant rung of the
    /// retry ladder needed).
    pub fn file_warning(&self, source: &Path, output: &Path, warnings: &[String]) {
        let mut facts = vec![
            fact("file", source.display()),
            fact("output", output.display()),
        ];
        facts.extend(warnings.iter().map(|w| fact("warning", w)));
        self.send(Alert {
            kind: AlertKind::FileWarning,
            subject: format!("converted with a warning: {}", source.display()),
            facts,
            action: "converted and published; check the output if the warning matters".into(),
            dedup_key: format!("file_warning:{}", source.display()),
        });
    }

    /// The agent started or stopped.
    pub fn lifecycle(&self, id: &str, roots: &[String], workers: usize, started: bool) {
        let kind = if started {
            AlertKind::AgentStarted
        } else {
            AlertKind::AgentStopped
        };
        self.send(Alert {
            kind,
            subject: format!(
                "h264-agent {} {}",
                id,
                if started { "started" } else { "stopped" }
            ),
            facts: vec![
                fact("version", env!("CARGO_PKG_VERSION")),
                fact("watching", roots.join(", ")),
                fact("workers", workers),
            ],
            action: if started {
                "watching and converting"
            } else {
                "no longer converting"
            }
            .into(),
            dedup_key: format!("{}:{}", kind.as_str(), std::process::id()),
        });
    }

    /// A configuration was rejected (for example an invalid TOML, with the agent running on the
    /// legacy INI beside it).
    pub fn config_rejected(&self, what: &str, action: &str) {
        self.send(Alert {
            kind: AlertKind::ConfigRejected,
            subject: "configuration rejected".into(),
            facts: vec![fact("problem", what)],
            action: action.into(),
            dedup_key: format!("config_rejected:{what}"),
        });
    }
}
