//! The session's context: the handles it works with.

use std::sync::Arc;

use h264_config::AgentConfig;
use tokio_util::sync::CancellationToken;

use crate::control::View;
use crate::pipeline::Events;
use crate::settings::SettingsTx;

/// What the session works with: the local file (the base every revision is merged over, and the
/// `[controller]` section), the settings channel it swaps revisions into, the agent's read model
/// (stats, pause and resume, its id and alerts), the job events it forwards, and the shutdown.
#[derive(Debug, Clone)]
pub struct SessionCtx {
    /// The local configuration file as loaded: the merge base of every revision; only the
    /// session reads it (everything else reads the settings in force).
    pub local: Arc<AgentConfig>,
    /// The settings in force, which an accepted revision replaces.
    pub settings: SettingsTx,
    /// The agent's read model.
    pub view: View,
    /// The job events to forward.
    pub events: Events,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Job history records waiting for the controller; none when it cannot be opened.
    pub history: Option<Arc<super::history::Outbox>>,
    /// Shadow work, which shadow assignments start and stop.
    pub shadow: Arc<crate::shadow::Shadow>,
}
