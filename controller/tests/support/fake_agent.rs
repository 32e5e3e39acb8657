//! A test agent speaking the session protocol with the generated client: Hello, then
//! assignments in and ACK/NACK, stats and events out. No fake controller and no fake network:
//! it talks real gRPC to the real controller. Reusable by other crates' tests with
//! `#[path = "../../../controller/tests/support/fake_agent.rs"] mod fake_agent;` in their
//! `tests/it/main.rs` (they need `sha2`, `tokio`, `tokio-stream`, `tonic` and `h264-proto`).
#![allow(dead_code)]

use std::time::Duration;

use h264_proto::v1::agent_message::Body;
use h264_proto::v1::agent_sessions_client::AgentSessionsClient;
use h264_proto::v1::controller_message;
use h264_proto::v1::{
    AgentCommand, AgentEvent, AgentMessage, AgentStats, Assignment, AssignmentAck, AssignmentNack,
    ControllerMessage, Hello, StatsReply,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// SHA256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Hello for `id` running `generation` (0: its local file) with that SHA256.
pub fn hello(id: &str, labels: &[(&str, &str)], generation: u64, sha256: &str) -> Hello {
    Hello {
        agent_id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        agent_version: "0.1.0-test".into(),
        capabilities: vec!["encoder.libx264".into()],
        running_generation: generation,
        running_sha256: sha256.to_owned(),
        highest_accepted_generation: generation,
    }
}

/// One session to the controller.
#[derive(Debug)]
pub struct FakeAgent {
    /// Its id.
    pub id: String,
    tx: mpsc::Sender<AgentMessage>,
    rx: Streaming<ControllerMessage>,
}

impl FakeAgent {
    /// Connects to `url` and opens a session with `hello`.
    pub async fn connect(url: &str, hello: Hello) -> Result<Self, Status> {
        let id = hello.agent_id.clone();
        let first = AgentMessage {
            body: Some(Body::Hello(hello)),
        };
        Self::connect_with(url, id, first).await
    }

    /// Connects and sends `first` as the first message (tests of the Hello rule).
    pub async fn connect_with(url: &str, id: String, first: AgentMessage) -> Result<Self, Status> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Self::over(channel, hello_or(id, first)).await
    }

    /// Opens a session over `channel` (a TLS one, say) with `hello`.
    pub async fn connect_over(
        channel: tonic::transport::Channel,
        hello: Hello,
    ) -> Result<Self, Status> {
        let id = hello.agent_id.clone();
        Self::over(
            channel,
            (
                id,
                AgentMessage {
                    body: Some(Body::Hello(hello)),
                },
            ),
        )
        .await
    }

    async fn over(
        channel: tonic::transport::Channel,
        (id, first): (String, AgentMessage),
    ) -> Result<Self, Status> {
        let mut client = AgentSessionsClient::new(channel);
        let (tx, rx) = mpsc::channel(64);
        tx.send(first).await.expect("queue the first message");
        let rx = client.session(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { id, tx, rx })
    }

    /// The next message from the controller, within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<controller_message::Body> {
        match tokio::time::timeout(within, self.rx.message()).await {
            Ok(Ok(Some(m))) => m.body,
            Ok(Ok(None)) => None,
            Ok(Err(status)) => panic!("{}: session failed: {status}", self.id),
            Err(_) => None,
        }
    }

    /// The next assignment, within `within`; panics on a timeout or another message.
    pub async fn assignment(&mut self, within: Duration) -> Assignment {
        match self.next(within).await {
            Some(controller_message::Body::Assignment(a)) => a,
            other => panic!("{}: expected an assignment, got {other:?}", self.id),
        }
    }

    /// The next command, within `within`.
    pub async fn command(&mut self, within: Duration) -> AgentCommand {
        match self.next(within).await {
            Some(controller_message::Body::Command(c)) => c,
            other => panic!("{}: expected a command, got {other:?}", self.id),
        }
    }

    /// Panics if the controller sends anything within `period`.
    pub async fn expect_nothing(&mut self, period: Duration) {
        if let Some(m) = self.next(period).await {
            panic!("{}: expected nothing, got {m:?}", self.id);
        }
    }

    /// Sends job history records.
    pub async fn history(&self, records: Vec<h264_proto::v1::JobAttempt>) {
        self.send(Body::History(h264_proto::v1::HistoryBatch { records }))
            .await;
    }

    /// Waits for the next history ACK (other messages are skipped).
    pub async fn history_ack(&mut self, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(controller_message::Body::HistoryAck(a)) => return a.ids,
                Some(_) => continue,
                None => panic!("{}: no history ACK within {within:?}", self.id),
            }
        }
    }

    async fn send(&self, body: Body) {
        self.tx
            .send(AgentMessage { body: Some(body) })
            .await
            .expect("session open");
    }

    /// Acknowledges `a` (after checking its SHA256, as an agent does).
    pub async fn ack(&self, a: &Assignment) {
        assert_eq!(
            sha256_hex(&a.canonical),
            a.sha256,
            "assignment bytes match their SHA256"
        );
        self.send(Body::Ack(AssignmentAck {
            generation: a.generation,
            nonce: a.nonce.clone(),
            sha256: a.sha256.clone(),
        }))
        .await;
    }

    /// Acknowledges `a` naming `sha256` as what it runs (an agent that got edited bytes).
    pub async fn ack_as(&self, a: &Assignment, sha256: &str) {
        self.send(Body::Ack(AssignmentAck {
            generation: a.generation,
            nonce: a.nonce.clone(),
            sha256: sha256.to_owned(),
        }))
        .await;
    }

    /// Refuses `a` at `stage`.
    pub async fn nack(&self, a: &Assignment, stage: &str, field: &str, message: &str) {
        self.send(Body::Nack(AssignmentNack {
            generation: a.generation,
            nonce: a.nonce.clone(),
            stage: h264_proto::v1::NackStage::from_name(stage).into(),
            field: field.into(),
            message: message.into(),
        }))
        .await;
    }

    /// Reports stats.
    pub async fn stats(&self, running_generation: u64, stats: StatsReply) {
        self.send(Body::Stats(AgentStats {
            at_ms: 0,
            stats: Some(stats),
            running_generation,
        }))
        .await;
    }

    /// Reports an event.
    pub async fn event(&self, kind: &str, file: &str, message: &str) {
        self.send(Body::Event(AgentEvent {
            at_ms: 0,
            kind: h264_proto::v1::EventKind::from_name(kind).into(),
            file: file.into(),
            stage: h264_proto::v1::JobStage::Transcode.into(),
            nack_stage: 0,
            message: message.into(),
            generation: 0,
        }))
        .await;
    }
}

fn hello_or(id: String, first: AgentMessage) -> (String, AgentMessage) {
    (id, first)
}

impl FakeAgent {
    /// The next message or the session's error, within `within` (`Ok(None)`: nothing came).
    pub async fn try_next(
        &mut self,
        within: Duration,
    ) -> Result<Option<controller_message::Body>, Status> {
        match tokio::time::timeout(within, self.rx.message()).await {
            Ok(Ok(m)) => Ok(m.and_then(|m| m.body)),
            Ok(Err(status)) => Err(status),
            Err(_) => Ok(None),
        }
    }
}
