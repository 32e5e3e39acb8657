//! Readiness ahead of admission: a job's quick checks (the `readiness` stage: one ffprobe, the
//! transport stream's packets) run before it waits for a worker, so that they overlap the
//! FFmpeg runs of the jobs before it instead of holding a worker slot.
//!
//! # Theory of operation
//! A job takes a look-ahead slot ([`JobCtx::ahead`], as many as there are workers) before its
//! checks and keeps it until it has a worker: at most that many jobs are being checked or wait,
//! checked, for a worker, so checks are fresh when the job starts and a queue of a thousand
//! files is not probed all at once. Slots and workers are taken in the order jobs ask (tokio's
//! semaphores are fair), so jobs keep their queue order.
//!
//! The checks run under the settings in force then; the job takes the settings again once
//! admitted, and if they changed meanwhile its attempt checks again, on its worker. They run
//! inside the job's trace (the `readiness` span) and under the source monitor: a source
//! deleted or rewritten meanwhile cancels the job, and that is recorded in the journal as
//! before. A file that fails its checks takes no worker: the failure goes to the journal at
//! once. A pause or shutdown stops a job waiting for a slot, or in its checks, as it stops a job
//! waiting for a worker: nothing is recorded, and a paused job is queued again.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::ctx::JobCtx;
use super::failure::Failure;
use super::readiness;
use super::registry::{CancelReason, JobHandle};
use crate::key::{Fingerprint, SourceKey};
use crate::readiness::Ready;
use crate::settings::Settings;

/// A job's checks, done ahead of its admission.
#[derive(Debug)]
pub struct Checked {
    /// The look-ahead slot, given back once the job has a worker (or ends).
    pub slot: OwnedSemaphorePermit,
    /// The settings the checks ran under.
    pub settings: Arc<Settings>,
    /// What they found.
    pub result: Result<Ready, Failure>,
    /// Their wall time in seconds.
    pub secs: f64,
}

impl Checked {
    /// Whether the job needs a worker: not when its checks refused or failed the file.
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Waits for intake to be open (except in `--once` mode) and for a look-ahead slot, then checks
/// the job's source. `None` when a pause or shutdown stopped the job meanwhile.
pub async fn check(
    ctx: &JobCtx,
    key: &SourceKey,
    fp: Fingerprint,
    handle: &JobHandle,
) -> Option<Checked> {
    let cancel = &handle.cancel;
    if !ctx.once {
        tokio::select! {
            _ = ctx.intake.wait_open() => {}
            _ = cancel.cancelled() => return None,
        }
    }
    let slot = tokio::select! {
        p = ctx.ahead.clone().acquire_owned() => p.ok()?,
        _ = cancel.cancelled() => return None,
    };
    let settings = ctx.settings.current();
    let program = ctx.root_of(key).and_then(|r| r.cfg.program.clone());
    let source = key.path();
    let started = Instant::now();
    let checks = readiness::run(&settings, &source, program.as_ref(), cancel);
    let mut result = super::watched(checks, (&ctx.health, key.root()), &source, fp, handle).await;
    let secs = started.elapsed().as_secs_f64();
    if cancel.is_cancelled() {
        match handle.reason() {
            // Stopped before it started, as a job waiting for a worker is.
            None | Some(CancelReason::Paused) => return None,
            // The source's doing (or a root gone): recorded as a cancelled attempt.
            Some(_) => result = Err(Failure::Cancelled),
        }
    }
    Some(Checked {
        slot,
        settings,
        result,
        secs,
    })
}
