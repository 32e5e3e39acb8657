//! When the agent is ready (the start-up reconcile is over: systemd is told) and, in `--once`
//! mode, when it is idle (nothing queued, delayed or running).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::key::SourceKey;
use crate::pipeline::Jobs;
use crate::queue::WorkQueue;
use crate::stats::Stats;
use crate::watch::Sources;

/// Logs when the first pass over every source has been reconciled (jobs may still run), and
/// tells systemd the agent is ready (`READY=1`; nothing without `$NOTIFY_SOCKET`). While the
/// pass goes on, systemd is asked to wait longer every [`STARTUP_EXTEND`], so a large backlog
/// does not hit `TimeoutStartSec=` while it makes progress.
pub async fn report_startup_reconcile(
    sources: Sources,
    stats: Arc<Stats>,
    started: std::time::Instant,
) {
    let queue = &sources.queue;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut extended = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = sources.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if queue.depth() == 0 && queue.processing() == 0 {
            let seen = stats.snapshot().seen;
            tracing::info!(
                sources = seen,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "start-up reconcile finished"
            );
            let folders = sources.roots.len();
            h264_service::systemd::ready(&format!(
                "watching {folders} folder{}; start-up reconcile of {seen} sources finished",
                if folders == 1 { "" } else { "s" }
            ));
            return;
        }
        if extended.elapsed() >= STARTUP_EXTEND {
            extended = std::time::Instant::now();
            h264_service::systemd::extend_timeout(
                STARTUP_EXTEND * 3,
                &format!(
                    "start-up reconcile: {} sources seen, {} queued",
                    stats.snapshot().seen,
                    queue.depth()
                ),
            );
        }
    }
}

/// How often a start-up reconcile still under way asks systemd for more time.
const STARTUP_EXTEND: Duration = Duration::from_secs(10);

/// How often `--once` looks whether the work is done.
const IDLE_LOOK: Duration = Duration::from_millis(10);

/// Returns once nothing is queued, delayed or running (or at shutdown).
pub async fn wait_until_idle(
    queue: &WorkQueue<SourceKey>,
    jobs: &Jobs,
    shutdown: &CancellationToken,
) {
    // Short: in `--once` mode the run's end waits for this look (a few wake-ups per job is
    // nothing beside an FFmpeg run).
    let mut tick = tokio::time::interval(IDLE_LOOK);
    let mut idle_ticks = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Two idle looks in a row, so that a key between queue and job is not missed.
        if queue.is_idle() && jobs.is_empty() {
            idle_ticks += 1;
            if idle_ticks >= 2 {
                return;
            }
        } else {
            idle_ticks = 0;
        }
    }
}
