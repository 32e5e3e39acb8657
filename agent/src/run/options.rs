//! How the agent runs ([`RunOptions`]), what a run did ([`RunSummary`]), and the agent's id.

use h264_config::AgentConfig;

use crate::stats::Snapshot;

/// How the agent runs.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Convert what is ready now, then return.
    pub once: bool,
    /// Warnings from loading the configuration, reported by `Ping`.
    pub config_warnings: Vec<String>,
    /// Configurations rejected at start-up (an invalid TOML replaced by its INI), alerted.
    pub config_rejected: Vec<String>,
    /// Where the agent's metrics go (see [`crate::metrics`]); none: they are not kept.
    pub meter: Option<opentelemetry::metrics::Meter>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// The counters at the end.
    pub stats: Snapshot,
}

impl RunSummary {
    /// Whether any file failed for good (or, in `--once` mode, was left waiting for a retry).
    pub fn any_failed(&self) -> bool {
        self.stats.failed > 0 || self.stats.conflicts > 0
    }
}

/// The agent's id: `[agent] id`, else the host name.
pub fn agent_id(config: &AgentConfig) -> String {
    config.agent.id.clone().unwrap_or_else(host_name)
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "h264-agent".into())
}
