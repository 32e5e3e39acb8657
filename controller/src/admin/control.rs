//! `AgentControl` through the controller: pause and resume are forwarded to the agent over its
//! session (an `AgentCommand`) and confirmed by the agent's next stats; stats and errors are
//! answered from what the controller holds.

use std::time::Duration;

use h264_proto::v1::agent_control_reply::Body as Reply;
use h264_proto::v1::agent_control_request::Body as Req;
use h264_proto::v1::{
    agent_command, AgentCommand, AgentControlReply, AgentControlRequest, ErrorsReply, PauseReply,
    ResumeReply,
};
use tonic::Status;

use crate::registry::{CommandError, Registry};

/// How long a pause or resume waits for the agent's stats to show it.
pub const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

pub(super) async fn control(
    registry: &Registry,
    req: AgentControlRequest,
) -> Result<AgentControlReply, Status> {
    let id = req.agent_id;
    let unknown = || Status::not_found(format!("no agent `{id}` (see `fleetctl get agents`)"));
    let body = match req.body {
        Some(Req::Pause(p)) => {
            let paused = forward(registry, &id, agent_command::Body::Pause(p), true).await?;
            Reply::Pause(PauseReply {
                paused: paused.0,
                cancelled: 0,
            })
        }
        Some(Req::Resume(r)) => {
            let (paused, held_by) =
                forward(registry, &id, agent_command::Body::Resume(r), false).await?;
            Reply::Resume(ResumeReply {
                paused,
                still_held_by: held_by,
            })
        }
        Some(Req::Stats(_)) => match registry.stats_of(&id).ok_or_else(unknown)? {
            Some(stats) => Reply::Stats(stats),
            None => {
                return Err(Status::failed_precondition(format!(
                    "agent `{id}` has not sent stats yet"
                )))
            }
        },
        Some(Req::Errors(e)) => Reply::Errors(ErrorsReply {
            errors: registry
                .errors_of(&id, e.limit as usize)
                .ok_or_else(unknown)?,
        }),
        None => return Err(Status::invalid_argument("no command given")),
    };
    Ok(AgentControlReply { body: Some(body) })
}

/// Sends the command, then waits until the agent's stats say `paused == want_paused` (or, for
/// a resume, that only the disk guard still holds it). Returns (paused, paused_by).
async fn forward(
    registry: &Registry,
    id: &str,
    command: agent_command::Body,
    want_paused: bool,
) -> Result<(bool, String), Status> {
    let mut changes = registry.subscribe();
    changes.borrow_and_update();
    registry
        .command(
            id,
            AgentCommand {
                body: Some(command),
            },
        )
        .map_err(|e| match e {
            CommandError::UnknownAgent(_) => Status::not_found(e.to_string()),
            CommandError::NotConnected(_) => Status::failed_precondition(e.to_string()),
            CommandError::Busy(_) => Status::resource_exhausted(e.to_string()),
        })?;
    let confirmed = |registry: &Registry| {
        let stats = registry.stats_of(id).flatten()?;
        let manual = stats.paused_by.split(',').any(|s| s.trim() == "manual");
        let done = if want_paused { stats.paused } else { !manual };
        done.then_some((stats.paused, stats.paused_by))
    };
    let wait = async {
        loop {
            if let Some(state) = confirmed(registry) {
                return Ok(state);
            }
            if changes.changed().await.is_err() {
                return Err(Status::unavailable("the controller is shutting down"));
            }
        }
    };
    tokio::time::timeout(CONFIRM_WITHIN, wait)
        .await
        .unwrap_or_else(|_| {
            let verb = if want_paused { "pause" } else { "resume" };
            Err(Status::deadline_exceeded(format!(
                "the {verb} was sent to agent `{id}`, but its stats have not confirmed it within {CONFIRM_WITHIN:?}"
            )))
        })
}
