//! The span export queue: a bounded channel between the program and one export task.
//!
//! # Concurrency
//! [`BoundedProcessor::on_end`] runs on whatever thread ends a span; it only `try_send`s the
//! finished span into a bounded channel and, when the channel is full (the collector is slow or
//! down), drops the span and counts it. It never waits, so an unreachable collector can never
//! slow the pipeline. One tokio task owns the exporter: it collects spans into batches (up to
//! [`BATCH`] spans, or whatever arrived within [`LINGER`]) and exports each batch under the
//! export timeout; a failed or timed-out batch is counted as dropped. A flush request is a
//! message in the same channel, so it is answered after every span sent before it was handled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

/// The most spans in one export.
pub const BATCH: usize = 512;
/// How long a partial batch waits for more spans.
pub const LINGER: Duration = Duration::from_millis(500);

enum Msg {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

/// Counters shared by the processor, its task and the metrics.
#[derive(Debug, Default)]
pub struct SpanCounters {
    /// Spans handed to the exporter and accepted.
    pub exported: AtomicU64,
    /// Spans dropped: queue full, export failed or timed out.
    pub dropped: AtomicU64,
}

/// A [`SpanProcessor`] with a bounded queue and a tokio export task.
#[derive(Debug)]
pub struct BoundedProcessor {
    tx: mpsc::Sender<Msg>,
    counters: Arc<SpanCounters>,
}

/// Asks the export task to flush; cloneable.
#[derive(Debug, Clone)]
pub struct Flusher {
    tx: mpsc::Sender<Msg>,
}

impl Flusher {
    /// Waits until every span queued before this call was exported (or dropped), at most
    /// `timeout`; returns whether it finished in time.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = oneshot::channel();
        let ask = async {
            self.tx.send(Msg::Flush(done)).await.ok()?;
            wait.await.ok()
        };
        matches!(tokio::time::timeout(timeout, ask).await, Ok(Some(())))
    }
}

impl BoundedProcessor {
    /// Starts the export task on the current tokio runtime (call from inside one).
    pub fn start<E>(
        exporter: E,
        queue: usize,
        export_timeout: Duration,
    ) -> (Self, Flusher, Arc<SpanCounters>)
    where
        E: SpanExporter + 'static,
    {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let counters = Arc::new(SpanCounters::default());
        tokio::spawn(run(exporter, rx, export_timeout, counters.clone()));
        (
            Self {
                tx: tx.clone(),
                counters: counters.clone(),
            },
            Flusher { tx },
            counters,
        )
    }
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(Msg::Span(Box::new(span))).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A no-op: flushing waits on the export task, which a synchronous caller on the runtime
    /// would block. [`Flusher::flush`] is the asynchronous flush.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

async fn run<E: SpanExporter>(
    exporter: E,
    mut rx: mpsc::Receiver<Msg>,
    timeout: Duration,
    counters: Arc<SpanCounters>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open {
        // Wait for the first message, then linger for more.
        match rx.recv().await {
            Some(Msg::Span(s)) => batch.push(*s),
            Some(Msg::Flush(done)) => flushes.push(done),
            None => open = false,
        }
        if flushes.is_empty() && open {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Span(s))) => batch.push(*s),
                    Ok(Some(Msg::Flush(done))) => {
                        flushes.push(done);
                        break;
                    }
                    Ok(None) => {
                        open = false;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            let n = batch.len() as u64;
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            match tokio::time::timeout(timeout, exporter.export(spans)).await {
                Ok(Ok(())) => counters.exported.fetch_add(n, Ordering::Relaxed),
                _ => counters.dropped.fetch_add(n, Ordering::Relaxed),
            };
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = exporter.shutdown_with_timeout(timeout);
}
