//! The agent's session with the fleet controller (`h264create.v1.AgentSessions`): one gRPC
//! bidirectional stream over which the controller assigns configuration revisions and commands,
//! and the agent answers with ACK/NACK and streams its stats and job events.
//!
//! # Theory of operation
//! One task owns the stream, as linkerd's tonic-watch does: it connects, says hello (id,
//! labels, version, capabilities, the revision it runs and the highest it accepted), then
//! serves until the stream breaks, and reconnects with exponential backoff and jitter
//! (`backoff`) until the agent shuts down. Losing the controller changes nothing the agent
//! does: jobs go on under the pipeline in force.
//!
//! The task reacts to three things: messages from the controller (an assignment goes through
//! [`assign::accept`] on a blocking thread, then ACK or NACK; pause and resume act like the
//! local control API), a stats tick (`stats_interval`), and the agent's job events
//! ([`crate::pipeline::Events`]), each sent as it happens and followed by fresh stats. The
//! events receiver lives as long as the task, so events of an outage (up to the channel's
//! capacity) are delivered after the reconnect. Stats are offered without waiting: when the
//! stream is backed up, a tick is skipped rather than queued.
//!
//! Job history: the records of ended job attempts wait in an outbox on disk ([`history`]) and
//! go out one batch at a time (when added, when ACKed, and again when an ACK is overdue).
//!
//! Which revision runs ([`Revisions`]) is the task's own state; it starts from
//! [`startup::startup`], which also picks the start-up pipeline from the last-known-good file
//! ([`lkg`]).
//!
//! Transport (`transport`): plain HTTP/2 for `http://`, TLS (rustls) for `https://`, the
//! controller's certificate checked against `[controller] ca` and this agent's own presented
//! from `cert` and `key`. A TLS failure is logged with what to fix and retried like any other
//! lost connection. With `[controller] trusted_keys`, assignments must also carry a signature
//! by one of those keys (`signature`), checked right after their SHA256.
//!
//! Tracing: an assignment is handled in an `assignment.apply` span (generation, revision,
//! sha256, rollback, outcome ACK or NACK, the NACK's stage and field) whose parent is the
//! controller's span named by the assignment's `traceparent` (a rollout's push or rollback, an
//! operator's apply or assign), so the agent's work joins the rollout's trace; its stages are
//! child spans (`assign`). The span goes along to the blocking thread that applies it.

mod assign;
mod backoff;
mod caps;
mod ctx;
mod error;
pub mod history;
pub mod lkg;
pub mod messages;
mod shadow;
mod signature;
mod startup;
mod transport;

use std::sync::{Arc, Mutex};

use h264_proto::v1::agent_command::Body as Command;
use h264_proto::v1::agent_sessions_client::AgentSessionsClient;
use h264_proto::v1::controller_message::Body;
use h264_proto::v1::{AgentMessage, Assignment, ControllerMessage};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tracing::Instrument as _;

pub use assign::{accept, diff, Accepted, Nack, Revisions, Stage};
pub use backoff::Backoff;
pub use caps::{Capabilities, Missing};
pub use ctx::SessionCtx;
pub use error::SessionError;
pub use startup::{startup, Startup};

use crate::pipeline::JobEvent;
use error::chain;

/// Messages waiting to be sent on the stream.
const OUTBOX: usize = 64;

/// The session task when `[controller]` names an endpoint (the caller spawns it); it runs until
/// the agent shuts down. `revisions` is the state [`startup`] found.
pub fn task(
    agent: SessionCtx,
    revisions: Revisions,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let endpoint = agent.local.controller.endpoint.clone()?;
    if let Err(e) = Endpoint::from_shared(endpoint.clone()) {
        tracing::error!(%endpoint, error = %e, "controller.endpoint is not usable; no fleet session");
        return None;
    }
    Some(run(agent, revisions))
}

async fn run(agent: SessionCtx, revisions: Revisions) {
    let cfg = &agent.local.controller;
    let uri = cfg.endpoint.clone().unwrap_or_default();
    let revisions = Arc::new(Mutex::new(revisions));
    let mut events = agent.events.subscribe();
    let mut comparisons = agent.shadow.subscribe();
    let mut backoff = Backoff::new(cfg.reconnect_backoff.get(), cfg.reconnect_backoff_max.get());
    let mut caps = Capabilities::default();
    loop {
        let ended = tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            ended = serve(&agent, &revisions, &mut events, &mut comparisons, &mut backoff, &mut caps) => ended,
        };
        // Shadow work belongs to the session that asked for it; the next one says again.
        agent.shadow.set_candidate(None);
        let delay = backoff.next_delay();
        let attempt = backoff.failures();
        let advice = match &ended {
            Err(e) => transport::advice(&e.to_string(), cfg),
            Ok(()) => None,
        };
        match ended {
            Ok(()) => {
                tracing::warn!(controller = %uri, retry_in = ?delay, "the controller ended the session; reconnecting")
            }
            Err(e @ SessionError::Tls { .. }) if attempt == 1 || attempt.is_multiple_of(10) => {
                tracing::error!(
                    controller = %uri, attempt, retry_in = ?delay, error = %e,
                    "no controller session: fix the TLS files in [controller]; the agent keeps running its configuration and retries"
                )
            }
            Err(e) if advice.is_some() && (attempt == 1 || attempt.is_multiple_of(10)) => {
                tracing::error!(
                    controller = %uri, attempt, retry_in = ?delay, error = %e,
                    fix = advice.as_deref().unwrap_or_default(),
                    "no controller session: TLS failed; the agent keeps running its configuration and retries"
                )
            }
            Err(e) if attempt == 1 || attempt.is_multiple_of(10) => tracing::warn!(
                controller = %uri, attempt, retry_in = ?delay, error = %e,
                "no controller session; the agent keeps running its configuration and reconnects"
            ),
            Err(e) => {
                tracing::debug!(controller = %uri, attempt, retry_in = ?delay, error = %e, "reconnecting")
            }
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// One session: connect, hello, then serve until the stream ends.
async fn serve(
    agent: &SessionCtx,
    revisions: &Arc<Mutex<Revisions>>,
    events: &mut broadcast::Receiver<JobEvent>,
    comparisons: &mut broadcast::Receiver<h264_proto::v1::ShadowComparison>,
    backoff: &mut Backoff,
    caps: &mut Capabilities,
) -> Result<(), SessionError> {
    let endpoint = transport::endpoint(&agent.local.controller)?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| SessionError::Connect {
            endpoint: endpoint.uri().to_string(),
            why: chain(&e),
        })?;
    *caps = Capabilities::detect(&agent.local, caps).await;
    let caps = &*caps;
    let (tx, rx) = mpsc::channel(OUTBOX);
    let hello = messages::hello(agent, &lock(revisions), caps);
    tx.send(hello).await.map_err(|_| SessionError::Closed)?;
    let mut client = AgentSessionsClient::new(channel);
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(SessionError::Refused)?
        .into_inner();
    backoff.reset();
    let (generation, sha256) = messages::running(agent, &lock(revisions));
    let tls = endpoint.uri().scheme_str() == Some("https");
    tracing::info!(
        controller = %endpoint.uri(), tls, generation, %sha256, capabilities = ?caps.names(),
        "connected to the controller"
    );
    let mut stats = tokio::time::interval(agent.local.controller.stats_interval.get());
    stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut delivery = history::Delivery::default();
    let mut resend = tokio::time::interval(history::ACK_WAIT / 3);
    let outbox = agent.history.as_deref();
    loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(ControllerMessage { body: Some(Body::HistoryAck(ack)) })) => {
                    if let Some(outbox) = outbox {
                        delivery.acked(outbox, &ack.ids, &tx).await?;
                    }
                }
                Ok(Some(message)) => handle(agent, revisions, caps, &tx, message).await?,
                Ok(None) => return Ok(()),
                Err(status) => return Err(SessionError::Broken(status)),
            },
            _ = stats.tick() => offer(&tx, messages::stats(agent)),
            _ = async { outbox?.added.notified().await; Some(()) }, if outbox.is_some() => {
                if let Some(outbox) = outbox {
                    delivery.next(outbox, &tx).await?;
                }
            }
            _ = resend.tick(), if outbox.is_some() => {
                if let Some(outbox) = outbox {
                    delivery.next(outbox, &tx).await?;
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    send(&tx, messages::event(&event)).await?;
                    offer(&tx, messages::stats(agent));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "job events were too many to send; the stats still count them");
                }
                // The agent holds the sender as long as this task holds the agent.
                Err(broadcast::error::RecvError::Closed) => return Err(SessionError::Closed),
            },
            comparison = comparisons.recv() => match comparison {
                Ok(c) => send(&tx, messages::shadow_comparison(c)).await?,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "shadow comparisons were too many to send");
                }
                Err(broadcast::error::RecvError::Closed) => return Err(SessionError::Closed),
            },
        }
    }
}

/// Acts on one message from the controller.
async fn handle(
    agent: &SessionCtx,
    revisions: &Arc<Mutex<Revisions>>,
    caps: &Capabilities,
    tx: &mpsc::Sender<AgentMessage>,
    message: ControllerMessage,
) -> Result<(), SessionError> {
    match message.body {
        Some(Body::Assignment(a)) => {
            let reply = assignment(agent, revisions, caps, a).await;
            send(tx, reply).await?;
            offer(tx, messages::stats(agent));
        }
        Some(Body::Shadow(s)) => {
            if let Some(nack) = shadow::shadow(agent, revisions, caps, s).await {
                send(tx, nack).await?;
            }
        }
        Some(Body::Command(command)) => {
            match command.body {
                Some(Command::Pause(p)) => {
                    agent.view.pause(p.cancel_running, "the controller");
                }
                Some(Command::Resume(_)) => {
                    agent.view.resume("the controller");
                }
                None => tracing::debug!("an empty command from the controller"),
            }
            offer(tx, messages::stats(agent));
        }
        Some(Body::HistoryAck(_)) => {}
        None => tracing::debug!("an empty message from the controller"),
    }
    Ok(())
}

/// Accepts or refuses one assignment (on a blocking thread: hashing, validation, fsync) and
/// returns the ACK or NACK, in the `assignment.apply` span (module docs).
async fn assignment(
    agent: &SessionCtx,
    revisions: &Arc<Mutex<Revisions>>,
    caps: &Capabilities,
    a: Assignment,
) -> AgentMessage {
    let span = tracing::info_span!(
        "assignment.apply",
        generation = a.generation,
        revision = a.generation,
        sha256 = %a.sha256,
        rollback = a.rollback,
        nonce = %a.nonce,
        bytes = a.canonical.len(),
        outcome = tracing::field::Empty,
        nack.stage = tracing::field::Empty,
        nack.field = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    h264_telemetry::propagate::set_parent_from_traceparent(&span, &a.traceparent);
    let reply = apply(agent, revisions, caps, a)
        .instrument(span.clone())
        .await;
    match &reply.body {
        Some(h264_proto::v1::agent_message::Body::Nack(n)) => {
            span.record("outcome", "NACK")
                .record("nack.stage", n.stage().name())
                .record("nack.field", n.field.as_str())
                .record(
                    "otel.status_description",
                    format!("refused at the {} stage: {}", n.stage().name(), n.message).as_str(),
                );
        }
        _ => _ = span.record("outcome", "ACK"),
    }
    reply
}

async fn apply(
    agent: &SessionCtx,
    revisions: &Arc<Mutex<Revisions>>,
    caps: &Capabilities,
    a: Assignment,
) -> AgentMessage {
    tracing::info!(
        generation = a.generation, nonce = %a.nonce, rollback = a.rollback,
        traceparent = %a.traceparent, bytes = a.canonical.len(), "assignment received"
    );
    let a = Arc::new(a);
    let work = {
        let (agent, revisions, caps, a) =
            (agent.clone(), revisions.clone(), caps.clone(), a.clone());
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| accept(&agent, &mut lock(&revisions), &caps, &a))
        })
    };
    let outcome = work.await.unwrap_or_else(|e| {
        Err(Nack {
            stage: Stage::Apply,
            field: String::new(),
            message: format!("the agent failed while applying it: {e}"),
        })
    });
    match outcome {
        Ok(Accepted::AlreadyRunning) => {
            tracing::info!(
                generation = a.generation,
                "assignment already in force; acknowledged"
            );
            messages::ack(&a)
        }
        Ok(Accepted::Applied { changed, signed_by }) => {
            let signed_by = signed_by.as_deref().unwrap_or("unchecked");
            tracing::info!(
                generation = a.generation, sha256 = %a.sha256, rollback = a.rollback, ?changed,
                signed_by = %signed_by, "configuration revision accepted; jobs starting from now use it"
            );
            if changed.iter().any(|k| k.starts_with("logging.")) {
                tracing::warn!(
                    "logging.level and logging.format changes take effect at the next start"
                );
            }
            messages::ack(&a)
        }
        Err(nack) => {
            let running = agent.settings.current().generation;
            tracing::warn!(
                generation = a.generation, stage = nack.stage.as_str(), field = %nack.field,
                running, "configuration revision refused: {}", nack.message
            );
            let what = format!(
                "fleet revision {} refused at the {} stage{}: {}",
                a.generation,
                nack.stage.as_str(),
                if nack.field.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", nack.field)
                },
                nack.message
            );
            let action = if running == 0 {
                "the agent keeps running its local configuration".to_string()
            } else {
                format!("the agent keeps running generation {running}")
            };
            agent.view.notifier.config_rejected(&what, &action);
            messages::nack(&a, &nack)
        }
    }
}

/// Queues a message unless the stream is backed up (then it is dropped: stats come again).
fn offer(tx: &mpsc::Sender<AgentMessage>, message: Option<AgentMessage>) {
    if let Some(message) = message {
        if tx.try_send(message).is_err() {
            tracing::debug!("the controller stream is backed up; stats skipped");
        }
    }
}

async fn send(tx: &mpsc::Sender<AgentMessage>, message: AgentMessage) -> Result<(), SessionError> {
    tx.send(message).await.map_err(|_| SessionError::Closed)
}

fn lock(revisions: &Mutex<Revisions>) -> std::sync::MutexGuard<'_, Revisions> {
    revisions.lock().unwrap_or_else(|p| p.into_inner())
}
