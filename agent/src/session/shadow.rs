//! Shadow assignments from the controller: the candidate of a rollout's shadow step is checked
//! as an assignment is (hash, signature, parse, validation, capabilities), laid over the local
//! file and handed to the shadow runner ([`crate::shadow`]), never applied. A candidate that
//! fails a check is refused with a NACK of its generation, as the canary step would see it.

use h264_proto::v1::{AgentMessage, ShadowAssignment};

use super::assign::{self, Nack, Revisions, Stage};
use super::caps::Capabilities;
use super::ctx::SessionCtx;
use super::messages;

/// Starts or stops shadow work as `s` says (on a blocking thread: hashing and validation);
/// a NACK to send when the candidate is refused.
pub(super) async fn shadow(
    agent: &SessionCtx,
    revisions: &std::sync::Arc<std::sync::Mutex<Revisions>>,
    caps: &Capabilities,
    s: ShadowAssignment,
) -> Option<AgentMessage> {
    let Some(candidate) = s.candidate else {
        agent.shadow.set_candidate(None);
        return None;
    };
    let checked = {
        let (agent, revisions, caps, candidate) = (
            agent.clone(),
            revisions.clone(),
            caps.clone(),
            candidate.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let revisions = revisions.lock().unwrap_or_else(|p| p.into_inner());
            assign::check(&agent, &revisions, &caps, &candidate)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Nack {
                stage: Stage::Apply,
                field: String::new(),
                message: format!("the agent failed while checking it: {e}"),
            })
        })
    };
    match checked {
        Ok(config) => {
            let workers = s.workers.clamp(1, 8);
            agent
                .shadow
                .set_candidate(Some((s.rollout, candidate.generation, config, workers)));
            None
        }
        Err(mut nack) => {
            tracing::warn!(
                generation = candidate.generation, stage = nack.stage.as_str(), field = %nack.field,
                "shadow candidate refused: {}", nack.message
            );
            agent.shadow.set_candidate(None);
            nack.message = format!("shadow candidate: {}", nack.message);
            Some(messages::nack(&candidate, &nack))
        }
    }
}
