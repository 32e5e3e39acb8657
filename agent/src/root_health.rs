//! Output roots that vanish or stop answering (a share not mounted, a server down; security
//! review M2) are environment faults, not job failures.
//!
//! - A job whose output root is missing or unreachable (ENOENT on the root itself, EIO, ESTALE,
//!   ENOTCONN, EHOSTDOWN, not a folder) does not start: it is looked at again in
//!   [`RECHECK`], without an attempt being counted or the journal touched.
//! - A job that fails while its root is gone is recorded as interrupted (like an operator's
//!   pause) and redone when the root is back, never failed for good.
//! - The root itself is never recreated at run time ([`crate::fs_safe::prepare_output`] creates
//!   folders below it only), so nothing is written to the empty mount point, and no source is
//!   deleted or moved for an output that is not on the share.
//!
//! The held roots are kept in one process-wide set, only so that a root going away and coming
//! back is logged once each way, not once per file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::pipeline::failure::Failure;
use crate::pipeline::CancelReason;

/// How soon a job held by a missing root is looked at again.
pub const RECHECK: Duration = Duration::from_secs(2);

/// Roots found missing and not yet seen back (for the log only).
static HELD: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// The output root of `output`, the output of the source `rel` (the root is `rel`'s depth
/// above it).
pub fn output_root(output: &Path, rel: &Path) -> PathBuf {
    output
        .ancestors()
        .nth(rel.components().count())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Why `root` cannot take outputs now, if it cannot.
pub fn unavailable(root: &Path) -> Option<String> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => match std::fs::read_dir(root) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        },
        Ok(_) => Some("it is not a folder".into()),
        Err(e) => Some(e.to_string()),
    }
}

/// Checks the output root of a job about to start; logs a root going away or coming back once.
/// `Some(why)` holds the job.
pub fn check(output: &Path, rel: &Path) -> Option<String> {
    let root = output_root(output, rel);
    let why = unavailable(&root);
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    match &why {
        Some(why) if held.insert(root.clone()) => tracing::warn!(
            output_root = ?root,
            "the output root is missing or unreachable ({why}): its jobs wait, nothing is written or deleted until it is back; it is never recreated"
        ),
        None if held.remove(&root) => {
            tracing::info!(output_root = ?root, "the output root is back: its jobs start again")
        }
        _ => {}
    }
    why
}

/// A failure while the output root is gone becomes an interruption (redone when it is back).
pub fn reclassify(
    failure: Failure,
    reason: Option<CancelReason>,
    output: &Path,
    rel: &Path,
) -> (Failure, Option<CancelReason>) {
    let gone = matches!(failure, Failure::Failed { .. })
        && unavailable(&output_root(output, rel)).is_some();
    if gone {
        (Failure::Cancelled, Some(CancelReason::OutputRootGone))
    } else {
        (failure, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_rel_depth_above_the_output() {
        assert_eq!(
            output_root(Path::new("/out/day 1/a.mp4"), Path::new("day 1/a.ts")),
            Path::new("/out")
        );
        assert_eq!(
            output_root(Path::new("/out/a.mp4"), Path::new("a.ts")),
            Path::new("/out")
        );
    }
}
