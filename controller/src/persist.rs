//! The write-behind persister: saves what changed in the registry to the store in batches.
//!
//! # Theory of operation
//! One task owns the writing. Every `INTERVAL`, or at once when asked through [`Persister::flush`],
//! it takes the registry's dirty agents and new events ([`Registry::take_batch`]) and writes
//! them in one transaction on the blocking pool. So a burst of 20,000 stats messages costs one
//! row per agent per interval, and an apply or assign, which flushes before it answers, is
//! durable when fleetctl hears back. A failed write puts the batch back and is retried next
//! time. On shutdown it writes what is left once more and stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::store::{Store, StoreError};

/// How often dirty state is saved when nobody asks sooner.
const INTERVAL: Duration = Duration::from_millis(500);

type Waiter = oneshot::Sender<Result<(), String>>;

/// A handle to ask the persister for a flush.
#[derive(Debug, Clone)]
pub struct Persister {
    requests: mpsc::Sender<Waiter>,
}

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// The write failed.
    #[error("cannot save the controller's state: {0}")]
    Store(String),
    /// The persister has stopped (shutdown).
    #[error("the controller is shutting down")]
    Stopped,
}

impl Persister {
    /// Starts the persister task; it stops (after a last flush) when `shutdown` is cancelled.
    pub fn start(
        registry: Arc<Registry>,
        store: Arc<Store>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(run(registry, store, rx, shutdown));
        (Self { requests: tx }, task)
    }

    /// Saves everything changed so far; returns when it is on disk.
    pub async fn flush(&self) -> Result<(), FlushError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .await
            .map_err(|_| FlushError::Stopped)?;
        rx.await
            .map_err(|_| FlushError::Stopped)?
            .map_err(FlushError::Store)
    }
}

async fn run(
    registry: Arc<Registry>,
    store: Arc<Store>,
    mut requests: mpsc::Receiver<Waiter>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut waiters = Vec::new();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Some(w) = requests.recv() => waiters.push(w),
        }
        // Everyone who asked meanwhile is served by the same write.
        while let Ok(w) = requests.try_recv() {
            waiters.push(w);
        }
        let result = save(&registry, &store).await.map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot save the controller's state; retrying");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
    if let Err(e) = save(&registry, &store).await {
        tracing::error!(error = %e, "cannot save the controller's state at shutdown");
    }
}

async fn save(registry: &Arc<Registry>, store: &Arc<Store>) -> Result<(), StoreError> {
    let batch = registry.take_batch();
    if batch.is_empty() {
        return Ok(());
    }
    let store = store.clone();
    let (batch, result) = tokio::task::spawn_blocking(move || {
        let r = store.save(&batch);
        (batch, r)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    if result.is_err() {
        registry.restore_batch(batch);
    }
    result
}
