//! `AgentSessions`: one bidirectional stream per agent.
//!
//! # Theory of operation
//! The handler waits (at most `hello_timeout`) for the first message, which must be a Hello
//! with a valid agent id, else the call fails with `InvalidArgument`. With client certificates
//! required, the Hello's id must be the one the connection's certificate names
//! (`h264create://agent/ID`), else `Unauthenticated`/`PermissionDenied`; a session that proved
//! its id may take over from a live one, any other is refused while one lives. It registers the agent
//! ([`Registry::register`], which resyncs it from the Hello) and spawns one task for the
//! session, which owns the inbound stream and the sending half of a small bounded outbound
//! channel (the response stream). The task loops: ask the registry what to push and send it,
//! then wait for whichever comes first of an inbound message (ACK, NACK, stats, event: each is
//! a short registry update), a wake-up (a new desired revision, or a newer session of the same
//! agent), a command to forward, a history ACK to send, or shutdown. Job history records go
//! to the history writer without waiting ([`crate::history::ingest`]); their ACK comes back
//! through a small channel of the session's own once they are on disk. When the agent goes away (end of stream or a
//! transport error, including HTTP/2 keepalive timeouts) the task marks it disconnected and
//! ends. Per session this costs a task, a `Notify`, two small channels and the HTTP/2 stream.
//! An assignment goes out with the W3C trace context the registry kept for it (the span that
//! assigned it), so the agent's apply joins that trace; the session itself is not a span.

use std::sync::Arc;
use std::time::Duration;

use h264_proto::v1::agent_message::Body;
use h264_proto::v1::agent_sessions_server::AgentSessions;
use h264_proto::v1::{controller_message, AgentMessage, ControllerMessage, HistoryAck};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status, Streaming};

use h264_trust::Identity;

use crate::history::HistorySink;
use crate::listen::peer_of;
use crate::registry::{Push, RegisterError, Registry, SessionTicket};

/// Messages waiting to go out to one agent at most (assignments and commands only).
const OUTBOUND: usize = 4;
/// The longest agent id accepted.
const MAX_ID: usize = 128;
/// How long a session that cannot prove its id waits for the agent's live session to end (an
/// agent restarting at once reconnects before the controller saw its old connection close).
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

/// History ACKs waiting to go out to one agent at most (a full channel drops one; the agent
/// sends those records again and the store ignores the copies).
const HISTORY_ACKS: usize = 8;

/// The session service.
#[derive(Debug, Clone)]
pub struct Sessions {
    registry: Arc<Registry>,
    /// Where job history records go; none: they are neither stored nor ACKed.
    history: Option<HistorySink>,
    hello_timeout: Duration,
    /// Agents must present a certificate naming them.
    require_certs: bool,
    /// Agents known at most.
    max_agents: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Sessions {
    /// A service that registers agents in `registry`; session tasks are tracked by `tracker`
    /// and end on `shutdown`.
    pub fn new(
        registry: Arc<Registry>,
        hello_timeout: Duration,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            registry,
            history: None,
            hello_timeout,
            require_certs: false,
            max_agents: usize::MAX,
            shutdown,
            tracker,
        }
    }

    /// Requires agents to prove their id with a client certificate.
    pub fn require_certificates(mut self, yes: bool) -> Self {
        self.require_certs = yes;
        self
    }

    /// Stores the job history records agents send in `sink`.
    pub fn history(mut self, sink: HistorySink) -> Self {
        self.history = Some(sink);
        self
    }

    /// Refuses new agents past `n` known ones.
    pub fn max_agents(mut self, n: usize) -> Self {
        self.max_agents = n;
        self
    }
}

/// Whether the connection's certificate proves `id`; an error when certificates are required
/// and it does not.
fn proof(identity: Option<&Identity>, id: &str, required: bool) -> Result<bool, Status> {
    match identity {
        Some(Identity::Agent(cert_id)) if cert_id == id => Ok(true),
        Some(Identity::Agent(cert_id)) => Err(Status::permission_denied(format!(
            "the certificate names agent `{cert_id}` but the Hello says `{id}`: an agent's id is \
             the one in its certificate (fix [agent] id, or issue a certificate for `{id}`)"
        ))),
        Some(other) if required => Err(Status::permission_denied(format!(
            "the certificate names {other}, not an agent"
        ))),
        _ if required => Err(Status::unauthenticated(
            "this controller requires agent certificates: set [controller] cert and key \
             (`fleetctl pki issue --agent ID` makes them)",
        )),
        _ => Ok(false),
    }
}

/// Checks an agent id: 1-128 characters of `A-Z a-z 0-9 . _ -`, not starting with `-` or
/// `.` (the same rule as the id in an agent certificate), so an id can never carry a
/// terminal escape, a bidi override or a path.
pub fn check_agent_id(id: &str) -> Result<(), String> {
    if !h264_trust::identity::valid_name(id) {
        return Err(format!(
            "agent id `{}` is not 1-{MAX_ID} characters of A-Z a-z 0-9 . _ - (not starting with - or .)",
            id.escape_debug()
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl AgentSessions for Sessions {
    type SessionStream = ReceiverStream<Result<ControllerMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let connection = peer_of(&request);
        let peer = connection.remote;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(self.hello_timeout, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no Hello within {:?}: a session starts with a Hello",
                    self.hello_timeout
                ))
            })??;
        let hello = match first.and_then(|m| m.body) {
            Some(Body::Hello(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be a Hello",
                ))
            }
        };
        check_agent_id(&hello.agent_id).map_err(Status::invalid_argument)?;
        let proved = proof(
            connection.identity.as_ref(),
            &hello.agent_id,
            self.require_certs,
        )
        .inspect_err(|e| {
            tracing::warn!(agent = %hello.agent_id.escape_debug(), ?peer, reason = %e.message(), "session refused");
        })?;
        tracing::info!(
            agent = %hello.agent_id,
            ?peer,
            version = %hello.agent_version,
            running = hello.running_generation,
            "agent connected"
        );
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        let ticket = loop {
            match self.registry.register(&hello, proved, self.max_agents) {
                Err(RegisterError::LiveSession(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other,
            }
        };
        let ticket = ticket.map_err(|e| {
            tracing::warn!(agent = %hello.agent_id, ?peer, reason = %e, "session refused");
            match e {
                RegisterError::LiveSession(_) => Status::already_exists(e.to_string()),
                RegisterError::Full(_) => Status::resource_exhausted(e.to_string()),
            }
        })?;
        let (tx, rx) = mpsc::channel(OUTBOUND);
        let task = SessionTask {
            registry: self.registry.clone(),
            agent: hello.agent_id.clone(),
            shutdown: self.shutdown.clone(),
            history: self.history.clone(),
        };
        self.tracker.spawn(task.run(ticket, inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct SessionTask {
    registry: Arc<Registry>,
    agent: String,
    shutdown: CancellationToken,
    history: Option<HistorySink>,
}

type Outbound = mpsc::Sender<Result<ControllerMessage, Status>>;

impl SessionTask {
    async fn run(self, ticket: SessionTicket, mut inbound: Streaming<AgentMessage>, tx: Outbound) {
        let SessionTicket {
            id,
            wake,
            mut commands,
        } = ticket;
        let (acks_tx, mut acks) = mpsc::channel(HISTORY_ACKS);
        let why = loop {
            match self.registry.next_push(&self.agent, id) {
                Push::Superseded => break "superseded by a newer session",
                Push::Send(a) => {
                    tracing::info!(agent = %self.agent, generation = a.generation, rollback = a.rollback, traceparent = %a.traceparent, "assignment sent");
                    let msg = ControllerMessage {
                        body: Some(controller_message::Body::Assignment(a)),
                    };
                    if !self.send(&tx, msg).await {
                        break "the agent stopped reading";
                    }
                    continue;
                }
                Push::Nothing => {}
            }
            if let Some(shadow) = self.registry.next_shadow_push(&self.agent, id) {
                tracing::info!(agent = %self.agent, rollout = shadow.rollout, generation = shadow.candidate.as_ref().map(|c| c.generation), "shadow assignment sent");
                let msg = ControllerMessage {
                    body: Some(controller_message::Body::Shadow(shadow)),
                };
                if !self.send(&tx, msg).await {
                    break "the agent stopped reading";
                }
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break "controller shutdown",
                _ = wake.notified() => {}
                Some(ids) = acks.recv() => {
                    let msg = ControllerMessage {
                        body: Some(controller_message::Body::HistoryAck(HistoryAck { ids })),
                    };
                    if !self.send(&tx, msg).await {
                        break "the agent stopped reading";
                    }
                }
                Some(cmd) = commands.recv() => {
                    let msg = ControllerMessage { body: Some(controller_message::Body::Command(cmd)) };
                    if !self.send(&tx, msg).await {
                        break "the agent stopped reading";
                    }
                }
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => self.handle(m, &acks_tx),
                    Ok(None) => break "the agent closed the session",
                    Err(status) => {
                        tracing::debug!(agent = %self.agent, %status, "session stream error");
                        break "the connection was lost";
                    }
                },
            }
        };
        self.registry.disconnect(&self.agent, id);
        tracing::info!(agent = %self.agent, session = id, why, "agent session ended");
    }

    /// Sends one message unless shutdown or the agent goes first; false when it cannot.
    async fn send(&self, tx: &Outbound, msg: ControllerMessage) -> bool {
        tokio::select! {
            r = tx.send(Ok(msg)) => r.is_ok(),
            _ = self.shutdown.cancelled() => false,
        }
    }

    fn handle(&self, msg: AgentMessage, acks: &mpsc::Sender<Vec<String>>) {
        match msg.body {
            Some(Body::Ack(ack)) => {
                tracing::info!(agent = %self.agent, generation = ack.generation, "assignment acknowledged");
                self.registry.ack(&self.agent, &ack);
            }
            Some(Body::Nack(nack)) => self.registry.nack(&self.agent, &nack),
            Some(Body::Stats(stats)) => self.registry.stats(&self.agent, stats),
            Some(Body::Event(event)) => self.registry.event(&self.agent, event),
            Some(Body::History(batch)) => match &self.history {
                Some(sink) => {
                    if !sink.offer(&self.agent, batch, acks.clone()) {
                        tracing::debug!(agent = %self.agent, "history writer behind; batch not ACKed");
                    }
                }
                None => tracing::debug!(agent = %self.agent, "no history store; batch ignored"),
            },
            Some(Body::ShadowComparison(c)) => self.registry.shadow_comparison(&self.agent, c),
            Some(Body::Hello(_)) => {
                tracing::warn!(agent = %self.agent, "a second Hello in one session is ignored")
            }
            None => {}
        }
    }
}
