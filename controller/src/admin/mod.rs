//! `FleetAdmin`: the API fleetctl calls. Reads are answered from the registry; writes (apply,
//! assign) go through one async lock, so two concurrent applies cannot interleave their
//! generation numbers and assignments, and are flushed to disk before they answer.
//!
//! Every call is authenticated and authorized first ([`crate::auth`]): viewer for reads,
//! operator for steering (rollout pause/resume/promote/abort/undo/retry, agent pause/resume),
//! admin for the rest. Every mutating call, allowed or refused by its checks, is written to
//! the audit trail with the caller, its role, the arguments and the result ([`Admin::audit`]).
//!
//! Every call is a span (`admin.apply`, `admin.rollout`, ...) that continues the caller's
//! trace from the W3C context in the gRPC metadata (fleetctl sends it); what the call sets in
//! motion (a rollout, the assignments pushed to agents) continues it further. Work moved to
//! the blocking pool takes the span along ([`in_span`]).

mod apply;
mod control;
mod history;
mod rollout;
mod shadow;
mod trust;
mod watch;

use std::sync::Arc;

use h264_proto::v1::fleet_admin_server::FleetAdmin;
use h264_proto::v1::{
    agent_control_request, rollout_request, AgentControlReply, AgentControlRequest, AgentStatus,
    ApplyReply, ApplyRequest, AssignReply, AssignRequest, CreateTokenReply, CreateTokenRequest,
    DeleteAgentReply, DeleteAgentRequest, DescribeAgentRequest, LabelRequest, ListAgentsReply,
    ListAgentsRequest, ListAuditReply, ListAuditRequest, ListJobsReply, ListJobsRequest,
    ListRevisionsReply, ListRevisionsRequest, ReportReply, ReportRequest, RolloutRequest,
    RolloutStatus, WatchFleetRequest, WhoAmIReply, WhoAmIRequest,
};
use h264_trust::Role;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Auth, Caller};
use crate::persist::{FlushError, Persister};
use crate::registry::{AssignError, Registry, Target};
use crate::rollout::Rollouts;
use crate::selector::Selector;
use crate::store::{Store, StoreError};

/// The admin service.
#[derive(Debug, Clone)]
pub struct Admin {
    registry: Arc<Registry>,
    store: Arc<Store>,
    persister: Persister,
    rollouts: Arc<Rollouts>,
    writes: Arc<tokio::sync::Mutex<()>>,
    shutdown: CancellationToken,
    auth: Arc<Auth>,
    /// Revisions kept at most (see `revisions_kept`).
    revisions_kept: usize,
}

impl Admin {
    /// The admin API over the registry and the store.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<Store>,
        persister: Persister,
        rollouts: Arc<Rollouts>,
        shutdown: CancellationToken,
        auth: Arc<Auth>,
        revisions_kept: usize,
    ) -> Self {
        Self {
            registry,
            store,
            persister,
            rollouts,
            writes: Arc::new(tokio::sync::Mutex::new(())),
            shutdown,
            auth,
            revisions_kept,
        }
    }

    /// Writes one entry of the audit trail for `caller` (durably, before the call answers);
    /// a failure to write it is logged and fails the call.
    pub(crate) async fn audit(
        &self,
        caller: &Caller,
        verb: &str,
        arguments: serde_json::Value,
        revision: Option<(u64, String)>,
        result: &Result<(), Status>,
    ) -> Result<(), Status> {
        let (generation, sha256) = revision.unwrap_or_default();
        let record = crate::store::AuditRecord {
            id: 0,
            at_ms: crate::model::now_ms(),
            who: caller.who.clone(),
            role: caller.role.to_string(),
            verb: verb.to_owned(),
            arguments: arguments.to_string(),
            generation,
            sha256,
            result: match result {
                Ok(()) => "ok".to_owned(),
                Err(s) => format!("{:?}: {}", s.code(), s.message()),
            },
        };
        tracing::info!(who = %record.who, role = %record.role, verb, arguments = %record.arguments, result = %record.result, "audit");
        self.blocking(move |s| s.audit(&record)).await.map(|_| ())
    }

    /// Authorizes a mutating call; a refusal is written to the audit trail too (as
    /// `anonymous` when no identity was given).
    async fn authorize_mut<T>(
        &self,
        request: &Request<T>,
        verb: &str,
        need: Role,
    ) -> Result<Caller, Status> {
        match self.auth.authorize(request, verb, need) {
            Ok(c) => Ok(c),
            Err(status) => {
                let caller = self.auth.authenticate(request).unwrap_or(Caller {
                    who: "anonymous".into(),
                    role: Role::Viewer,
                    method: "none",
                });
                let peer = crate::listen::peer_of(request)
                    .remote
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let role = if caller.method == "none" {
                    "-"
                } else {
                    caller.role.as_str()
                };
                let record = crate::store::AuditRecord {
                    id: 0,
                    at_ms: crate::model::now_ms(),
                    who: caller.who.clone(),
                    role: role.to_owned(),
                    verb: verb.replace(' ', "_"),
                    arguments: serde_json::json!({ "peer": peer }).to_string(),
                    generation: 0,
                    sha256: String::new(),
                    result: format!("{:?}: {}", status.code(), status.message()),
                };
                tracing::warn!(who = %record.who, verb, peer = %peer, "refused: {}", status.message());
                let _ = self.blocking(move |s| s.audit(&record)).await;
                Err(status)
            }
        }
    }

    /// Authorizes, runs `f` and audits it, whatever its outcome.
    async fn audited<T, F>(
        &self,
        caller: &Caller,
        verb: &str,
        arguments: serde_json::Value,
        f: F,
        revision_of: impl Fn(&T) -> Option<(u64, String)>,
    ) -> Result<T, Status>
    where
        F: std::future::Future<Output = Result<T, Status>>,
    {
        let out = f.await;
        let revision = out.as_ref().ok().and_then(&revision_of);
        let result = out.as_ref().map(|_| ()).map_err(Clone::clone);
        self.audit(caller, verb, arguments, revision, &result)
            .await?;
        out
    }

    /// Runs a blocking store call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(internal)
    }

    /// Runs a blocking call that needs the store on the blocking pool.
    async fn blocking_result<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))
    }

    async fn flush(&self) -> Result<(), Status> {
        self.persister.flush().await.map_err(|e| match e {
            FlushError::Stopped => Status::unavailable(e.to_string()),
            FlushError::Store(_) => Status::internal(e.to_string()),
        })
    }
}

/// The span of one admin call, a child of the caller's span when the request carries its
/// trace context.
fn call_span<T>(name: &'static str, request: &Request<T>) -> tracing::Span {
    let span = tracing::info_span!(
        "admin",
        otel.name = name,
        otel.kind = "server",
        rpc.method = name,
        otel.status_description = tracing::field::Empty,
    );
    h264_telemetry::propagate::set_parent_from_metadata(&span, request.metadata());
    span
}

/// Runs `fut` in `span` and marks the span failed with the status it answers, if any.
async fn traced<T>(
    span: tracing::Span,
    fut: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let result = fut.instrument(span.clone()).await;
    if let Err(status) = &result {
        span.record(
            "otel.status_description",
            format!("{:?}: {}", status.code(), status.message()).as_str(),
        );
    }
    result
}

/// `f` on the blocking pool, inside the current span (so that the spans and assignments it
/// makes continue the call's trace).
pub(crate) async fn in_span<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}

fn internal(e: StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    Status::internal(e.to_string())
}

fn selector(text: &str) -> Result<Selector, Status> {
    Selector::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl FleetAdmin for Admin {
    async fn apply(&self, request: Request<ApplyRequest>) -> Result<Response<ApplyReply>, Status> {
        let caller = self.authorize_mut(&request, "apply", Role::Admin).await?;
        let span = call_span("admin.apply", &request);
        let req = request.into_inner();
        if req.dry_run {
            return traced(span, apply::apply(self, req))
                .await
                .map(Response::new);
        }
        let args = serde_json::json!({
            "origin": req.origin,
            "signed_by": req.signer_key,
            "expected_generation": req.expected_generation,
        });
        self.audited(
            &caller,
            "apply",
            args,
            traced(span, apply::apply(self, req)),
            |r| Some((r.generation, r.sha256.clone())),
        )
        .await
        .map(Response::new)
    }

    async fn list_revisions(
        &self,
        request: Request<ListRevisionsRequest>,
    ) -> Result<Response<ListRevisionsReply>, Status> {
        self.auth
            .authorize(&request, "get revisions", Role::Viewer)?;
        let _span = call_span("admin.list_revisions", &request).entered();
        Ok(Response::new(ListRevisionsReply {
            revisions: self.registry.revisions(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsReply>, Status> {
        self.auth.authorize(&request, "get agents", Role::Viewer)?;
        let _span = call_span("admin.list_agents", &request).entered();
        let selector = selector(&request.into_inner().selector)?;
        Ok(Response::new(ListAgentsReply {
            agents: self.registry.agents(&selector, false),
        }))
    }

    async fn describe_agent(
        &self,
        request: Request<DescribeAgentRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        self.auth
            .authorize(&request, "describe agent", Role::Viewer)?;
        let _span = call_span("admin.describe_agent", &request).entered();
        let id = request.into_inner().agent_id;
        self.registry
            .describe(&id)
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!("no agent `{id}` (see `fleetctl get agents`)"))
            })
    }

    async fn assign(
        &self,
        request: Request<AssignRequest>,
    ) -> Result<Response<AssignReply>, Status> {
        let caller = self.authorize_mut(&request, "assign", Role::Admin).await?;
        let span = call_span("admin.assign", &request);
        let r = request.into_inner();
        let args = serde_json::json!({
            "generation": r.generation,
            "agent": r.agent_id,
            "selector": r.selector,
            "rollback": r.rollback,
        });
        let revision = self
            .registry
            .revision(r.generation)
            .map(|rev| (rev.generation, rev.sha256.clone()));
        self.audited(
            &caller,
            "assign",
            args,
            traced(span, self.assign_traced(r)),
            |_| revision.clone(),
        )
        .await
    }

    type WatchFleetStream = watch::FleetStream;

    async fn watch_fleet(
        &self,
        request: Request<WatchFleetRequest>,
    ) -> Result<Response<Self::WatchFleetStream>, Status> {
        self.auth
            .authorize(&request, "status --watch", Role::Viewer)?;
        let _span = call_span("admin.watch_fleet", &request).entered();
        Ok(Response::new(watch::start(
            self.registry.clone(),
            self.shutdown.clone(),
        )))
    }

    async fn agent_control(
        &self,
        request: Request<AgentControlRequest>,
    ) -> Result<Response<AgentControlReply>, Status> {
        use agent_control_request::Body;
        let (verb, need) = match &request.get_ref().body {
            Some(Body::Pause(_)) => ("agent pause", Role::Operator),
            Some(Body::Resume(_)) => ("agent resume", Role::Operator),
            Some(Body::Stats(_)) => ("agent stats", Role::Viewer),
            Some(Body::Errors(_)) | None => ("agent errors", Role::Viewer),
        };
        let caller = if need == Role::Viewer {
            self.auth.authorize(&request, verb, need)?
        } else {
            self.authorize_mut(&request, verb, need).await?
        };
        let span = call_span("admin.agent_control", &request);
        let req = request.into_inner();
        let fut = traced(span, control::control(&self.registry, req.clone()));
        if need == Role::Viewer {
            return fut.await.map(Response::new);
        }
        let args =
            serde_json::json!({ "agent": req.agent_id, "request": format!("{:?}", req.body) });
        self.audited(&caller, verb, args, fut, |_| None)
            .await
            .map(Response::new)
    }

    async fn rollout(
        &self,
        request: Request<RolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        use rollout_request::Verb;
        let (verb, need) = match &request.get_ref().verb {
            Some(Verb::Start(_)) => ("rollout.start", Role::Admin),
            Some(Verb::Status(_)) | None => ("rollout.status", Role::Viewer),
            Some(Verb::Pause(_)) => ("rollout.pause", Role::Operator),
            Some(Verb::Resume(_)) => ("rollout.resume", Role::Operator),
            Some(Verb::Promote(_)) => ("rollout.promote", Role::Operator),
            Some(Verb::Abort(_)) => ("rollout.abort", Role::Operator),
            Some(Verb::Undo(_)) => ("rollout.undo", Role::Operator),
            Some(Verb::Retry(_)) => ("rollout.retry", Role::Operator),
        };
        let caller = if need == Role::Viewer {
            self.auth.authorize(&request, verb, need)?
        } else {
            self.authorize_mut(&request, verb, need).await?
        };
        let span = call_span("admin.rollout", &request);
        let req = request.into_inner();
        if need == Role::Viewer {
            return traced(span, rollout::rollout(self, req))
                .await
                .map(Response::new);
        }
        let args = serde_json::json!({ "request": format!("{:?}", req.verb) });
        let registry = self.registry.clone();
        self.audited(
            &caller,
            verb,
            args,
            traced(span, rollout::rollout(self, req)),
            move |s: &RolloutStatus| {
                registry
                    .revision(s.generation)
                    .map(|r| (r.generation, r.sha256.clone()))
            },
        )
        .await
        .map(Response::new)
    }

    async fn label(&self, request: Request<LabelRequest>) -> Result<Response<AgentStatus>, Status> {
        let caller = self
            .authorize_mut(&request, "label agent", Role::Admin)
            .await?;
        let req = request.into_inner();
        let args = serde_json::json!({ "agent": req.agent_id, "changes": req.changes });
        self.audited(&caller, "label", args, trust::label(self, req), |_| None)
            .await
            .map(Response::new)
    }

    async fn delete_agent(
        &self,
        request: Request<DeleteAgentRequest>,
    ) -> Result<Response<DeleteAgentReply>, Status> {
        let caller = self
            .authorize_mut(&request, "delete agent", Role::Admin)
            .await?;
        let req = request.into_inner();
        let args = serde_json::json!({ "agent": req.agent_id });
        self.audited(
            &caller,
            "delete_agent",
            args,
            trust::delete_agent(self, req),
            |_| None,
        )
        .await
        .map(Response::new)
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenReply>, Status> {
        let caller = self
            .authorize_mut(&request, "token create", Role::Admin)
            .await?;
        let req = request.into_inner();
        let args = serde_json::json!({ "name": req.name, "role": req.role });
        self.audited(
            &caller,
            "token.create",
            args,
            trust::create_token(self, req),
            |_| None,
        )
        .await
        .map(Response::new)
    }

    async fn list_audit(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditReply>, Status> {
        self.auth.authorize(&request, "audit", Role::Viewer)?;
        trust::list_audit(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsReply>, Status> {
        self.auth.authorize(&request, "jobs", Role::Viewer)?;
        let span = call_span("admin.list_jobs", &request);
        traced(span, history::list_jobs(self, request.into_inner()))
            .await
            .map(Response::new)
    }

    async fn report(
        &self,
        request: Request<ReportRequest>,
    ) -> Result<Response<ReportReply>, Status> {
        self.auth.authorize(&request, "report", Role::Viewer)?;
        let span = call_span("admin.report", &request);
        traced(span, history::report(self, request.into_inner()))
            .await
            .map(Response::new)
    }

    async fn shadow_report(
        &self,
        request: Request<h264_proto::v1::ShadowReportRequest>,
    ) -> Result<Response<h264_proto::v1::ShadowReportReply>, Status> {
        self.auth
            .authorize(&request, "rollout shadow-report", Role::Viewer)?;
        shadow::report(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        let caller = self.auth.authenticate(&request)?;
        Ok(Response::new(WhoAmIReply {
            identity: caller.who,
            role: caller.role.to_string(),
            method: caller.method.to_owned(),
        }))
    }
}

impl Admin {
    async fn assign_traced(&self, r: AssignRequest) -> Result<Response<AssignReply>, Status> {
        let target = match (r.agent_id.is_empty(), r.selector.is_empty()) {
            (true, true) => Target::All,
            (false, true) => Target::Agent(r.agent_id),
            (true, false) => Target::Selector(selector(&r.selector)?),
            (false, false) => {
                return Err(Status::invalid_argument(
                    "give an agent id or a selector, not both",
                ))
            }
        };
        let _write = self.writes.lock().await;
        let out = self
            .registry
            .assign(r.generation, &target, r.rollback)
            .map_err(|e| match e {
                AssignError::NoRevision(_) | AssignError::UnknownAgent(_) => {
                    Status::not_found(e.to_string())
                }
            })?;
        let fleet_target = (target == Target::All).then_some(crate::model::Desired {
            generation: r.generation,
            rollback: r.rollback,
        });
        let (generation, rollback, n, describe) = (
            r.generation,
            r.rollback,
            out.agents.len(),
            target.describe(),
        );
        self.blocking(move |s| {
            s.record_assignment(generation, &describe, rollback, n, fleet_target)
        })
        .await?;
        self.flush().await?;
        tracing::info!(generation, target = %target.describe(), rollback, agents = n, "assigned");
        Ok(Response::new(AssignReply {
            agents: out.agents,
            warnings: out.warnings,
        }))
    }
}
