//! What becomes of a source after its job: keep, delete or move it after success; leave it or
//! move it to quarantine, with an `.error.txt` beside it, after its last failed attempt.
//! Nothing here follows a symlink: folders are created part by part and checked, names are
//! checked with `symlink_metadata`, and files are created with `O_EXCL|O_NOFOLLOW`
//! ([`crate::fs_safe`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use h264_config::agent::{OnFailure, OnSuccess, WatchRoot};

use crate::key::Fingerprint;

/// Applies `on_success` to a converted source; returns where it went, if it moved.
pub fn after_success(root: &WatchRoot, source: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    if root.on_success != OnSuccess::Keep && !root.follow_symlinks {
        // Checked again just before: a folder swapped for a symlink since the job started.
        let base = std::fs::canonicalize(&root.source)?;
        if let Some(why) = crate::containment::leaves(&base, rel) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        }
    }
    match (root.on_success, &root.done_dir) {
        (OnSuccess::Keep, _) => Ok(None),
        (OnSuccess::Delete, _) => std::fs::remove_file(source).map(|()| None),
        (OnSuccess::Move, Some(dir)) => move_into(source, dir, rel).map(Some),
        (OnSuccess::Move, None) => Ok(None),
    }
}

/// Why `source` may not be deleted or moved as the version of `fingerprint` (the one that was
/// converted), if it is not that version any more: its size, modification time or inode
/// changed (a recorder wrote to it again, or another file took its name), or it cannot be read.
pub fn changed_since(source: &Path, fingerprint: &Fingerprint) -> Option<String> {
    match std::fs::metadata(source) {
        Ok(meta) if Fingerprint::of(&meta) == *fingerprint => None,
        Ok(meta) => {
            let now = Fingerprint::of(&meta);
            Some(format!(
                "the source changed after its conversion (size {} -> {} bytes, modified {} -> \
                 {} ns, inode {} -> {}): the output is of the earlier version; it is converted \
                 again once stable",
                fingerprint.size,
                now.size,
                fingerprint.mtime_ns,
                now.mtime_ns,
                fingerprint.inode,
                now.inode
            ))
        }
        Err(e) => Some(format!("cannot read the source's metadata: {e}")),
    }
}

/// Applies `on_failure` to a source that failed for good; returns where it went, if it moved.
pub fn after_failure(
    root: &WatchRoot,
    source: &Path,
    rel: &Path,
    report: &str,
) -> io::Result<Option<PathBuf>> {
    match (root.on_failure, &root.quarantine_dir) {
        (OnFailure::Quarantine, Some(dir)) => {
            let dest = move_into(source, dir, rel)?;
            let mut note = dest.clone().into_os_string();
            note.push(".error.txt");
            crate::fs_safe::create_new(Path::new(&note))?.write_all(report.as_bytes())?;
            Ok(Some(dest))
        }
        _ => Ok(None),
    }
}

/// Moves `source` to `base/rel` (creating folders below `base`, never through a symlink), never
/// replacing a name: a name already taken (by anything, a symlink included) gets a numbered
/// suffix. Falls back to copy + delete across file systems.
fn move_into(source: &Path, base: &Path, rel: &Path) -> io::Result<PathBuf> {
    let dest = base.join(rel);
    std::fs::create_dir_all(base)?;
    if let Some(parent) = dest.parent() {
        crate::fs_safe::create_dirs_beneath(base, parent)?;
    }
    let mut target = dest.clone();
    let mut n = 1;
    while crate::fs_safe::taken(&target) {
        let mut name = dest.file_stem().unwrap_or_default().to_os_string();
        name.push(format!(".{n}"));
        if let Some(ext) = dest.extension() {
            name.push(".");
            name.push(ext);
        }
        target = dest.with_file_name(name);
        n += 1;
    }
    if std::fs::rename(source, &target).is_err() {
        let mut to = crate::fs_safe::create_new(&target)?;
        io::copy(&mut std::fs::File::open(source)?, &mut to)?;
        to.sync_all()?;
        std::fs::remove_file(source)?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_moves_and_explains() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bad.ts");
        std::fs::write(&src, b"x").unwrap();
        let root = WatchRoot {
            on_failure: OnFailure::Quarantine,
            quarantine_dir: Some(dir.path().join("q")),
            ..WatchRoot::default()
        };
        let dest = after_failure(&root, &src, Path::new("bad.ts"), "corrupt")
            .unwrap()
            .unwrap();
        assert!(!src.exists());
        assert_eq!(dest, dir.path().join("q/bad.ts"));
        let note = std::fs::read_to_string(dir.path().join("q/bad.ts.error.txt")).unwrap();
        assert_eq!(note, "corrupt");
    }

    #[test]
    fn a_source_written_again_after_its_conversion_is_not_disposed_of() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("rec.ts");
        std::fs::write(&src, b"first version").unwrap();
        let converted = Fingerprint::of(&std::fs::metadata(&src).unwrap());
        assert_eq!(changed_since(&src, &converted), None);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&src)
            .unwrap()
            .write_all(b" and more")
            .unwrap();
        let why = changed_since(&src, &converted).unwrap();
        assert!(why.contains("changed after its conversion"), "{why}");
        std::fs::remove_file(&src).unwrap();
        let gone = changed_since(&src, &converted).unwrap();
        assert!(gone.contains("cannot read"), "{gone}");
    }

    #[test]
    fn move_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("done")).unwrap();
        std::fs::write(dir.path().join("done/a.ts"), b"old").unwrap();
        let src = dir.path().join("a.ts");
        std::fs::write(&src, b"new").unwrap();
        let root = WatchRoot {
            source: dir.path().to_path_buf(),
            on_success: OnSuccess::Move,
            done_dir: Some(dir.path().join("done")),
            ..WatchRoot::default()
        };
        let dest = after_success(&root, &src, Path::new("a.ts"))
            .unwrap()
            .unwrap();
        assert_eq!(dest, dir.path().join("done/a.1.ts"));
        assert_eq!(std::fs::read(dir.path().join("done/a.ts")).unwrap(), b"old");
    }
}
