//! The delivery task and its passes over the queue.
//!
//! # Theory of operation
//! One task per [`Alerter`](crate::Alerter) sleeps until it is woken (a message was queued),
//! the earliest message is due, or it is stopped; then it runs a pass. Passes hold `pass_lock`,
//! so the task and [`Delivery::flush`] never send the same message twice at once.
//!
//! Two backoffs, both exponential with jitter between `retry_backoff` and `retry_backoff_max`:
//! - the **gate** is about the server: a transient failure (no connection, timeout, 4xx,
//!   authentication refused) ends the pass and closes the gate for `backoff(failures in a
//!   row)`; the failed message's next attempt is the gate's opening, persisted in its file, so
//!   the schedule survives a restart. Every message queued meanwhile is due when the gate
//!   opens, so all of them go out as soon as the server is back. A success reopens the gate.
//! - a message the server rejects for good (5xx) backs off on its own, `backoff(its
//!   attempts)`, and the pass goes on with the next message: one bad message cannot hold the
//!   others back.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use h264_config::agent::Email;
use h264_support::Backoff;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::queue::{unix_ms, Message, Queue};
use crate::smtp::{self, SmtpError};

/// Which messages a pass sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Those that are due, when the gate is open.
    Due,
    /// All of them, now (the last pass at shutdown).
    All,
}

#[derive(Debug, Default)]
struct Gate {
    failures: u32,
    until: Option<Instant>,
}

/// What the delivery task and `flush` share.
#[derive(Debug)]
pub(super) struct Delivery {
    pub email: Email,
    pub backoff: Backoff,
    pub queue: std::sync::Arc<Queue>,
    /// The EHLO name.
    pub hello: String,
    pub wake: Notify,
    gate: Mutex<Gate>,
    pass_lock: tokio::sync::Mutex<()>,
}

impl Delivery {
    pub fn new(
        email: Email,
        backoff: Backoff,
        queue: std::sync::Arc<Queue>,
        hello: String,
    ) -> Delivery {
        Delivery {
            email,
            backoff,
            queue,
            hello,
            wake: Notify::new(),
            gate: Mutex::new(Gate::default()),
            pass_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The delivery task: passes until `stop`.
    pub async fn run(self: std::sync::Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = self.wait();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = sleep(wait) => {}
            }
            if stop.is_cancelled() {
                break;
            }
            self.pass(Mode::Due, &stop).await;
        }
        tracing::debug!(depth = self.queue.len(), "alert delivery task stopped");
    }

    /// How long until the next pass can do something: none while nothing is queued. Capped at
    /// `retry_backoff_max`, as the schedule in the files follows the wall clock.
    fn wait(&self) -> Option<Duration> {
        let due_ms = self.queue.next_due_ms()?;
        let now_ms = unix_ms(SystemTime::now());
        let mut wait = Duration::from_millis(due_ms.saturating_sub(now_ms));
        if let Some(until) = self.gate().until {
            wait = wait.max(until.saturating_duration_since(Instant::now()));
        }
        Some(wait.min(self.backoff.max()))
    }

    /// One pass over the queue (see the module's doc).
    pub async fn pass(&self, mode: Mode, stop: &CancellationToken) {
        let _pass = self.pass_lock.lock().await;
        if mode == Mode::Due && self.gate().until.is_some_and(|u| Instant::now() < u) {
            return;
        }
        let now_ms = match mode {
            Mode::Due => unix_ms(SystemTime::now()),
            Mode::All => u64::MAX,
        };
        let due = self.queue.due(now_ms);
        let Some((first, first_message)) = due.first() else {
            return;
        };
        let transport = match smtp::transport(&self.email, &self.hello) {
            Ok(t) => t,
            Err(error) => return self.transient(first, first_message, &error),
        };
        for (name, message) in &due {
            if mode == Mode::Due && stop.is_cancelled() {
                break;
            }
            match smtp::send(&transport, &self.email, message).await {
                Ok(()) => {
                    self.queue.delivered(name);
                    *self.gate() = Gate::default();
                    tracing::info!(
                        subject = message.subject,
                        attempts = message.attempts + 1,
                        depth = self.queue.len(),
                        "alert e-mail delivered"
                    );
                }
                Err(error) if error.is_message_specific() => {
                    let attempts = message.attempts + 1;
                    let delay = self.backoff.delay(attempts);
                    let next = unix_ms(SystemTime::now() + delay);
                    self.queue.failed(name, attempts, next, error.to_string());
                    tracing::error!(subject = message.subject, attempts, %error,
                        retry_in = %humantime::format_duration(round(delay)),
                        "alert e-mail rejected by the server; it stays queued");
                }
                Err(error) => return self.transient(name, message, &error),
            }
        }
    }

    /// The server could not take `message`: closes the gate and schedules the message for its
    /// opening.
    fn transient(&self, name: &str, message: &Message, error: &SmtpError) {
        let delay = {
            let mut gate = self.gate();
            gate.failures += 1;
            let delay = self.backoff.delay(gate.failures);
            gate.until = Some(Instant::now() + delay);
            delay
        };
        let attempts = message.attempts + 1;
        let next = unix_ms(SystemTime::now() + delay);
        self.queue.failed(name, attempts, next, error.to_string());
        tracing::warn!(subject = message.subject, attempts, %error,
            retry_in = %humantime::format_duration(round(delay)), depth = self.queue.len(),
            "alert e-mail not delivered; it stays queued");
    }
}

async fn sleep(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
