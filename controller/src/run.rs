//! Starting and stopping the controller: open the state, bind the listener, serve the agent
//! sessions, the admin API and the health service on it until shutdown.
//!
//! Transport: TLS through the controller's own acceptor ([`crate::listen`]) when configured,
//! plaintext otherwise (loopback only, unless `insecure_plaintext`; checked by the config and
//! again here). At the first start, the `admin` token is written to `state_dir/admin.token`.
//! Message sizes are bounded per service: agent sessions [`SESSION_MESSAGE_MAX`], the admin API
//! [`ADMIN_MESSAGE_MAX`] in (a manifest) and [`ADMIN_REPLY_MAX`] out (a large fleet's list).
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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::ControllerConfig;
use crate::history::HistorySink;
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
/// The largest message an agent may send (a Hello, stats, an event): far below tonic's 4 MiB.
pub const SESSION_MESSAGE_MAX: usize = 256 * 1024;
/// The largest admin request (a manifest is at most 4 MiB; with its framing).
pub const ADMIN_MESSAGE_MAX: usize = 5 * 1024 * 1024;
/// The largest admin reply (the list of a large fleet).
pub const ADMIN_REPLY_MAX: usize = 64 * 1024 * 1024;
/// Connections held at most beyond `max_agents` (operators, reconnecting agents).
const SPARE_CONNECTIONS: usize = 1024;

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
    /// The TLS material cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] h264_trust::tls::TlsError),
    /// The first admin token cannot be made.
    #[error("cannot make the first admin token: {0}")]
    Token(String),
    /// Plaintext on an address that is not loopback, without `insecure_plaintext`.
    #[error("{0}")]
    Insecure(String),
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
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Arc<crate::auth::Auth>,
    /// Where the first admin token was written, when this start made it.
    admin_token: Option<std::path::PathBuf>,
    /// The web console's listener and TLS (`[web] listen`), when it is on.
    web: Option<(TcpListener, Option<Arc<rustls::ServerConfig>>)>,
}

/// Opens the state and binds the listen address.
pub async fn bind(config: ControllerConfig) -> Result<Bound, ControllerError> {
    config
        .check_transport()
        .map_err(|e| ControllerError::Insecure(e.to_string()))?;
    let tls = match &config.tls {
        Some(t) => Some(h264_trust::tls::server_config(
            &t.cert,
            &t.key,
            t.client_ca.as_deref(),
        )?),
        None => None,
    };
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
    let (client_certs, listen_addr) = (
        config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        addr,
    );
    match (&config.tls, client_certs) {
        (None, _) if !listen_addr.ip().is_loopback() => tracing::warn!(
            addr = %listen_addr,
            "INSECURE: serving plaintext on a non-loopback address (--insecure-plaintext): \
             anyone on the network can read tokens and forge agents; enable TLS"
        ),
        (Some(_), false) => tracing::warn!(
            "TLS without --client-ca: agents are not authenticated (any peer may register \
                 as any agent id); give --client-ca to require agent certificates"
        ),
        _ => {}
    }
    let web = match config.web_listen {
        Some(web_addr) => {
            let listener =
                TcpListener::bind(web_addr)
                    .await
                    .map_err(|source| ControllerError::Bind {
                        addr: web_addr,
                        source,
                    })?;
            // Browsers are not asked for client certificates: the console's login is a token.
            let tls = match &config.tls {
                Some(t) => Some(h264_trust::tls::server_config(&t.cert, &t.key, None)?),
                None => None,
            };
            Some((listener, tls))
        }
        None => None,
    };
    let store = Arc::new(store);
    let admin_token = crate::auth::tokens::bootstrap(&store, &config.state_dir)
        .map_err(ControllerError::Token)?;
    let auth = Arc::new(crate::auth::Auth::load(store.clone())?);
    Ok(Bound {
        listener,
        addr,
        registry: Arc::new(registry),
        store,
        config,
        meter: None,
        tls,
        auth,
        admin_token,
        web,
    })
}

fn load(dir: &std::path::Path, events_kept: u32) -> Result<(Store, Registry), StoreError> {
    let store = Store::open(dir, events_kept)?;
    let mut signatures = store.revision_signatures()?;
    let mut revisions = store.revisions()?;
    for r in &mut revisions {
        r.signed = signatures
            .remove(&r.generation)
            .map(|(key, signature)| crate::model::Signed { key, signature });
    }
    let mut labels = store.operator_labels()?;
    let mut agents = Vec::new();
    for mut a in store.agents()? {
        a.labels = labels.remove(&a.id).unwrap_or_default();
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

    /// The web console's address, when `[web] listen` is set.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Where this start wrote the first admin token (`None`: tokens existed already).
    pub fn admin_token_file(&self) -> Option<&std::path::Path> {
        self.admin_token.as_deref()
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
            tls,
            auth,
            admin_token: _,
            web,
        } = self;
        let client_certs = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
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
        let history_stop = CancellationToken::new();
        let (history, history_task) =
            HistorySink::start(store.clone(), config.history_keep, history_stop.clone());
        let tracker = TaskTracker::new();
        let sessions = Sessions::new(
            registry.clone(),
            config.hello_timeout,
            shutdown.clone(),
            tracker.clone(),
        )
        .require_certificates(client_certs)
        .max_agents(config.max_agents)
        .history(history);
        let admin = Admin::new(
            registry.clone(),
            store.clone(),
            persister,
            rollouts,
            shutdown.clone(),
            auth,
            config.revisions_kept,
        );
        let web_task = web.map(|(listener, web_tls)| {
            let console = Arc::new(crate::web::Console::new(
                admin.clone(),
                registry.clone(),
                store.clone(),
                web_tls.is_some(),
                shutdown.clone(),
            ));
            tokio::spawn(crate::web::serve(
                listener,
                web_tls,
                console,
                shutdown.clone(),
            ))
        });
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AgentSessionsServer<Sessions>>().await;
        health.set_serving::<FleetAdminServer<Admin>>().await;

        let incoming = crate::listen::incoming(
            listener,
            tls.clone(),
            config.max_agents.saturating_add(SPARE_CONNECTIONS),
            shutdown.clone(),
        );
        tracing::info!(%addr, tls = tls.is_some(), client_certificates = client_certs, "h264-controller serving");
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE))
            .add_service(health_service)
            .add_service(
                AgentSessionsServer::new(sessions).max_decoding_message_size(SESSION_MESSAGE_MAX),
            )
            .add_service(
                FleetAdminServer::new(admin)
                    .max_decoding_message_size(ADMIN_MESSAGE_MAX)
                    .max_encoding_message_size(ADMIN_REPLY_MAX),
            )
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::pin!(server);
        let result = tokio::select! {
            r = &mut server => r,
            _ = async { shutdown.cancelled().await; tokio::time::sleep(GRACE).await } => {
                tracing::warn!("the gRPC server did not drain within {GRACE:?}; closing");
                Ok(())
            }
        };
        if let Some(task) = web_task {
            if tokio::time::timeout(GRACE, task).await.is_err() {
                tracing::warn!("the web console did not stop in time");
            }
        }
        tracker.close();
        if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
            tracing::warn!(left = tracker.len(), "agent sessions did not end in time");
        }
        engine_stop.cancel();
        let _ = engine_task.await;
        history_stop.cancel();
        let _ = history_task.await;
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
