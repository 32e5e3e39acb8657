//! How a source file is named (its key) and recognised unchanged (its fingerprint).

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// A source file: its watch root and its path relative to that root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    root: Arc<Path>,
    rel: PathBuf,
}

impl SourceKey {
    /// The key of `rel` under `root`.
    pub fn new(root: Arc<Path>, rel: PathBuf) -> Self {
        Self { root, rel }
    }

    /// A key from the journal's text columns.
    pub fn from_strings(root: &str, rel: &str) -> Self {
        Self {
            root: Arc::from(Path::new(root)),
            rel: PathBuf::from(rel),
        }
    }

    /// The watch root's source folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path relative to the root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The full path of the source.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// The root as the journal stores it.
    pub fn root_str(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    /// The relative path as the journal stores it.
    pub fn rel_str(&self) -> String {
        self.rel.to_string_lossy().into_owned()
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// What identifies one version of a source: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number (0 where the OS has none).
    pub inode: u64,
}

impl Fingerprint {
    /// The fingerprint of a file's metadata.
    pub fn of(meta: &Metadata) -> Self {
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Self {
            size: meta.len(),
            mtime_ns,
            inode: inode(meta),
        }
    }

    /// A fingerprint from the journal's integer columns.
    pub fn from_db(size: i64, mtime_ns: i64, inode: i64) -> Self {
        Self {
            size: size as u64,
            mtime_ns,
            inode: inode as u64,
        }
    }
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}
