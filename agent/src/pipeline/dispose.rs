//! The `dispose` stage: what happens to the source once its job is over. After a conversion it
//! is kept, moved or deleted (its root's `after_success`); after a final failure it is left in
//! place or quarantined with an `.error.txt` (its root's `on_failure`). A disposition that fails
//! is logged; the job's outcome stands.

use std::path::Path;

use h264_config::agent::OnFailure;

use super::stage::Stage;
use crate::key::SourceKey;
use crate::roots::Root;

/// Disposes of a converted source.
pub fn after_success(root: &Root, source: &Path, key: &SourceKey) {
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
