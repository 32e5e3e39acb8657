//! `h264-fleet-load`: the controller's load benchmark (benches/README.md). It starts the real
//! `h264-controller` binary (from beside this one, or `--controller-bin`), opens `--agents`
//! simulated agent sessions from this one process (one HTTP/2 connection each, as real agents
//! have), and measures:
//!
//! 1. memory: the controller's RSS (from `/proc/PID/status`) before and after the sessions
//!    connect, divided by the number of sessions;
//! 2. push fan-out: for each of `--rounds` applies, the time from sending `Apply` to each
//!    agent's ACK (every agent checks the SHA256 of the bytes before it ACKs): p50, p99, max,
//!    and when the controller itself counted the last ACK;
//! 3. rollback: for each of `--rollback-rounds`, a revision whose jobs all fail is rolled out to
//!    every agent (each agent ACKs it and reports one failed job); the failure-rate gate fails
//!    and the controller assigns the stable revision to every agent at once. Measured: from the
//!    failed gate (its timestamp in the rollout status) to each agent's ACK of the stable
//!    revision: p50, p99, max; with `--history-per-second R`, the fan-out rounds run again
//!    while every agent sends R job history records a second (one per message, at random
//!    times), side by side with the rounds without; then how many records were offered and
//!    stored;
//! 4. stats ingest: every agent sends stats as fast as the session's flow control lets it for
//!    `--stats-seconds`, then a marker; the rate is every message sent divided by the time until
//!    the controller holds every agent's marker (so nothing still queued is counted as done).
//!
//! With `--tls` the controller requires client certificates: a fleet CA, the controller's
//! certificate and one certificate per simulated agent are made first (with the trust crate's
//! PKI), and every session is TLS with its own certificate, as real agents' are. With `--signed`
//! every revision is signed (a dry run for the generation, then the signed apply, as `fleetctl
//! apply --sign-key` does) and every simulated agent verifies the signature before it ACKs.
//! `--connect-parallel N` bounds how many sessions connect at once (default 64); a value of
//! `--agents` or more is a connect storm. The admin API is called with the controller's admin
//! token.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use h264_proto::v1::agent_message::Body;
use h264_proto::v1::agent_sessions_client::AgentSessionsClient;
use h264_proto::v1::controller_message;
use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{
    AgentEvent, AgentMessage, AgentStats, ApplyRequest, AssignmentAck, Counters, EventKind, Hello,
    JobStage, ListAgentsRequest, ListRevisionsRequest, RolloutRequest, RolloutStart,
    RolloutStatusRequest, RunningJob, StatsReply, Volume,
};
use h264_trust::pki::{self, Subject};
use h264_trust::{PublicKey, SecretKey};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// The admin API with the controller's token.
type Admin = FleetAdminClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer TOKEN`.
#[derive(Clone)]
struct Bearer(tonic::metadata::AsciiMetadataValue);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

/// What the run needs for TLS and signatures (none of it without `--tls`/`--signed`).
struct Trust {
    /// The PKI folder: `ca.crt`, `127.0.0.1.crt|key`, `load-NNNNN.crt|key`.
    pki: Option<PathBuf>,
    key: Option<SecretKey>,
    trusted: Option<PublicKey>,
}

impl Trust {
    fn tls(&self, agent: Option<&str>) -> Result<Option<ClientTlsConfig>> {
        let Some(pki) = &self.pki else {
            return Ok(None);
        };
        let files = agent.map(|a| (pki.join(format!("{a}.crt")), pki.join(format!("{a}.key"))));
        Ok(Some(h264_trust::tls::client_config(
            &pki.join("ca.crt"),
            files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            "127.0.0.1",
        )?))
    }
}

/// Load-tests an h264-controller with simulated agent sessions.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Simulated agents (one session and one connection each).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Applies to time (each a new revision pushed to every agent).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Rollbacks to time (a failing revision rolled out to every agent, then rolled back).
    #[arg(long, default_value_t = 3)]
    rollback_rounds: usize,
    /// How long every agent sends stats as fast as it can.
    #[arg(long, default_value_t = 10)]
    stats_seconds: u64,
    /// The controller binary (default: `h264-controller` beside this program).
    #[arg(long)]
    controller_bin: Option<PathBuf>,
    /// Pin the controller to these CPUs (`taskset -c`), e.g. `0,1`.
    #[arg(long)]
    cpus: Option<String>,
    /// TLS with client certificates for every session (module docs).
    #[arg(long)]
    tls: bool,
    /// Sign every revision; simulated agents verify before they ACK.
    #[arg(long)]
    signed: bool,
    /// Sessions connecting at once at most (`--agents` or more: a connect storm).
    #[arg(long, default_value_t = 64)]
    connect_parallel: usize,
    /// Job history records each agent sends per second during a second series of fan-out
    /// rounds, measured beside the first (0: no history series).
    #[arg(long, default_value_t = 0.0)]
    history_per_second: f64,
}

/// The stats value that marks an agent's last stats message.
const MARKER: u64 = 999_999_999;

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match &args.controller_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder for this program")?
            .join("h264-controller"),
    };
    let state = std::env::temp_dir().join(format!("h264-fleet-load-{}", std::process::id()));
    let mut trust = Trust {
        pki: None,
        key: None,
        trusted: None,
    };
    let mut extra = Vec::new();
    if args.tls {
        let dir = state.with_extension("pki");
        let t0 = Instant::now();
        pki::init(&dir, "load fleet")?;
        pki::issue(&dir, &Subject::Server("127.0.0.1".into()))?;
        for i in 0..args.agents {
            pki::issue(&dir, &Subject::Agent(format!("load-{i:05}")))?;
        }
        println!(
            "PKI: a CA, the controller's and {} agent certificates made in {:.1?}",
            args.agents,
            t0.elapsed()
        );
        let f = |n: &str| dir.join(n).display().to_string();
        extra = vec![
            "--tls-cert".into(),
            f("127.0.0.1.crt"),
            "--tls-key".into(),
            f("127.0.0.1.key"),
            "--client-ca".into(),
            f("ca.crt"),
        ];
        trust.pki = Some(dir);
    }
    if args.signed {
        let key = SecretKey::generate();
        trust.trusted = Some(key.public());
        trust.key = Some(key);
    }
    let mut controller = Controller::start(&bin, &state, args.cpus.as_deref(), &extra)?;
    let result = bench(&args, &controller, Arc::new(trust)).await;
    if let Some(pki) = state
        .with_extension("pki")
        .exists()
        .then(|| state.with_extension("pki"))
    {
        let _ = std::fs::remove_dir_all(pki);
    }
    controller.stop();
    let _ = std::fs::remove_dir_all(&state);
    result
}

async fn bench(args: &Args, controller: &Controller, trust: Arc<Trust>) -> Result<()> {
    let url = format!(
        "{}://{}",
        if trust.pki.is_some() { "https" } else { "http" },
        controller.addr
    );
    let token = std::fs::read_to_string(controller.state.join("admin.token"))
        .context("the controller's admin.token")?;
    let mut admin = FleetAdminClient::with_interceptor(
        connect(&url, trust.tls(None)?).await?,
        Bearer(format!("Bearer {}", token.trim()).parse()?),
    );
    println!(
        "transport: {}; revisions {}",
        if trust.pki.is_some() {
            "TLS 1.3 with client certificates"
        } else {
            "plaintext"
        },
        if trust.key.is_some() {
            "signed (ed25519), verified by every agent"
        } else {
            "unsigned"
        }
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = controller.rss_kib()?;
    println!(
        "controller pid {} on {}, RSS before sessions: {} KiB",
        controller.pid(),
        controller.addr,
        rss_before
    );

    // Sessions.
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<(u64, Instant, i64)>();
    let bad = Arc::new(AtomicU64::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Idle);
    let sent = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(args.connect_parallel.max(1)));
    let (history_tx, history_rx) = watch::channel(0.0f64);
    let history_sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.agents {
        let agent = SimAgent {
            id: format!("load-{i:05}"),
            url: url.clone(),
            trust: trust.clone(),
            acks: acks_tx.clone(),
            phase: phase_rx.clone(),
            sent: sent.clone(),
            bad: bad.clone(),
            history: history_rx.clone(),
            history_sent: history_sent.clone(),
        };
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            agent.run(permit.ok()).await
        }));
    }
    let connected = wait_until(Duration::from_secs(120), || {
        let mut admin = admin.clone();
        let n = args.agents;
        async move {
            let agents = admin
                .list_agents(ListAgentsRequest::default())
                .await
                .ok()?
                .into_inner()
                .agents;
            (agents.iter().filter(|a| a.connected).count() == n).then_some(())
        }
    })
    .await;
    if connected.is_none() {
        bail!("not every session connected within 120 s");
    }
    println!(
        "{} sessions connected in {:.2?}",
        args.agents,
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = controller.rss_kib()?;
    let per = (rss_after.saturating_sub(rss_before)) as f64 / args.agents as f64;
    println!(
        "memory: RSS {rss_after} KiB with {} sessions: {per:.1} KiB per session",
        args.agents
    );

    // Fan-out: without history ingest, then (with --history-per-second) with it.
    let mut series = vec![(0.0, "")];
    if args.history_per_second > 0.0 {
        series.push((args.history_per_second, " with history ingest"));
    }
    for (rate, label) in series {
        let _ = history_tx.send(rate);
        let sent_before = history_sent.load(Ordering::Relaxed);
        let series_started = Instant::now();
        if rate > 0.0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let mut all = Vec::new();
        for round in 1..=args.rounds {
            let manifest = format!(
            "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: load\nspec:\n  transcode:\n    crf: {}\n",
            17 + round + if rate > 0.0 { args.rounds } else { 0 }
        );
            let t0 = Instant::now();
            let reply = apply(&mut admin, manifest, &trust).await?;
            let applied = t0.elapsed();
            let mut latencies = Vec::with_capacity(args.agents);
            while latencies.len() < args.agents {
                let (generation, at, _) =
                    tokio::time::timeout(Duration::from_secs(60), acks_rx.recv())
                        .await
                        .context("ACKs stopped coming")?
                        .context("ACK channel closed")?;
                if generation == reply.generation {
                    latencies.push(at.saturating_duration_since(t0));
                }
            }
            let seen = wait_until(Duration::from_secs(60), || {
                let mut admin = admin.clone();
                let (g, n) = (reply.generation, args.agents as u32);
                async move {
                    let revs = admin
                        .list_revisions(ListRevisionsRequest {})
                        .await
                        .ok()?
                        .into_inner()
                        .revisions;
                    revs.iter()
                        .any(|r| r.generation == g && r.acked == n)
                        .then_some(())
                }
            })
            .await;
            let counted = t0.elapsed();
            latencies.sort();
            println!(
            "fan-out{label} round {round}: generation {}, apply answered in {:.1?}; ACKs p50 {:.1?} p99 {:.1?} max {:.1?}; controller counted all ACKs by {:.1?}{}",
            reply.generation,
            applied,
            pct(&latencies, 0.50),
            pct(&latencies, 0.99),
            latencies[latencies.len() - 1],
            counted,
            if seen.is_none() { " (NOT all counted)" } else { "" }
        );
            all.extend(latencies);
        }
        all.sort();
        println!(
            "fan-out{label} over {} rounds x {} agents: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            args.rounds,
            args.agents,
            pct(&all, 0.50),
            pct(&all, 0.99),
            all[all.len() - 1]
        );
        if rate > 0.0 {
            let _ = history_tx.send(0.0);
            let n = history_sent.load(Ordering::Relaxed) - sent_before;
            let secs = series_started.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let stored = admin
                .report(h264_proto::v1::ReportRequest::default())
                .await?
                .into_inner()
                .total
                .unwrap_or_default()
                .attempts;
            println!(
            "history ingest: {n} records sent in {secs:.1} s ({:.0}/s offered) during the rounds; {stored} stored",
            n as f64 / secs
        );
        }
    }

    // Rollback.
    let mut all = Vec::new();
    for round in 1..=args.rollback_rounds {
        let stable = reply_generation(&mut admin).await?;
        let manifest = format!(
            "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: load\nspec:\n  transcode:\n    crf: {}\n  rollout:\n    steps: [{{canary: 1}}, {{pause: {{}}}}, {{percent: 100}}]\n    analysis: {{max_failure_rate: 0.05, min_jobs: {}, ack_deadline: 60s}}\n",
            40 + round,
            (args.agents / 2).max(1)
        );
        let next = admin
            .list_revisions(ListRevisionsRequest {})
            .await?
            .into_inner()
            .revisions
            .iter()
            .map(|r| r.generation)
            .max()
            .unwrap_or_default()
            + 1;
        bad.store(next, Ordering::SeqCst);
        let reply = apply(&mut admin, manifest, &trust).await?;
        if reply.generation != next {
            bail!("expected generation {next}, got {}", reply.generation);
        }
        // Every agent at once, then a soak: the failed jobs fail the gate during it.
        admin
            .rollout(RolloutRequest {
                verb: Some(Verb::Start(RolloutStart {
                    generation: reply.generation,
                    steps: "percent:100,pause:60s".into(),
                    ..RolloutStart::default()
                })),
            })
            .await?;
        let mut latencies = Vec::with_capacity(args.agents);
        let mut gate_ms = None;
        while latencies.len() < args.agents {
            let (generation, _, wall) =
                tokio::time::timeout(Duration::from_secs(60), acks_rx.recv())
                    .await
                    .context("ACKs of the stable revision stopped coming")?
                    .context("ACK channel closed")?;
            if generation != stable {
                continue;
            }
            let gate = match gate_ms {
                Some(g) => g,
                None => {
                    let s = admin
                        .rollout(RolloutRequest {
                            verb: Some(Verb::Status(RolloutStatusRequest {})),
                        })
                        .await?
                        .into_inner();
                    let g = s
                        .gates
                        .iter()
                        .rev()
                        .find(|g| !g.passed)
                        .context("a rollback without a failed gate")?;
                    println!(
                        "rollback round {round}: phase {}, gate `{}` failed: {} (threshold {})",
                        s.phase().name(),
                        g.gate,
                        g.measured,
                        g.threshold
                    );
                    gate_ms = Some(g.at_ms);
                    g.at_ms
                }
            };
            latencies.push(Duration::from_millis(
                wall.saturating_sub(gate).max(0) as u64
            ));
        }
        latencies.sort();
        println!(
            "rollback round {round}: {} agents back on generation {stable}: from the failed gate to the ACK p50 {:.1?} p99 {:.1?} max {:.1?}",
            latencies.len(),
            pct(&latencies, 0.50),
            pct(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
        all.extend(latencies);
    }
    if !all.is_empty() {
        all.sort();
        println!(
            "rollback over {} rounds x {} agents: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
            args.rollback_rounds,
            args.agents,
            pct(&all, 0.50),
            pct(&all, 0.99),
            all[all.len() - 1]
        );
    }

    // Stats ingest.
    let t0 = Instant::now();
    phase_tx.send(Phase::Stats)?;
    tokio::time::sleep(Duration::from_secs(args.stats_seconds)).await;
    phase_tx.send(Phase::Marker)?;
    let marked = wait_until(Duration::from_secs(120), || {
        let mut admin = admin.clone();
        let n = args.agents;
        async move {
            let agents = admin
                .list_agents(ListAgentsRequest::default())
                .await
                .ok()?
                .into_inner()
                .agents;
            let done = agents
                .iter()
                .filter(|a| a.stats.as_ref().is_some_and(|s| s.queue_depth == MARKER))
                .count();
            (done == n).then_some(())
        }
    })
    .await;
    let elapsed = t0.elapsed();
    let total = sent.load(Ordering::Relaxed);
    if marked.is_none() {
        bail!("the controller did not take in every agent's last stats within 120 s");
    }
    println!(
        "stats ingest: {total} messages in {:.2?}: {:.0} messages/s",
        elapsed,
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "controller RSS after the stats phase: {} KiB",
        controller.rss_kib()?
    );
    phase_tx.send(Phase::Stop)?;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(())
}

/// The fleet-wide generation now (the newest revision every agent ACKed).
/// Applies `manifest`, signed when the run signs (a dry run tells the generation to sign).
async fn apply(
    admin: &mut Admin,
    manifest: String,
    trust: &Trust,
) -> Result<h264_proto::v1::ApplyReply> {
    let request = ApplyRequest {
        manifest,
        ..Default::default()
    };
    let Some(key) = &trust.key else {
        return Ok(admin.apply(request).await?.into_inner());
    };
    let plan = admin
        .apply(ApplyRequest {
            dry_run: true,
            ..request.clone()
        })
        .await?
        .into_inner();
    Ok(admin
        .apply(ApplyRequest {
            expected_generation: plan.would_be_generation,
            signature: key.sign(plan.would_be_generation, &plan.sha256),
            signer_key: key.public().to_string(),
            ..request
        })
        .await?
        .into_inner())
}

async fn reply_generation(admin: &mut Admin) -> Result<u64> {
    let agents = admin
        .list_agents(ListAgentsRequest::default())
        .await?
        .into_inner()
        .agents;
    let g = agents.first().map_or(0, |a| a.running_generation);
    if agents.iter().any(|a| a.running_generation != g) {
        bail!("the agents do not all run the same generation");
    }
    Ok(g)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await.is_some() {
            return Some(());
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn connect(url: &str, tls: Option<ClientTlsConfig>) -> Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint.connect().await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Stats,
    Marker,
    Stop,
}

struct SimAgent {
    id: String,
    url: String,
    acks: mpsc::UnboundedSender<(u64, Instant, i64)>,
    phase: watch::Receiver<Phase>,
    sent: Arc<AtomicU64>,
    /// A generation whose jobs fail: after its ACK the agent reports one failed job.
    bad: Arc<AtomicU64>,
    trust: Arc<Trust>,
    /// Job history records per second to send (0: none).
    history: watch::Receiver<f64>,
    history_sent: Arc<AtomicU64>,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn stats(queue_depth: u64) -> StatsReply {
    let counters = Counters {
        seen: 120,
        started: 118,
        converted: 110,
        failed: 3,
        retried: 5,
        bytes_in: 90_000_000_000,
        bytes_out: 30_000_000_000,
        mean_speed: 3.2,
        ..Default::default()
    };
    StatsReply {
        since_start: Some(counters),
        journal: Some(counters),
        queue_depth,
        running: vec![RunningJob {
            source: "/srv/incoming/news at 6.ts".into(),
            stage: JobStage::Transcode.into(),
            percent: 41.5,
            speed: 3.1,
            attempt: 1,
        }],
        paused: false,
        paused_by: String::new(),
        volumes: vec![Volume {
            path: "/srv/h264".into(),
            free_bytes: 400 << 30,
            total_bytes: 1000 << 30,
            level: "ok".into(),
        }],
        alert_queue_depth: 0,
        workers: 2,
        held_roots: Vec::new(),
    }
}

impl SimAgent {
    async fn run(self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Result<()> {
        let channel = connect(&self.url, self.trust.tls(Some(&self.id))?).await?;
        let mut client = AgentSessionsClient::new(channel);
        let (tx, rx) = mpsc::channel::<AgentMessage>(16);
        tx.send(AgentMessage {
            body: Some(Body::Hello(Hello {
                agent_id: self.id.clone(),
                agent_version: "load".into(),
                running_sha256: "local".into(),
                ..Default::default()
            })),
        })
        .await?;
        let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
        drop(permit);
        let mut phase = self.phase.clone();
        let stats_tx = tx.clone();
        let sent = self.sent.clone();
        // The stats sender runs beside the assignment loop.
        let mut stats_phase = self.phase.clone();
        let stats_task = tokio::spawn(async move {
            loop {
                if stats_phase.changed().await.is_err() {
                    return;
                }
                if *stats_phase.borrow() == Phase::Stats {
                    break;
                }
            }
            let mut n = 0u64;
            while *stats_phase.borrow() == Phase::Stats {
                n += 1;
                let msg = AgentMessage {
                    body: Some(Body::Stats(AgentStats {
                        at_ms: 0,
                        stats: Some(stats(n % 50)),
                        running_generation: 0,
                    })),
                };
                if stats_tx.send(msg).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            let last = AgentMessage {
                body: Some(Body::Stats(AgentStats {
                    at_ms: 0,
                    stats: Some(stats(MARKER)),
                    running_generation: 0,
                })),
            };
            if stats_tx.send(last).await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        // The history sender runs beside the assignment loop at the rate asked.
        let (history_tx, mut rate, history_sent, id) = (
            tx.clone(),
            self.history.clone(),
            self.history_sent.clone(),
            self.id.clone(),
        );
        let history_task = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let r = *rate.borrow_and_update();
                if r <= 0.0 {
                    if rate.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                // Agents start at random offsets, as real ones finish jobs at random times.
                let wait = Duration::from_secs_f64(rand::random::<f64>() / r);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    c = rate.changed() => if c.is_err() { return } else { continue },
                }
                n += 1;
                let record = h264_proto::v1::JobAttempt {
                    id: format!("{id}-{n}"),
                    ended_at_ms: wall_ms(),
                    file: format!("/recordings/{id}/show-{n}.ts"),
                    generation: 1,
                    outcome: "converted".into(),
                    attempt: 1,
                    mode: "encode".into(),
                    bytes_in: 2_000_000_000,
                    bytes_out: 700_000_000,
                    media_secs: 1800.0,
                    wall_secs: 600.0,
                    captions: "srt (ffmpeg)".into(),
                    ..Default::default()
                };
                let msg = AgentMessage {
                    body: Some(Body::History(h264_proto::v1::HistoryBatch {
                        records: vec![record],
                    })),
                };
                if history_tx.send(msg).await.is_err() {
                    return;
                }
                history_sent.fetch_add(1, Ordering::Relaxed);
            }
        });
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let Some(msg) = msg? else { break };
                    if let Some(controller_message::Body::Assignment(a)) = msg.body {
                        let hex: String = Sha256::digest(&a.canonical).iter().map(|b| format!("{b:02x}")).collect();
                        if hex != a.sha256 {
                            bail!("{}: assignment {} bytes do not match their SHA256", self.id, a.generation);
                        }
                        if let Some(trusted) = &self.trust.trusted {
                            if a.signer_key != trusted.to_string() {
                                bail!("{}: assignment {} is not signed by the trusted key", self.id, a.generation);
                            }
                            trusted.verify(a.generation, &a.sha256, &a.signature)?;
                        }
                        let generation = a.generation;
                        tx.send(AgentMessage { body: Some(Body::Ack(AssignmentAck {
                            generation, nonce: a.nonce, sha256: a.sha256,
                        }))}).await?;
                        let _ = self.acks.send((generation, Instant::now(), wall_ms()));
                        if generation == self.bad.load(Ordering::SeqCst) {
                            tx.send(AgentMessage { body: Some(Body::Event(AgentEvent {
                                at_ms: 0, kind: EventKind::Failed.into(), file: "load.ts".into(),
                                stage: JobStage::Transcode.into(), nack_stage: 0,
                                message: "load test".into(), generation,
                            }))}).await?;
                        }
                    }
                }
                r = phase.changed() => {
                    if r.is_err() || *phase.borrow() == Phase::Stop { break }
                }
            }
        }
        stats_task.abort();
        history_task.abort();
        Ok(())
    }
}

struct Controller {
    child: Option<Child>,
    addr: String,
    state: PathBuf,
}

impl Controller {
    fn start(
        bin: &PathBuf,
        state: &std::path::Path,
        cpus: Option<&str>,
        extra: &[String],
    ) -> Result<Self> {
        use std::io::BufRead;
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", c]).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected output from the controller: {line}"))?
            .to_owned();
        Ok(Self {
            child: Some(child),
            addr,
            state: state.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS in /proc/PID/status")
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
