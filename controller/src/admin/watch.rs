//! `WatchFleet`: the whole fleet first, then again after every change, at most four times a
//! second.
//!
//! # Theory of operation
//! One task per watcher: it marks the registry's change counter seen, builds a snapshot (one
//! lock, no events), sends it into a channel of two, sleeps out the throttle interval, then
//! waits for the next change. Changes during the sleep are folded into the next snapshot. The
//! task ends when the watcher goes away (the send fails) or on shutdown.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use h264_proto::v1::FleetSnapshot;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::model::now_ms;
use crate::registry::Registry;
use crate::selector::Selector;

/// The shortest time between two snapshots.
pub const THROTTLE: Duration = Duration::from_millis(250);

/// The response stream.
pub type FleetStream = Pin<Box<dyn Stream<Item = Result<FleetSnapshot, Status>> + Send>>;

/// Starts the watcher's task and returns its stream.
pub fn start(registry: Arc<Registry>, shutdown: CancellationToken) -> FleetStream {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut changes = registry.subscribe();
        let all = Selector::default();
        loop {
            changes.borrow_and_update();
            let snapshot = FleetSnapshot {
                at_ms: now_ms(),
                agents: registry.agents(&all, false),
            };
            tokio::select! {
                r = tx.send(Ok(snapshot)) => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(THROTTLE) => {}
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
