//! Start-up, steady state and shutdown of the agent.
//!
//! # Theory of operation
//! Start-up (`prepare`) checks what the agent cannot work without (state folder, journal,
//! FFmpeg, watch roots) and fails with a [`FatalError`] naming it. It then cleans up after a
//! crash (leftover temporaries, jobs the journal says were running), picks the start-up
//! settings (the last-known-good fleet revision over the local file, when there is a
//! controller; see [`crate::session`]), creates the subsystems' handles (`wire`), starts the
//! watchers and the controller session, queues every source once, and runs the reconcile tasks.
//! Shutdown is two-phase: cancelling `shutdown` stops intake and every job (each stops its
//! FFmpeg's process group and records the job as interrupted); then the agent waits for the jobs
//! up to `shutdown_grace`, logs any that did not stop, and returns. In `--once` mode the agent
//! stops by itself when nothing is queued, delayed or running.

mod error;
mod options;
mod prepare;
mod ready;
mod wire;

pub use error::FatalError;
pub use options::{agent_id, RunOptions, RunSummary};

use std::sync::Arc;
use std::time::Duration;

use h264_config::AgentConfig;
use tokio_util::sync::CancellationToken;

use crate::notify::Notifier;
use crate::plumbing::tasks::Tasks;
use crate::reconcile::ReconcileCtx;
use prepare::{prepare, Ground};
use wire::Wired;

/// Runs the agent until `shutdown` is cancelled (or, with `once`, until the work is done).
pub async fn run(
    config: AgentConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, FatalError> {
    let Ground {
        lock: _lock,
        control,
        journal,
        roots,
    } = prepare(&config, options.once).await?;
    let id = agent_id(&config);
    let notifier = start_alerts(&config, &id, &shutdown);
    let crate::session::Startup {
        pipeline,
        revisions,
        problems: revision_problems,
    } = crate::session::startup(&config);
    // From here on the settings channel is the one configuration the agent reads; the local
    // file stays with the session, as the base its revisions are merged over.
    let shutdown = shutdown.child_token();
    let w = Wired::new(
        config,
        pipeline,
        journal,
        roots,
        notifier.clone(),
        &options,
        &shutdown,
    );
    if let Some(meter) = &options.meter {
        crate::metrics::observe(&w.observed, meter);
    }
    w.jobs.disk.check_now();
    w.jobs.health.check_all();
    if options.once {
        // Nothing to wait for in `--once` mode: a remembered root that is gone stops the run.
        if let Some(held) = w.jobs.health.held().first() {
            return Err(FatalError::RootUnavailable {
                path: held.path.clone(),
                kind: held.kind.as_str(),
                why: held.why.clone(),
            });
        }
    }
    let (root_names, workers) = (w.root_names(), w.local.agent.workers);
    notifier.lifecycle(&id, &root_names, workers, true);
    for rejected in &options.config_rejected {
        notifier.config_rejected(rejected, "running on the legacy INI beside it");
    }
    for problem in &revision_problems {
        notifier.config_rejected(problem, "running on the local configuration");
    }
    let tasks = Tasks::default();
    if let Some((listener, token)) = control {
        let addr = listener.local_addr().map(|a| a.to_string());
        let addr = addr.unwrap_or_else(|_| w.local.agent.control.clone());
        tracing::info!(%addr, file = %token.path().with_file_name(crate::control_addr::FILE_NAME).display(), "control API listening");
        let serve = crate::control::serve(listener, w.view.clone(), token, shutdown.clone());
        tasks.spawn("control API", serve);
        tasks.spawn("disk guard", w.jobs.disk.clone().run(shutdown.clone()));
        tasks.spawn("root health", w.jobs.health.clone().run(shutdown.clone()));
    }
    if !options.once {
        if let Some(session) = crate::session::task(w.session(), revisions) {
            tasks.spawn("fleet session", session);
        }
    }
    tracing::info!(
        agent = %id, workers, roots = root_names.len(), once = options.once, "h264-agent started"
    );
    let _watchers = if options.once {
        crate::watch::Watchers::default()
    } else {
        crate::watch::start(&w.sources, w.local.agent.resync_interval.get(), &tasks)
    };
    let scan_started = std::time::Instant::now();
    {
        let sources = w.sources.clone();
        let _ = tokio::task::spawn_blocking(move || crate::watch::scan_all(&sources)).await;
    }
    let reconcile = Arc::new(ReconcileCtx::new(w.jobs.clone()));
    tasks.spawn("reconcilers", crate::reconcile::run_workers(reconcile, 4));
    let report =
        ready::report_startup_reconcile(w.sources.clone(), w.jobs.stats.clone(), scan_started);
    tasks.spawn("start-up reconcile report", report);
    if options.once {
        ready::wait_until_idle(&w.jobs.queue, &w.jobs.jobs, &shutdown).await;
    } else {
        shutdown.cancelled().await;
        tracing::info!("shutting down: stopping intake and jobs");
    }
    stop(&w, &shutdown).await;
    let left = tasks.stop(TASKS_GRACE).await;
    if !left.is_empty() {
        tracing::error!(?left, grace = ?TASKS_GRACE, "tasks did not stop after the jobs; aborted");
    }
    let summary = RunSummary {
        stats: w.jobs.stats.snapshot(),
    };
    notifier.lifecycle(&id, &root_names, workers, false);
    notifier.flush(Duration::from_secs(5)).await;
    tracing::info!(?summary, "h264-agent stopped");
    Ok(summary)
}

/// How long the long-lived tasks (control API, session, watchers, reconcilers) may take to
/// stop once the jobs have.
const TASKS_GRACE: Duration = Duration::from_secs(2);

/// Starts the alerter (a failure leaves alerts logged only).
fn start_alerts(config: &AgentConfig, id: &str, shutdown: &CancellationToken) -> Notifier {
    match crate::alerts::Alerter::start(
        &config.alerts,
        &crate::alerts::Origin::agent(id),
        &config.agent.state_dir,
        shutdown.child_token(),
    ) {
        Ok(a) => Notifier::new(Some(a)),
        Err(e) => {
            tracing::error!(error = %e, "alerts cannot start: they are only logged");
            Notifier::new(None)
        }
    }
}

/// Shutdown's first phase: stops intake and every job, then waits for the jobs up to
/// `shutdown_grace` and names those that did not stop.
async fn stop(w: &Wired, shutdown: &CancellationToken) {
    shutdown.cancel();
    w.jobs.queue.close();
    w.jobs.tracker.close();
    let grace = w.local.agent.shutdown_grace.get();
    if tokio::time::timeout(grace, w.jobs.tracker.wait())
        .await
        .is_err()
    {
        let left: Vec<String> = w
            .jobs
            .jobs
            .snapshot()
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        tracing::error!(
            ?left,
            ?grace,
            "jobs did not stop within the shutdown grace period; their FFmpeg processes are killed"
        );
    }
}
