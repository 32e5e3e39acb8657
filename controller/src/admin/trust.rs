//! The trust verbs of the admin API: operator labels, forgetting agents, tokens, the audit
//! trail.

use h264_proto::v1::{
    AgentStatus, AuditEntry, CreateTokenReply, CreateTokenRequest, DeleteAgentReply,
    DeleteAgentRequest, LabelRequest, ListAuditReply, ListAuditRequest,
};
use h264_trust::Role;
use tonic::Status;

use super::Admin;
use crate::auth::tokens;
use crate::registry::LabelError;
use crate::store::TokenRecord;

/// Audit entries answered at most per call.
const AUDIT_LIMIT: u32 = 10_000;

pub(super) async fn label(admin: &Admin, req: LabelRequest) -> Result<AgentStatus, Status> {
    if req.changes.is_empty() {
        return Err(Status::invalid_argument(
            "give at least one change: key=value sets a label, key- removes it",
        ));
    }
    let _write = admin.writes.lock().await;
    let (labels, status) = admin
        .registry
        .set_labels(&req.agent_id, &req.changes)
        .map_err(|e| match e {
            LabelError::UnknownAgent(_) => Status::not_found(e.to_string()),
            LabelError::Invalid(_) => Status::invalid_argument(e.to_string()),
        })?;
    let id = req.agent_id.clone();
    admin
        .blocking(move |s| s.set_operator_labels(&id, &labels))
        .await?;
    admin.flush().await?;
    Ok(status)
}

pub(super) async fn delete_agent(
    admin: &Admin,
    req: DeleteAgentRequest,
) -> Result<DeleteAgentReply, Status> {
    let _write = admin.writes.lock().await;
    let id = req.agent_id;
    let was_connected = admin
        .registry
        .delete_agent(&id)
        .ok_or_else(|| Status::not_found(format!("no agent `{id}` (see `fleetctl get agents`)")))?;
    // What the persister had of it is written first, then removed for good.
    admin.flush().await?;
    admin.blocking(move |s| s.delete_agent(&id)).await?;
    Ok(DeleteAgentReply { was_connected })
}

pub(super) async fn create_token(
    admin: &Admin,
    req: CreateTokenRequest,
) -> Result<CreateTokenReply, Status> {
    let role = Role::parse(&req.role).map_err(Status::invalid_argument)?;
    tokens::check_name(&req.name).map_err(Status::invalid_argument)?;
    let name = req.name.clone();
    let token = admin
        .blocking_result(move |s| tokens::create(s, &name, role))
        .await?
        .map_err(Status::already_exists)?;
    admin.auth.remember(
        tokens::hash(&token),
        TokenRecord {
            name: req.name.clone(),
            role: role.to_string(),
        },
    );
    Ok(CreateTokenReply {
        name: req.name,
        role: role.to_string(),
        token,
    })
}

pub(super) async fn list_audit(
    admin: &Admin,
    req: ListAuditRequest,
) -> Result<ListAuditReply, Status> {
    let limit = match req.limit {
        0 => 1000,
        n => n.min(AUDIT_LIMIT),
    };
    let since = req.since_ms;
    let entries = admin
        .blocking(move |s| s.audit_since(since, limit))
        .await?
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at_ms: r.at_ms,
            who: r.who,
            role: r.role,
            verb: r.verb,
            arguments: r.arguments,
            generation: r.generation,
            sha256: r.sha256,
            result: r.result,
        })
        .collect();
    Ok(ListAuditReply { entries })
}
