//! Starting and stopping the controller: open the state, bind the listener, serve the agent
//! sessions, the admin API and the health service on it until shutdown.
//!
//! # Theory of operation
//! [`bind`] does everything that can fail before serving (lock and open the database, load the
//! registry, bind the address), so that the binary can report the bound address. [`Bound::serve`]
//! starts the alerter (its e-mail queue in `state_dir/alerts-queue/`), the persister, the
//! rollout engine and the gRPC server. Shutdown is two-phase: on cancel, session tasks end
//! (their agents see the stream close and reconnect elsewhere or later) and the server drains
//! for at most `GRACE`; then the rollout engine stops, the persister writes what is left and
//! stops, and the alerter makes one last delivery pass over its queue, for at most
//! `ALERT_FLUSH` (what is left stays queued for the next start). Anything that did not stop in
//! time is logged, never waited on forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use h264_alerts::{Alerter, Origin};
use h264_proto::v1::agent_sessions_server::AgentSessionsServer;
use h264_proto::v1::fleet_admin_server::FleetAdminServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::ControllerConfig;
use crate::persist::Persister;
use crate::registry::{Registry, RECENT_EVENTS};
use crate::rollout::{Rollouts, SystemClock};
use crate::session::Sessions;
use crate::store::{Store, StoreError};

/// How long the server may take to drain after shutdown.
const GRACE: Duration = Duration::from_secs(5);
/// How long the last delivery pass of queued alert e-mails may take at shutdown.
const ALERT_FLUSH: Duration = Duration::from_secs(5);
/// HTTP/2 keepalive: a silent agent whose connection died is noticed within about 20 s.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Why the controller cannot start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The state folder or database is unusable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A controller with its state loaded and its address bound, ready to serve.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    registry: Arc<Registry>,
    store: Arc<Store>,
    config: ControllerConfig,
    /// Where the metrics' instruments are made ([`crate::metrics`]); none: no metrics.
    meter: Option<opentelemetry::metrics::Meter>,
}

/// Opens the state and binds the listen address.
pub async fn bind(config: ControllerConfig) -> Result<Bound, ControllerError> {
    let dir = config.state_dir.clone();
    let kept = config.events_kept;
    let (store, registry) = tokio::task::spawn_blocking(move || load(&dir, kept))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ControllerError::Bind {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ControllerError::Bind {
            addr: config.listen,
            source,
        })?;
    Ok(Bound {
        listener,
        addr,
        registry: Arc::new(registry),
        store: Arc::new(store),
        config,
        meter: None,
    })
}

fn load(dir: &std::path::Path, events_kept: u32) -> Result<(Store, Registry), StoreError> {
    let store = Store::open(dir, events_kept)?;
    let revisions = store.revisions()?;
    let mut agents = Vec::new();
    for a in store.agents()? {
        let events = store.recent_events(&a.id, RECENT_EVENTS)?;
        agents.push((a, events));
    }
    let target = store.fleet_target()?;
    tracing::info!(
        db = %store.path().display(),
        revisions = revisions.len(),
        agents = agents.len(),
        "state loaded"
    );
    Ok((store, Registry::load(revisions, agents, target)))
}

/// Opens the state, binds and serves until `shutdown` is cancelled.
pub async fn run(
    config: ControllerConfig,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    bind(config).await?.serve(shutdown).await
}

impl Bound {
    /// The address actually bound (the port chosen when it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes the controller's metrics ([`crate::metrics`]) with `meter` when it serves.
    pub fn with_meter(mut self, meter: opentelemetry::metrics::Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Serves until `shutdown` is cancelled, then stops in two phases (module docs).
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        let Bound {
            listener,
            addr,
            registry,
            store,
            config,
            meter,
        } = self;
        let alerts = start_alerts(&config, addr, &shutdown);
        let persist_stop = CancellationToken::new();
        let (persister, persist_task) =
            Persister::start(registry.clone(), store.clone(), persist_stop.clone());
        let rollouts = {
            let (registry, store) = (registry.clone(), store.clone());
            tokio::task::spawn_blocking(move || {
                Rollouts::load(registry, store, Arc::new(SystemClock))
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?
        };
        let rollouts = Arc::new(match &alerts {
            Some(a) => rollouts.with_alerter(a.clone()),
            None => rollouts,
        });
        if let Some(meter) = &meter {
            crate::metrics::register(meter, registry.clone(), rollouts.clone());
        }
        let engine_stop = CancellationToken::new();
        let engine_task =
            tokio::spawn(crate::rollout::drive(rollouts.clone(), engine_stop.clone()));
        let tracker = TaskTracker::new();
        let sessions = Sessions::new(
            registry.clone(),
            config.hello_timeout,
            shutdown.clone(),
            tracker.clone(),
        );
        let admin = Admin::new(
            registry.clone(),
            store,
            persister,
            rollouts,
            shutdown.clone(),
        );
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AgentSessionsServer<Sessions>>().await;
        health.set_serving::<FleetAdminServer<Admin>>().await;

        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        });
        tracing::info!(%addr, "h264-controller serving");
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE))
            .add_service(health_service)
            .add_service(AgentSessionsServer::new(sessions))
            .add_service(FleetAdminServer::new(admin))
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::pin!(server);
        let result = tokio::select! {
            r = &mut server => r,
            _ = async { shutdown.cancelled().await; tokio::time::sleep(GRACE).await } => {
                tracing::warn!("the gRPC server did not drain within {GRACE:?}; closing");
                Ok(())
            }
        };
        tracker.close();
        if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
            tracing::warn!(left = tracker.len(), "agent sessions did not end in time");
        }
        engine_stop.cancel();
        let _ = engine_task.await;
        persist_stop.cancel();
        if let Err(e) = persist_task.await {
            tracing::error!(error = %e, "the persister failed");
        }
        if let Some(alerts) = alerts {
            alerts.flush(ALERT_FLUSH).await;
        }
        tracing::info!("h264-controller stopped");
        Ok(result?)
    }
}

/// The alerter of `[alerts]`, known by the address the controller listens on, with its queue
/// in the state folder. When it cannot start (the queue folder cannot be created), alerts are
/// only logged by the rollout engine itself, as an agent does: a broken mailbox never keeps
/// the controller from serving.
fn start_alerts(
    config: &ControllerConfig,
    addr: SocketAddr,
    shutdown: &CancellationToken,
) -> Option<Arc<Alerter>> {
    let origin = Origin::controller(addr.to_string());
    match Alerter::start(
        &config.alerts,
        &origin,
        &config.state_dir,
        shutdown.child_token(),
    ) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::error!(error = %e, "alerts cannot start: they are only logged");
            None
        }
    }
}
