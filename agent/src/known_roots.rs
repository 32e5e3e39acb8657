//! The roots the agent has seen (security review M2): a record in `state_dir`
//! (`known-roots.json`) of every watch and output root that existed, so that a root is created
//! only the first time, and a root that existed and then vanished (a share not mounted at boot,
//! a server down) is held and reported, never recreated on the local disk, across restarts
//! too.
//!
//! Each entry also says whether the root was a mount point when first seen (its device differs
//! from its parent folder's): such a root that is later found on its parent's device is a
//! mount point whose share is not mounted, and is held like a missing one.
//!
//! # Concurrency and errors
//! Read and written at start-up only, by one thread ([`crate::run`]'s preparation). Written
//! atomically (a temporary in `state_dir`, fsync, rename, fsync of the folder), mode 0600. A
//! damaged record is an error naming the file and the fix, never taken for an empty one (which
//! would let a vanished root be recreated).

use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The record's file name inside `state_dir`.
pub const FILE_NAME: &str = "known-roots.json";

/// Which side of a watch entry a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootKind {
    /// A `[[watch]] source` folder.
    Watch,
    /// A `[[watch]] output` folder.
    Output,
}

impl RootKind {
    /// `watch` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Watch => "watch",
            RootKind::Output => "output",
        }
    }
}

/// One root the agent has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// The root as configured, made absolute.
    pub path: PathBuf,
    /// The root with every symlink resolved, when first seen (what the agent uses while the
    /// root is missing, so that its journal keys stay the same).
    pub resolved: PathBuf,
    /// Watch or output.
    pub kind: RootKind,
    /// Whether it was a mount point when first seen.
    pub mount_point: bool,
    /// When it was first seen (Unix milliseconds).
    pub first_seen_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    version: u32,
    roots: Vec<Known>,
}

/// The record of roots seen, loaded from `state_dir`.
#[derive(Debug)]
pub struct KnownRoots {
    file: PathBuf,
    roots: Vec<Known>,
}

impl KnownRoots {
    /// Loads the record of `state_dir` (none yet: empty).
    pub fn load(state_dir: &Path) -> io::Result<KnownRoots> {
        let file = state_dir.join(FILE_NAME);
        let roots = match std::fs::read(&file) {
            Ok(bytes) => {
                let record: Record = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is damaged ({e}): the agent cannot tell which roots existed before; \
                             check that every watch and output share is mounted, then remove the file",
                            file.display()
                        ),
                    )
                })?;
                record.roots
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", file.display()),
                ))
            }
        };
        Ok(KnownRoots { file, roots })
    }

    /// The entry of `path` (absolute) as a root of `kind`, if it was seen.
    pub fn get(&self, path: &Path, kind: RootKind) -> Option<&Known> {
        self.roots.iter().find(|k| k.path == path && k.kind == kind)
    }

    /// Records `path` (absolute, existing now, `resolved` with its symlinks resolved) as a
    /// root of `kind`, unless it is recorded.
    pub fn remember(&mut self, path: &Path, resolved: &Path, kind: RootKind) -> io::Result<()> {
        if self.get(path, kind).is_some() {
            return Ok(());
        }
        let first_seen_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.roots.push(Known {
            path: path.to_path_buf(),
            resolved: resolved.to_path_buf(),
            kind,
            mount_point: is_mount_point(path),
            first_seen_ms,
        });
        self.save()
    }

    fn save(&self) -> io::Result<()> {
        let record = Record {
            version: 1,
            roots: self.roots.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!(".{FILE_NAME}.tmp"));
        let _ = std::fs::remove_file(&temp);
        let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.file.display()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(at)?;
        file.write_all(&bytes).map_err(at)?;
        file.sync_all().map_err(at)?;
        drop(file);
        std::fs::rename(&temp, &self.file).map_err(at)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at)
    }
}

/// Whether `path` is a mount point: its device differs from its parent folder's.
pub fn is_mount_point(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(here), Ok(above)) => here.dev() != above.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_remembered_across_loads_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        std::fs::create_dir(&root).unwrap();
        let mut known = KnownRoots::load(dir.path()).unwrap();
        assert!(known.get(&root, RootKind::Output).is_none());
        known.remember(&root, &root, RootKind::Output).unwrap();
        let again = KnownRoots::load(dir.path()).unwrap();
        let entry = again.get(&root, RootKind::Output).unwrap();
        assert!(!entry.mount_point, "a folder of the temporary folder");
        assert!(again.get(&root, RootKind::Watch).is_none());
        std::fs::write(dir.path().join(FILE_NAME), b"{ not json").unwrap();
        let err = KnownRoots::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is damaged"), "{err}");
    }
}
