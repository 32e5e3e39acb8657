//! `FleetAdmin`: the API fleetctl calls. Reads are answered from the registry; writes (apply,
//! assign) go through one async lock, so two concurrent applies cannot interleave their
//! generation numbers and assignments, and are flushed to disk before they answer.

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
        apply::apply(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_revisions(
        &self,
        _: Request<ListRevisionsRequest>,
    ) -> Result<Response<ListRevisionsReply>, Status> {
        Ok(Response::new(ListRevisionsReply {
            revisions: self.registry.revisions(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsReply>, Status> {
        let selector = selector(&request.into_inner().selector)?;
        Ok(Response::new(ListAgentsReply {
            agents: self.registry.agents(&selector, false),
        }))
    }

    async fn describe_agent(
        &self,
        request: Request<DescribeAgentRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
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
        let r = request.into_inner();
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

    type WatchFleetStream = watch::FleetStream;

    async fn watch_fleet(
        &self,
        _: Request<WatchFleetRequest>,
    ) -> Result<Response<Self::WatchFleetStream>, Status> {
        Ok(Response::new(watch::start(
            self.registry.clone(),
            self.shutdown.clone(),
        )))
    }

    async fn agent_control(
        &self,
        request: Request<AgentControlRequest>,
    ) -> Result<Response<AgentControlReply>, Status> {
        control::control(&self.registry, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn rollout(
        &self,
        request: Request<RolloutRequest>,
    ) -> Result<Response<RolloutStatus>, Status> {
        rollout::rollout(self, request.into_inner())
            .await
            .map(Response::new)
    }
}
