//! The `dispose` stage: what happens to the source once its job is over. After a conversion it
//! is kept, moved or deleted (its root's `after_success`); after a final failure it is left in
//! place or quarantined with an `.error.txt` (its root's `on_failure`). A disposition that fails
//! is logged; the job's outcome stands. Before a delete or move, the output root must be there
//! and the source unchanged since its job started ([`after_success`]).

use std::path::Path;

use h264_config::agent::{OnFailure, OnSuccess};

use super::ctx::JobCtx;
use super::stage::Stage;
use crate::key::{Fingerprint, SourceKey};
use crate::roots::Root;

/// Disposes of a converted source (`output` published from it, the source at `fingerprint`
/// when its job started). Nothing is deleted or moved while the output root is missing or
/// unreachable (the output may not be on the share), nor when the source changed since its
/// job started (the output is of an older version): both are refused, logged, written to the
/// journal's events (`fleetctl agent errors`) and alerted; the source stays in place.
pub async fn after_success(
    ctx: &JobCtx,
    root: &Root,
    source: &Path,
    key: &SourceKey,
    output: &Path,
    fingerprint: &Fingerprint,
) {
    if root.cfg.on_success == OnSuccess::Keep {
        return;
    }
    if let Some(why) = refusal(ctx, source, key, output, fingerprint).await {
        tracing::error!(source = %source.display(), "source not deleted or moved: {why}");
        if let Err(e) = ctx
            .journal
            .note(key, "disposition refused", Stage::Dispose.as_str(), &why)
        {
            tracing::error!(source = %key, error = %e, "the journal did not record the refusal");
        }
        ctx.notifier.file_warning(
            source,
            output,
            &[format!("source not deleted or moved: {why}")],
        );
        return;
    }
    match crate::disposition::after_success(&root.cfg, source, key.rel()) {
        Ok(Some(to)) => {
            tracing::info!(source = %source.display(), to = %to.display(), "source moved")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(source = %source.display(), error = %e, "source disposition failed")
        }
    }
}

/// Why the source of a converted job may not be deleted or moved now, if it may not.
async fn refusal(
    ctx: &JobCtx,
    source: &Path,
    key: &SourceKey,
    output: &Path,
    fingerprint: &Fingerprint,
) -> Option<String> {
    let output_root = crate::root_health::output_root(output, key.rel());
    if let Some(why) = ctx.health.check_now(&output_root).await {
        return Some(format!(
            "the output root {} is missing or unreachable ({why})",
            output_root.display()
        ));
    }
    if !std::fs::symlink_metadata(output).is_ok_and(|m| m.is_file()) {
        return Some(format!("the output {} is not there", output.display()));
    }
    crate::disposition::changed_since(source, fingerprint)
}

/// What happens to a source that failed for good, in the words of its alert.
pub fn failure_action(root: Option<&Root>) -> &'static str {
    match root.map(|r| r.cfg.on_failure) {
        Some(OnFailure::Quarantine) => {
            "moved to the quarantine folder with an .error.txt; not retried"
        }
        _ => "left in place; not retried until the file changes",
    }
}

/// Disposes of a source that failed for good at `stage` with `message`.
pub fn after_failure(root: &Root, source: &Path, key: &SourceKey, stage: Stage, message: &str) {
    let report = format!(
        "source: {}\nstage: {stage}\nerror: {message}\n",
        source.display()
    );
    match crate::disposition::after_failure(&root.cfg, source, key.rel(), &report) {
        Ok(Some(to)) => {
            tracing::warn!(source = %source.display(), to = %to.display(), "source quarantined")
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(source = %source.display(), error = %e, "quarantine failed")
        }
    }
}
