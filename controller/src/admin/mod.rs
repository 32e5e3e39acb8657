//! `FleetAdmin`: the API fleetctl calls. Reads are answered from the registry; writes (apply,
//! assign) go through one async lock, so two concurrent applies cannot interleave their
//! generation numbers and assignments, and are flushed to disk before they answer.
//!
//! Every call is a span (`admin.apply`, `admin.rollout`, ...) that continues the caller's
//! trace from the W3C context in the gRPC metadata (fleetctl sends it); what the call sets in
//! motion (a rollout, the assignments pushed to agents) continues it further. Work moved to
//! the blocking pool takes the span along ([`in_span`]).

mod apply;
mod control;
mod rollout;
mod watch;

use std::sync::Arc;

use h264_proto::v1::fleet_admin_server::FleetAdmin;
use h264_proto::v1::{
    AgentControlReply, AgentControlRequest, AgentStatus, ApplyReply, ApplyRequest, AssignReply,
    AssignRequest, DescribeAgentRequest, ListAgentsReply, ListAgentsRequest, ListRevisionsReply,
    ListRevisionsRequest, RolloutRequest, RolloutStatus, WatchFleetRequest,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

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
}

impl Admin {
    /// The admin API over the registry and the store.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<Store>,
        persister: Persister,
        rollouts: Arc<Rollouts>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            registry,
            store,
            persister,
            rollouts,
            writes: Arc::new(tokio::sync::Mutex::new(())),
            shutdown,
        }
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
        let span = call_span("admin.apply", &request);
        traced(span, apply::apply(self, request.into_inner()))
            .await
            .map(Response::new)
    }

    async fn list_revisions(
        &self,
        request: Request<ListRevisionsRequest>,
    ) -> Result<Response<ListRevisionsReply>, Status> {
        let _span = call_span("admin.list_revisions", &request).entered();
        Ok(Response::new(ListRevisionsReply {
            revisions: self.registry.revisions(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsReply>, Status> {
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
        let span = call_span("admin.assign", &request);
        traced(span, self.assign_traced(request.into_inner())).await
    }

    type WatchFleetStream = watch::FleetStream;

    async fn watch_fleet(
        &self,
        request: Request<WatchFleetRequest>,
    ) -> Result<Response<Self::WatchFleetStream>, Status> {
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
        let span = call_span("admin.agent_control", &request);
        traced(span, control::control(&self.registry, request.into_inner()))
            .await
            .map(Response::new)
    }

    async fn rollout(
        &self,
        request: Request<RolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        let span = call_span("admin.rollout", &request);
        traced(span, rollout::rollout(self, request.into_inner()))
            .await
            .map(Response::new)
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
