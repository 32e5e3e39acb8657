//! [`Alerter`]: the handle a program raises alerts through (see the crate doc for the theory
//! of operation).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use h264_config::agent::Alerts;
use h264_support::Backoff;
use tokio_util::sync::CancellationToken;

use crate::dedup::{Decision, Dedup};
use crate::deliver::{Delivery, Mode};
use crate::queue::{self, Queue};
use crate::render::{self, Context, HeldBack, Origin};
use crate::smtp::{Endpoint, Security};
use crate::{Alert, Severity};

/// Raises alerts: logs them, deduplicates them and queues their e-mail for delivery.
#[derive(Debug)]
pub struct Alerter {
    ctx: Context,
    window: Duration,
    queue_limit: usize,
    dedup: Mutex<Dedup>,
    queue: Arc<Queue>,
    /// None when e-mail is off.
    delivery: Option<Arc<Delivery>>,
    /// Stops the delivery task: cancelled by `shutdown` or when the alerter is dropped.
    stop: CancellationToken,
}

impl Alerter {
    /// Loads the dead-letter queue from `state_dir/alerts-queue/` and starts the delivery task
    /// (stops on `shutdown`, or when the alerter is dropped). `origin` says which program (and
    /// which instance of it) every message comes from. Must be called within a tokio runtime.
    /// Damaged queue files are moved aside and logged, never an error.
    pub fn start(
        cfg: &Alerts,
        origin: &Origin,
        state_dir: &Path,
        shutdown: CancellationToken,
    ) -> std::io::Result<Arc<Alerter>> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| std::io::Error::other(format!("Alerter::start needs a runtime: {e}")))?;
        let dir = state_dir.join(queue::DIR_NAME);
        let (queue, report) = Queue::open(&dir, cfg.retry_backoff_max.get())?;
        let queue = Arc::new(queue);
        let host = host_name();
        let ctx = Context {
            origin: origin.clone(),
            host: host.clone(),
        };
        let stop = shutdown.child_token();
        let delivery = cfg.email.clone().map(|email| {
            warn_about_plain_auth(&email);
            let backoff = Backoff::new(cfg.retry_backoff.get(), cfg.retry_backoff_max.get());
            let hello = hello_name(&host);
            let delivery = Arc::new(Delivery::new(email, backoff, Arc::clone(&queue), hello));
            runtime.spawn(Arc::clone(&delivery).run(stop.clone()));
            delivery
        });
        if report.loaded > 0 || !report.damaged.is_empty() {
            tracing::info!(dir = %dir.display(), waiting = report.loaded,
                damaged = report.damaged.len(), "alert queue loaded");
        }
        if delivery.is_none() && report.loaded > 0 {
            tracing::warn!(dir = %dir.display(), waiting = report.loaded,
                "alert e-mails wait in the queue but [alerts.email] is not set: they stay there");
        }
        Ok(Arc::new(Alerter {
            ctx,
            window: cfg.dedup_window.get(),
            queue_limit: cfg.queue_limit,
            dedup: Mutex::new(Dedup::new(cfg.dedup_window.get())),
            queue,
            delivery,
            stop,
        }))
    }

    /// Raises `alert`. Never blocks on the network: logs it (always), applies the
    /// deduplication per `dedup_key` within `dedup_window`, and when e-mail is configured
    /// writes the message to the queue and wakes the delivery task. The only wait is the
    /// queue file's fsync (one small file), so it may be called from async code.
    pub fn send(&self, alert: Alert) {
        let wall = SystemTime::now();
        let decision = self.dedup.lock().unwrap_or_else(|p| p.into_inner()).check(
            &alert.dedup_key,
            Instant::now(),
            wall,
        );
        log(&alert, decision);
        let Decision::Send { suppressed, since } = decision else {
            return;
        };
        let Some(delivery) = &self.delivery else {
            return;
        };
        let held = since.map(|since| HeldBack {
            count: suppressed,
            since,
            window: self.window,
        });
        let message = render::alert(&self.ctx, &alert, wall, held);
        let dropped = self.queue.push(message, self.queue_limit, |dropped| {
            render::summary(&self.ctx, dropped, wall)
        });
        if !dropped.is_empty() {
            let subjects: Vec<&str> = dropped.iter().map(|d| d.subject.as_str()).collect();
            tracing::warn!(
                limit = self.queue_limit,
                replaced = dropped.len(),
                ?subjects,
                "alert queue full: the oldest undelivered e-mails were replaced by a summary"
            );
        }
        delivery.wake.notify_one();
    }

    /// Messages waiting for delivery (the queue depth).
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// At shutdown: one last pass over every queued message, bounded by `timeout`; what is
    /// left stays queued on disk for the next start.
    pub async fn flush(&self, timeout: Duration) {
        let Some(delivery) = &self.delivery else {
            return;
        };
        if self.queue.is_empty() {
            return;
        }
        let pass = delivery.pass(Mode::All, &self.stop);
        if tokio::time::timeout(timeout, pass).await.is_err() {
            tracing::warn!(timeout = %humantime::format_duration(timeout),
                "alert e-mail flush timed out");
        }
        let left = self.queue.len();
        if left > 0 {
            tracing::warn!(left, dir = %self.queue.dir().display(),
                "alert e-mails left queued for the next start");
        }
    }
}

impl Drop for Alerter {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The alert in the log, whatever happens to its e-mail.
fn log(alert: &Alert, decision: Decision) {
    let facts = alert
        .facts
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (suppressed, held) = match decision {
        Decision::Suppress { count } => (true, count),
        Decision::Send { suppressed, .. } => (false, suppressed),
    };
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                kind = alert.kind.as_str(),
                subject = alert.subject,
                facts,
                action = alert.action,
                dedup_key = alert.dedup_key,
                suppressed,
                held_back = held,
                "alert: {}",
                alert.kind.label()
            )
        };
    }
    match alert.kind.severity() {
        Severity::Error => emit!(error),
        Severity::Warning => emit!(warn),
        Severity::Info => emit!(info),
    }
}

fn host_name() -> String {
    #[cfg(unix)]
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    name.filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The EHLO name: the host name when it is a valid domain, else `localhost`.
fn hello_name(host: &str) -> String {
    let valid = host
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if valid {
        host.to_owned()
    } else {
        "localhost".to_owned()
    }
}

fn warn_about_plain_auth(email: &h264_config::agent::Email) {
    let Ok(endpoint) = Endpoint::parse(&email.smtp, email.starttls) else {
        return;
    };
    if endpoint.security == Security::Plain && !endpoint.is_loopback() {
        tracing::warn!(
            smtp = email.smtp,
            "alert e-mail goes to a remote server without TLS; \
            set starttls = true or use smtps://"
        );
    }
}
