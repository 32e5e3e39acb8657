//! Watch roots are trust boundaries (security review H2): a source reached through a symlink
//! that leads out of its watch root is never converted, moved or deleted, unless the root says
//! `follow_symlinks = true`. It is reported once: a `conflict` in the journal (seen in
//! `fleetctl agent errors`) and one error line, not again while the file stays the same.

use std::path::{Path, PathBuf};

use crate::journal::Journal;
use crate::key::{Fingerprint, SourceKey};
use crate::roots::Root;

/// Why `root/rel` is refused: the symlink on its way that leads out of the root, and where
/// to. `None` when no part of it is a symlink, when every symlink stays inside, or when the
/// root follows symlinks.
pub fn leaves_root(root: &Root, rel: &Path) -> Option<String> {
    if root.cfg.follow_symlinks {
        return None;
    }
    leaves(&root.source, rel)
}

/// [`leaves_root`] for the canonical root folder `source`, whatever the root's setting.
pub fn leaves(source: &Path, rel: &Path) -> Option<String> {
    let mut at = source.to_path_buf();
    let mut link: Option<PathBuf> = None;
    for part in rel.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                link.get_or_insert_with(|| at.clone());
            }
            Ok(_) => {}
            Err(_) => return None, // gone: the reconciler sees that for itself
        }
    }
    let link = link?;
    let real = std::fs::canonicalize(&at).ok();
    match real {
        Some(real) if real.starts_with(source) => None,
        Some(real) => Some(format!(
            "reached through the symlink {} that leads out of the watch root to {}: not converted, moved or deleted (set follow_symlinks = true on this [[watch]] to allow it)",
            link.display(),
            real.display()
        )),
        None => Some(format!(
            "reached through the symlink {}, which leads nowhere readable: not converted",
            link.display()
        )),
    }
}

/// Records the refusal once per version of the file (`spec_hash`: the settings in force).
pub fn report(journal: &Journal, spec_hash: &str, key: &SourceKey, root: &Root, why: &str) {
    let Ok(meta) = std::fs::symlink_metadata(key.path()) else {
        return;
    };
    let fp = Fingerprint::of(&meta);
    let known = journal
        .get(key)
        .ok()
        .flatten()
        .is_some_and(|r| r.fingerprint == fp && r.state == crate::journal::JobState::Conflict);
    if known {
        return;
    }
    tracing::error!(source = ?key.path(), "{why}");
    let output = root.output_for(key.rel());
    if let Err(e) = journal.record_conflict(key, &fp, spec_hash, &output, why) {
        tracing::error!(error = %e, "could not record the refusal in the journal");
    }
}
