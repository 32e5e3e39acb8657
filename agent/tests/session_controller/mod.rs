//! A test controller for the agent's session tests: a real `AgentSessions` gRPC server on
//! loopback (the generated tonic service), with its own runtime so that it can be killed (every
//! task and socket dropped, as when the process dies) and started again on the same port. It
//! serves plaintext, or TLS with a certificate from a fleet PKI made by `h264_trust::pki`,
//! requiring client certificates from that PKI's CA ([`TestController::start_tls`]). It
//! records every message agents send (and the identity each session's certificate names) and
//! lets a test push assignments and commands to the latest session. Plus helpers: revisions as
//! a controller makes them, signed or not, Ping, and the CRF an output was encoded with.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use h264_config::fleet::parse_fleet_manifest;
use h264_config::sha256_hex;
use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::agent_message::Body;
use h264_proto::v1::agent_sessions_server::{AgentSessions, AgentSessionsServer};
use h264_proto::v1::{
    controller_message, AgentCommand, AgentEvent, AgentMessage, AgentStats, Assignment,
    AssignmentAck, AssignmentNack, ControllerMessage, Hello, PingReply, PingRequest,
};
use h264_testkit::wait::wait_for;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use h264_proto::v1::agent_command;

type Outbox = mpsc::Sender<Result<ControllerMessage, Status>>;

/// Everything the agents said, by session (in the order they connected).
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Each session's messages, hello first.
    pub sessions: Vec<Vec<AgentMessage>>,
    /// Each session's client identity (the SAN URI of its certificate), over TLS.
    pub peers: Vec<Option<String>>,
}

impl Log {
    fn bodies(&self) -> impl Iterator<Item = &Body> {
        self.sessions
            .iter()
            .flatten()
            .filter_map(|m| m.body.as_ref())
    }

    /// Every hello, in order.
    pub fn hellos(&self) -> Vec<Hello> {
        self.bodies()
            .filter_map(|b| match b {
                Body::Hello(h) => Some(h.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every stats message, in order.
    pub fn stats(&self) -> Vec<AgentStats> {
        self.bodies()
            .filter_map(|b| match b {
                Body::Stats(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every job event, in order.
    pub fn events(&self) -> Vec<AgentEvent> {
        self.bodies()
            .filter_map(|b| match b {
                Body::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The ACK or NACK for `nonce`.
    pub fn reply(&self, nonce: &str) -> Option<Reply> {
        self.bodies().find_map(|b| match b {
            Body::Ack(a) if a.nonce == nonce => Some(Reply::Ack(a.clone())),
            Body::Nack(n) if n.nonce == nonce => Some(Reply::Nack(n.clone())),
            _ => None,
        })
    }
}

/// An agent's answer to an assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ack(AssignmentAck),
    Nack(AssignmentNack),
}

impl Reply {
    /// The ACK; panics on a NACK.
    pub fn ack(self) -> AssignmentAck {
        match self {
            Reply::Ack(a) => a,
            Reply::Nack(n) => panic!("expected an ACK, got {n:?}"),
        }
    }

    /// The NACK; panics on an ACK.
    pub fn nack(self) -> AssignmentNack {
        match self {
            Reply::Nack(n) => n,
            Reply::Ack(a) => panic!("expected a NACK, got {a:?}"),
        }
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Log>,
    outboxes: Mutex<Vec<Outbox>>,
}

struct Service {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AgentSessions for Service {
    type SessionStream = ReceiverStream<Result<ControllerMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = request
            .peer_certs()
            .and_then(|certs| certs.first().cloned())
            .and_then(|der| h264_trust::Identity::from_cert_der(der.as_ref()))
            .map(|identity| identity.uri());
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let index = {
            let mut log = self.shared.log.lock().unwrap();
            log.sessions.push(Vec::new());
            log.peers.push(peer);
            self.shared.outboxes.lock().unwrap().push(tx);
            log.sessions.len() - 1
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                shared.log.lock().unwrap().sessions[index].push(message);
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The test controller: a real gRPC server on `127.0.0.1`.
pub struct TestController {
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestController {
    /// Starts on a free port.
    pub fn start() -> TestController {
        Self::start_on(0)
    }

    /// Starts on `port` (0: a free one); a restarted controller remembers nothing.
    pub fn start_on(port: u16) -> TestController {
        Self::start_with(port, None)
    }

    /// Starts on a free port with TLS: the server certificate `pki/127.0.0.1.crt` (and key),
    /// client certificates required and checked against `pki/ca.crt`.
    pub fn start_tls(pki: &std::path::Path) -> TestController {
        let read = |name: &str| std::fs::read(pki.join(name)).unwrap();
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                read("127.0.0.1.crt"),
                read("127.0.0.1.key"),
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(read("ca.crt")));
        Self::start_with(0, Some(tls))
    }

    fn start_with(port: u16, tls: Option<tonic::transport::ServerTlsConfig>) -> TestController {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let service = AgentSessionsServer::new(Service {
            shared: shared.clone(),
        });
        let mut builder = tonic::transport::Server::builder();
        let secure = tls.is_some();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).unwrap();
        }
        runtime.spawn(
            builder
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        TestController {
            addr,
            tls: secure,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://` over TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops as a killed process does: every connection drops at once.
    pub fn kill(mut self) -> u16 {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        self.addr.port()
    }

    /// A copy of what the agents said so far.
    pub fn log(&self) -> Log {
        self.shared.log.lock().unwrap().clone()
    }

    /// Polls the log until `check` finds what it wants.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Log) -> Option<T>,
    ) -> T {
        wait_for(what, timeout, Duration::from_millis(20), || {
            check(&self.log())
        })
        .unwrap_or_else(|e| panic!("{e}; the test controller saw {:#?}", self.log()))
    }

    /// Waits for the `n`-th hello (1-based) and returns it.
    pub fn wait_hello(&self, n: usize, timeout: Duration) -> Hello {
        self.wait(&format!("hello #{n}"), timeout, |log| {
            log.hellos().get(n - 1).cloned()
        })
    }

    fn push(&self, message: controller_message::Body) {
        let outbox = self
            .shared
            .outboxes
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no agent has connected");
        let runtime = self.runtime.as_ref().expect("the controller is running");
        runtime
            .block_on(outbox.send(Ok(ControllerMessage {
                body: Some(message),
            })))
            .expect("the session is open");
    }

    /// Sends an assignment to the latest session and waits for its ACK or NACK.
    pub fn assign(&self, assignment: Assignment) -> Reply {
        let nonce = assignment.nonce.clone();
        self.push(controller_message::Body::Assignment(assignment));
        self.wait(
            &format!("the reply to {nonce}"),
            Duration::from_secs(20),
            |log| log.reply(&nonce),
        )
    }

    /// Sends a command to the latest session.
    pub fn command(&self, command: agent_command::Body) {
        self.push(controller_message::Body::Command(AgentCommand {
            body: Some(command),
        }));
    }
}

impl Drop for TestController {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An assignment of the spec in a fleet manifest's `spec:` block (YAML), with the canonical
/// bytes and SHA256 a controller would send.
pub fn revision(generation: u64, spec_yaml: &str) -> Assignment {
    let manifest = format!(
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: test}}\nspec:\n{spec_yaml}"
    );
    let loaded = parse_fleet_manifest(&manifest, None).unwrap_or_else(|e| panic!("{e}"));
    raw_revision(generation, loaded.manifest.spec.canonical_json().as_bytes())
}

static NONCES: AtomicU64 = AtomicU64::new(1);

/// An assignment of exactly `bytes`, correctly hashed, with a nonce of its own.
pub fn raw_revision(generation: u64, bytes: &[u8]) -> Assignment {
    Assignment {
        generation,
        sha256: sha256_hex(bytes),
        canonical: bytes.to_vec(),
        nonce: format!("g{generation}-n{}", NONCES.fetch_add(1, Ordering::Relaxed)),
        rollback: false,
        traceparent: String::new(),
        signature: String::new(),
        signer_key: String::new(),
    }
}

/// `a` signed by `key`, as `fleetctl apply --sign-key` signs a revision.
pub fn signed(a: Assignment, key: &h264_trust::SecretKey) -> Assignment {
    Assignment {
        signature: key.sign(a.generation, &a.sha256),
        signer_key: key.public().to_string(),
        ..a
    }
}

/// The agent's Ping.
pub fn ping(control: &str) -> PingReply {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = AgentControlClient::connect(format!("http://{control}"))
            .await
            .unwrap();
        client.ping(PingRequest {}).await.unwrap().into_inner()
    })
}

/// The CRF in the x264 settings an MP4 carries (`crf=23.0` in its encoder SEI).
pub fn x264_crf(mp4: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(mp4).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let settings = &text[text.find("x264 - core")?..];
    let crf = &settings[settings.find(" crf=")? + 5..];
    Some(crf.split_whitespace().next()?.to_string())
}
