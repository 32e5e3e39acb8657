//! The local control API (`h264create.v1.AgentControl`, gRPC on a loopback address): ping,
//! pause, resume, stats, errors. Binding its address is also the single-instance guard for the
//! port: a second agent finds it taken, asks the first one who it is, and says so.
//!
//! # Theory of operation
//! One tonic server task serves until shutdown. Every call reads shared state through the
//! [`View`] (the agent's handles: the journal, the job registry, the disk guard's reading,
//! atomics); `Pause` and `Resume` only flip the manual hold on [`crate::intake`], and
//! `Pause` with `cancel_running` cancels running jobs, which record themselves as interrupted
//! and are queued again (they wait for the resume). Pause and Resume need the agent's control
//! token ([`crate::control_token`]); Ping, Stats and Errors are open on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::agent_control_server::{AgentControl, AgentControlServer};
use h264_proto::v1::{
    Counters, ErrorEntry, ErrorsReply, ErrorsRequest, HeldRoot, PauseReply, PauseRequest,
    PingReply, PingRequest, ResumeReply, ResumeRequest, RunningJob, StatsReply, StatsRequest,
    Volume,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::control_token::ControlToken;
use crate::disk::DiskGuard;
use crate::intake::Intake;
use crate::journal::Journal;
use crate::key::SourceKey;
use crate::notify::Notifier;
use crate::pipeline::{CancelReason, Jobs};
use crate::queue::WorkQueue;
use crate::settings::SettingsRx;
use crate::stats::Stats;

/// The agent as the control API and the fleet session see it: a read model over the handles
/// the subsystems own, plus the manual hold.
#[derive(Debug, Clone)]
pub struct View {
    /// The agent's id.
    pub id: String,
    /// When the agent started.
    pub started_at: Instant,
    /// Warnings from loading the configuration, for `Ping`.
    pub config_warnings: Arc<[String]>,
    /// The settings in force.
    pub settings: SettingsRx,
    /// The job journal.
    pub journal: Arc<Journal>,
    /// Counters since the start.
    pub stats: Arc<Stats>,
    /// The jobs in flight.
    pub jobs: Jobs,
    /// The keys waiting for a reconcile.
    pub queue: Arc<WorkQueue<SourceKey>>,
    /// The disk guard's last reading.
    pub disk: Arc<DiskGuard>,
    /// The roots held because they are missing or unreachable.
    pub health: Arc<crate::root_health::RootHealth>,
    /// Whether jobs may start.
    pub intake: Arc<Intake>,
    /// The alert queue.
    pub notifier: Notifier,
}

/// Why the control address cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process listens there.
    #[error("the control address {addr} is already in use by {holder}; stop it first, or give this agent another agent.control")]
    InUse {
        /// The address.
        addr: String,
        /// Who answered there.
        holder: String,
    },
    /// The address is malformed or cannot be bound.
    #[error("cannot listen on the control address {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the control address; when it is taken, asks whoever holds it for its identity.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, BindError> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = match tokio::time::timeout(Duration::from_secs(3), who_is(addr)).await {
                Ok(Ok(ping)) => format!(
                    "h264-agent \"{}\" (pid {}, version {})",
                    ping.agent_id, ping.pid, ping.version
                ),
                _ => "another program (it does not answer as an h264-agent)".to_string(),
            };
            Err(BindError::InUse {
                addr: addr.to_string(),
                holder,
            })
        }
        Err(source) => Err(BindError::Io {
            addr: addr.to_string(),
            source,
        }),
    }
}

async fn who_is(addr: &str) -> Result<PingReply, Box<dyn std::error::Error + Send + Sync>> {
    let mut client = AgentControlClient::connect(format!("http://{addr}")).await?;
    Ok(client.ping(PingRequest {}).await?.into_inner())
}

/// Serves the control API on `listener` until `shutdown` (the caller spawns it); Pause and
/// Resume need `token`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    view: View,
    token: ControlToken,
    shutdown: CancellationToken,
) {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let service = AgentControlServer::new(Control { view, token });
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await;
    if let Err(e) = result {
        tracing::error!(addr = ?local, error = %e, "the control API stopped");
    }
}

struct Control {
    view: View,
    token: ControlToken,
}

fn journal_error(e: crate::journal::JournalError) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl AgentControl for Control {
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let a = &self.view;
        let settings = a.settings.current();
        Ok(Response::new(PingReply {
            agent_id: a.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: a.started_at.elapsed().as_secs(),
            config_generation: settings.generation,
            config_sha256: settings.sha256.clone(),
            pid: std::process::id(),
            config_warnings: a.config_warnings.to_vec(),
            control_token_file: self.token.path().display().to_string(),
        }))
    }

    async fn pause(&self, request: Request<PauseRequest>) -> Result<Response<PauseReply>, Status> {
        self.token.check(&request)?;
        let cancel_running = request.into_inner().cancel_running;
        Ok(Response::new(
            self.view.pause(cancel_running, "an operator"),
        ))
    }

    async fn resume(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<ResumeReply>, Status> {
        self.token.check(&request)?;
        Ok(Response::new(self.view.resume("an operator")))
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        self.view
            .stats_reply()
            .map(Response::new)
            .map_err(journal_error)
    }

    async fn errors(
        &self,
        request: Request<ErrorsRequest>,
    ) -> Result<Response<ErrorsReply>, Status> {
        let limit = match request.into_inner().limit {
            0 => 20,
            n => n.min(1000),
        };
        let events = self
            .view
            .journal
            .recent_events(limit)
            .map_err(journal_error)?;
        let errors = events
            .into_iter()
            .map(|e| ErrorEntry {
                at_ms: e
                    .at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
                file: std::path::Path::new(&e.root)
                    .join(&e.rel)
                    .display()
                    .to_string(),
                stage: crate::session::messages::job_stage(e.stage.as_deref().unwrap_or_default()),
                kind: e.kind,
                message: e.message,
            })
            .collect();
        Ok(Response::new(ErrorsReply { errors }))
    }
}

impl View {
    /// Pauses intake (the manual hold); with `cancel_running`, running jobs are cancelled and queued
    /// again for after the resume. `by` says who asked, for the log.
    pub fn pause(&self, cancel_running: bool, by: &str) -> PauseReply {
        self.intake.set_manual(true);
        let cancelled = if cancel_running {
            self.jobs.cancel_all(CancelReason::Paused)
        } else {
            0
        };
        tracing::warn!(cancelled, "paused by {by}: no new jobs start until resume");
        PauseReply {
            paused: true,
            cancelled,
        }
    }

    /// Releases the manual hold; intake may still be held by the disk guard.
    pub fn resume(&self, by: &str) -> ResumeReply {
        let hold = self.intake.set_manual(false);
        tracing::warn!(still_held_by = %hold.describe(), "resumed by {by}");
        ResumeReply {
            paused: !hold.is_open(),
            still_held_by: hold.describe(),
        }
    }

    /// The agent's counters, running jobs, queue, volumes, hold and held roots: what `Stats`
    /// answers, and what the fleet session sends the controller.
    pub fn stats_reply(&self) -> Result<StatsReply, crate::journal::JournalError> {
        let a = self;
        let s = a.stats.snapshot();
        let since_start = Counters {
            seen: s.seen,
            started: s.started,
            converted: s.converted,
            failed: s.failed,
            retried: s.retried,
            cancelled: s.cancelled,
            conflicts: s.conflicts,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            mean_speed: s.mean_speed,
            captions_extracted: s.captions_extracted,
            no_captions: s.no_captions,
            captions_lost: s.captions_lost,
        };
        let t = a.journal.totals()?;
        let journal = Counters {
            seen: t.jobs,
            started: t.jobs,
            converted: t.succeeded,
            failed: t.failed,
            retried: t.retried,
            cancelled: t.cancelled,
            conflicts: t.conflicts,
            bytes_in: t.bytes_in,
            bytes_out: t.bytes_out,
            mean_speed: if t.wall_secs > 0.0 {
                t.media_secs / t.wall_secs
            } else {
                0.0
            },
            captions_extracted: t.captions_extracted,
            no_captions: t.no_captions,
            captions_lost: t.captions_lost,
        };
        let running = a
            .jobs
            .snapshot()
            .iter()
            .map(|(key, job)| {
                let live = job.live();
                RunningJob {
                    source: key.to_string(),
                    stage: crate::session::messages::job_stage(live.stage.as_str()),
                    percent: live.percent,
                    speed: live.speed,
                    attempt: live.attempt,
                }
            })
            .collect();
        let volumes = a
            .disk
            .volumes()
            .iter()
            .map(|v| Volume {
                path: v.path.display().to_string(),
                free_bytes: v.free,
                total_bytes: v.total,
                level: v.level.as_str().to_string(),
            })
            .collect();
        let held_roots = a
            .health
            .held()
            .into_iter()
            .map(|h| HeldRoot {
                path: h.path.display().to_string(),
                kind: h.kind.as_str().to_string(),
                reason: h.why,
                since_ms: h
                    .since
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
            })
            .collect();
        let hold = a.intake.hold();
        Ok(StatsReply {
            since_start: Some(since_start),
            journal: Some(journal),
            queue_depth: a.queue.depth() as u64,
            running,
            paused: !hold.is_open(),
            paused_by: hold.describe(),
            volumes,
            alert_queue_depth: a.notifier.queue_depth() as u64,
            workers: a.settings.current().config.agent.workers as u64,
            held_roots,
        })
    }
}
