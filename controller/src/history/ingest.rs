//! History ingest: the records agents send over their sessions, checked, written in batches,
//! and ACKed once on disk; and the retention pass.
//!
//! # Theory of operation
//! A session hands each `HistoryBatch` to [`HistorySink::offer`], which never waits: the batch
//! goes into a bounded channel, or, when the writer is behind, is dropped (not ACKed, so the
//! agent keeps it and sends it again later). Session fan-out thus never waits on the disk.
//! One writer task takes what is queued (up to [`MAX_PER_WRITE`] records), writes it in one
//! transaction on the blocking pool (`INSERT OR IGNORE`: a record delivered twice is stored
//! once), then offers each session its ACK through that session's own small channel (a full
//! channel drops the ACK; the agent resends, and the store ignores the copy). A failed write
//! ACKs nothing. Every [`PRUNE_EVERY`] (and at start) the writer deletes the attempts older
//! than `keep`. Invalid records (an id that is not printable, an unknown outcome) are ACKed
//! and dropped with a warning, so an agent cannot wedge its outbox on them.

use std::sync::Arc;
use std::time::Duration;

use h264_proto::v1::{EventKind, HistoryBatch, JobAttempt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::model::now_ms;
use crate::registry::bounded;
use crate::store::Store;

/// Batches queued for the writer at most.
const QUEUE: usize = 4096;
/// Records written per transaction at most.
const MAX_PER_WRITE: usize = 5000;
/// Records one batch from an agent may carry.
pub const MAX_BATCH: usize = 500;
/// How often old history is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The longest id, stage, outcome, mode or rung kept.
const MAX_SHORT: usize = 128;
/// The longest file name or message kept.
const MAX_TEXT: usize = 4096;
/// Stage timings a record may carry.
const MAX_STAGES: usize = 16;
/// Whether `outcome` is one an attempt may have: an event kind of the protocol
/// (`h264_proto::names`, the spelling the agent's journal and events use) other than `nack`.
/// The record carries it as a string, not the enum: a string field cannot become an enum on
/// the wire (length-delimited against varint) without making every record still waiting in an
/// older agent's outbox undecodable.
fn known_outcome(outcome: &str) -> bool {
    !matches!(
        EventKind::from_name(outcome),
        EventKind::Unspecified | EventKind::Nack
    )
}

/// ACKs for one session: the agent's ids of the records stored.
pub type AckSender = mpsc::Sender<Vec<String>>;

struct Batch {
    agent: String,
    records: Vec<JobAttempt>,
    rejected: Vec<String>,
    ack: AckSender,
}

/// Where sessions hand history records (cheap to clone).
#[derive(Debug, Clone)]
pub struct HistorySink {
    tx: mpsc::Sender<Batch>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("agent", &self.agent).finish()
    }
}

/// A record fit to store (strings bounded, outcome known, time sane), or why not.
pub fn check_record(mut r: JobAttempt, now: i64) -> Result<JobAttempt, String> {
    if r.id.is_empty() || r.id.len() > MAX_SHORT || !r.id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "record id `{}` is not 1-{MAX_SHORT} printable ASCII characters",
            r.id.escape_debug()
        ));
    }
    if !known_outcome(&r.outcome) {
        return Err(format!(
            "record {}: unknown outcome `{}`",
            r.id,
            r.outcome.escape_debug()
        ));
    }
    if r.stage_secs.len() > MAX_STAGES {
        return Err(format!(
            "record {}: more than {MAX_STAGES} stage timings",
            r.id
        ));
    }
    // A clock far ahead would keep the record past retention and skew every window.
    r.ended_at_ms = r.ended_at_ms.clamp(0, now + 60_000);
    r.file = bounded(r.file, MAX_TEXT);
    r.message = bounded(r.message, MAX_TEXT);
    for s in [
        &mut r.failed_stage,
        &mut r.rung,
        &mut r.mode,
        &mut r.captions,
    ] {
        *s = bounded(std::mem::take(s), MAX_SHORT);
    }
    r.stage_secs = r
        .stage_secs
        .into_iter()
        .map(|(k, v)| (bounded(k, MAX_SHORT), v))
        .collect();
    Ok(r)
}

impl HistorySink {
    /// Starts the writer; it prunes what is older than `keep` and stops at `shutdown` (after
    /// writing what is queued).
    pub fn start(
        store: Arc<Store>,
        keep: Duration,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, keep, rx, shutdown));
        (Self { tx }, task)
    }

    /// Queues `batch` from `agent` without waiting; false when the writer is behind (the
    /// batch is dropped, the agent sends it again).
    pub fn offer(&self, agent: &str, batch: HistoryBatch, ack: AckSender) -> bool {
        let now = now_ms();
        let mut records = Vec::with_capacity(batch.records.len().min(MAX_BATCH));
        let mut rejected = Vec::new();
        for mut r in batch.records.into_iter().take(MAX_BATCH) {
            r.agent_id = agent.to_owned();
            let id = r.id.clone();
            match check_record(r, now) {
                Ok(r) => records.push(r),
                Err(why) => {
                    tracing::warn!(agent, "history record dropped: {why}");
                    if id.len() <= MAX_SHORT {
                        rejected.push(id);
                    }
                }
            }
        }
        self.tx
            .try_send(Batch {
                agent: agent.to_owned(),
                records,
                rejected,
                ack,
            })
            .is_ok()
    }
}

async fn run(
    store: Arc<Store>,
    keep: Duration,
    mut rx: mpsc::Receiver<Batch>,
    shutdown: CancellationToken,
) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => None,
            _ = prune.tick() => { prune_old(&store, keep).await; continue; }
            b = rx.recv() => b,
        };
        let Some(first) = first else {
            // Shutdown: write what is queued, then stop.
            rx.close();
            let mut rest = Vec::new();
            while let Ok(b) = rx.try_recv() {
                rest.push(b);
            }
            if !rest.is_empty() {
                write(&store, rest).await;
            }
            return;
        };
        let mut batches = vec![first];
        let mut n = batches[0].records.len();
        while n < MAX_PER_WRITE {
            match rx.try_recv() {
                Ok(b) => {
                    n += b.records.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        write(&store, batches).await;
    }
}

async fn write(store: &Arc<Store>, batches: Vec<Batch>) {
    let rows: Vec<(String, JobAttempt)> = batches
        .iter()
        .flat_map(|b| b.records.iter().map(|r| (b.agent.clone(), r.clone())))
        .collect();
    let s = store.clone();
    let written = tokio::task::spawn_blocking(move || s.insert_history(&rows)).await;
    match written {
        Ok(Ok(added)) => tracing::debug!(added, batches = batches.len(), "history written"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot write job history; the agents will send it again");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "the history write failed");
            return;
        }
    }
    for b in batches {
        let mut ids: Vec<String> = b.records.into_iter().map(|r| r.id).collect();
        ids.extend(b.rejected);
        let _ = b.ack.try_send(ids);
    }
}

async fn prune_old(store: &Arc<Store>, keep: Duration) {
    let before = now_ms().saturating_sub(keep.as_millis().min(i64::MAX as u128) as i64);
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.prune_history(before)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(deleted = n, keep = ?keep, "old job history pruned"),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot prune the job history"),
        Err(e) => tracing::error!(error = %e, "the history prune failed"),
    }
}
