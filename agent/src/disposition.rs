//! What becomes of a source after its job: keep, delete or move it after success; leave it or
//! move it to quarantine, with an `.error.txt` beside it, after its last failed attempt.

use std::io;
use std::path::{Path, PathBuf};

use h264_config::agent::{OnFailure, OnSuccess, WatchRoot};

/// Applies `on_success` to a converted source; returns where it went, if it moved.
pub fn after_success(root: &WatchRoot, source: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    match (root.on_success, &root.done_dir) {
        (OnSuccess::Keep, _) => Ok(None),
        (OnSuccess::Delete, _) => std::fs::remove_file(source).map(|()| None),
        (OnSuccess::Move, Some(dir)) => move_into(source, &dir.join(rel)).map(Some),
        (OnSuccess::Move, None) => Ok(None),
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
            let dest = move_into(source, &dir.join(rel))?;
            let mut note = dest.clone().into_os_string();
            note.push(".error.txt");
            std::fs::write(&note, report)?;
            Ok(Some(dest))
        }
        _ => Ok(None),
    }
}

/// Moves `source` to `dest` (creating folders), never replacing a file: a name already taken
/// gets a numbered suffix. Falls back to copy + delete across file systems.
fn move_into(source: &Path, dest: &Path) -> io::Result<PathBuf> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut target = dest.to_path_buf();
    let mut n = 1;
    while target.exists() {
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
        std::fs::copy(source, &target)?;
        std::fs::File::open(&target)?.sync_all()?;
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
    fn move_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("done")).unwrap();
        std::fs::write(dir.path().join("done/a.ts"), b"old").unwrap();
        let src = dir.path().join("a.ts");
        std::fs::write(&src, b"new").unwrap();
        let root = WatchRoot {
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
