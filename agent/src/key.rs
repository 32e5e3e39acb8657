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
            rel: PathBuf::from(decode_name(rel)),
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

    /// The relative path as the journal stores it: as it is when it is UTF-8 (without U+FFFD),
    /// else with every byte that is not UTF-8 written as U+FFFD and two hex digits, so that two
    /// names never share a row (security review L3; see [`encode_name`]).
    pub fn rel_str(&self) -> String {
        encode_name(self.rel.as_os_str())
    }
}

/// The replacement character, which introduces an escape in [`encode_name`].
const MARK: char = '\u{fffd}';

/// A file name as text without losing a byte: valid UTF-8 stays as it is, a byte that is not
/// UTF-8 becomes U+FFFD and two lower-case hex digits, and a U+FFFD of the name itself U+FFFD
/// and `uu`. One-to-one: [`decode_name`] gives the bytes back.
pub fn encode_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == MARK {
                out.push(MARK);
                out.push_str("uu");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push(MARK);
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// The bytes of a name [`encode_name`] wrote.
pub fn decode_name(text: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != MARK {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let pair: String = chars.clone().take(2).collect();
        match (pair.as_str(), u8::from_str_radix(&pair, 16)) {
            ("uu", _) => out.extend_from_slice(MARK.to_string().as_bytes()),
            (_, Ok(b)) if pair.len() == 2 => out.push(b),
            _ => {
                out.extend_from_slice(MARK.to_string().as_bytes());
                continue;
            }
        }
        chars.nth(1);
    }
    std::ffi::OsString::from_vec(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_are_kept_byte_for_byte() {
        let names: [&[u8]; 5] = [
            b"show.ts",
            b"nu\xff.ts",
            b"nu\xfe.ts",
            "a\u{fffd}ff.ts".as_bytes(),
            b"caf\xc3\xa9/\xc3.ts",
        ];
        let encoded: Vec<String> = names
            .iter()
            .map(|n| encode_name(std::ffi::OsStr::from_bytes(n)))
            .collect();
        assert_eq!(encoded[0], "show.ts");
        for (n, e) in names.iter().zip(&encoded) {
            assert_eq!(decode_name(e).as_bytes(), *n, "{e}");
        }
        let mut unique = encoded.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{encoded:?}");
    }
}
