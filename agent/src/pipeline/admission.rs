//! Admission: a job ready to start waits until intake is open (no manual pause, the disk guard
//! satisfied) and a worker is free, then checks the disk once more before it starts.

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::ctx::JobCtx;

/// Waits until the job may start; `None` when it is cancelled meanwhile. In `--once` mode
/// neither intake nor the disk guard hold it back.
pub async fn wait_for_start(
    ctx: &JobCtx,
    cancel: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if !ctx.once {
            tokio::select! {
                _ = ctx.intake.wait_open() => {}
                _ = cancel.cancelled() => return None,
            }
        }
        let permit = tokio::select! {
            p = ctx.workers.clone().acquire_owned() => p.ok()?,
            _ = cancel.cancelled() => return None,
        };
        if ctx.once {
            return Some(permit);
        }
        let disk_ok = ctx.disk.check_now();
        if disk_ok && ctx.intake.hold().is_open() {
            return Some(permit);
        }
    }
}
