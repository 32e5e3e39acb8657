//! Watch roots as the running agent sees them: absolute folders, the extensions they accept, and
//! where each source's output goes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use h264_config::agent::WatchRoot;

use crate::key::SourceKey;
use crate::known_roots::{KnownRoots, RootKind};

/// One watch root, resolved.
#[derive(Debug, Clone)]
pub struct Root {
    /// The source folder, absolute and canonical (event paths start with it).
    pub source: Arc<Path>,
    /// The output folder, absolute.
    pub output: PathBuf,
    /// Accepted extensions, lower case, without the dot.
    pub extensions: HashSet<String>,
    /// The configuration of this root.
    pub cfg: WatchRoot,
    /// Whether the source folder was a mount point when the agent first saw it
    /// ([`crate::known_roots`]).
    pub source_mount_point: bool,
    /// Whether the output folder was a mount point when the agent first saw it.
    pub output_mount_point: bool,
}

impl Root {
    /// Resolves a configured root. A root seen for the first time must exist (the source) or
    /// is created (the output), and is remembered in `known`; a remembered root that is missing
    /// or unreachable now is neither an error nor recreated: it is used under the name it had
    /// when first seen, and [`crate::root_health`] holds it until it is back.
    pub fn resolve(cfg: &WatchRoot, known: &mut KnownRoots) -> std::io::Result<Root> {
        let (source, source_mount_point) = resolve_one(&cfg.source, RootKind::Watch, known, false)
            .map_err(|e| with_context(e, "watch source", &cfg.source))?;
        let (output, output_mount_point) = resolve_one(&cfg.output, RootKind::Output, known, true)
            .map_err(|e| with_context(e, "output folder", &cfg.output))?;
        let extensions = cfg
            .extensions
            .iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .collect();
        Ok(Root {
            source: Arc::from(source),
            output,
            extensions,
            cfg: cfg.clone(),
            source_mount_point,
            output_mount_point,
        })
    }

    /// The key of `path` if it is a source this root converts (right extension, not hidden).
    pub fn key_for(&self, path: &Path) -> Option<SourceKey> {
        let rel = path.strip_prefix(&self.source).ok()?;
        if rel.as_os_str().is_empty() || (!self.cfg.recursive && rel.components().count() > 1) {
            return None;
        }
        let name = rel.file_name()?.to_string_lossy();
        if name.starts_with('.')
            || rel
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            return None;
        }
        let ext = rel.extension()?.to_string_lossy().to_ascii_lowercase();
        self.extensions
            .contains(&ext)
            .then(|| SourceKey::new(self.source.clone(), rel.to_path_buf()))
    }

    /// The MP4 a source becomes: the same relative folder under `output`, extension `.mp4`.
    pub fn output_for(&self, rel: &Path) -> PathBuf {
        self.output.join(rel).with_extension("mp4")
    }
}

/// `e` with what failed and where.
fn with_context(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Resolves one root folder: an existing one is remembered in `known` (the first time) and
/// returned canonical; a remembered one that is missing or unreachable is returned as first
/// seen, with an error in the log; a new one that is missing is created when `create`, else an
/// error. With whether it was a mount point when first seen.
fn resolve_one(
    configured: &Path,
    kind: RootKind,
    known: &mut KnownRoots,
    create: bool,
) -> std::io::Result<(PathBuf, bool)> {
    let absolute = std::path::absolute(configured)?;
    let found = std::fs::metadata(configured).and_then(|m| {
        if m.is_dir() {
            std::fs::canonicalize(configured)
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "it is not a folder",
            ))
        }
    });
    let canonical = match found {
        Ok(canonical) => canonical,
        Err(e) => match known.get(&absolute, kind) {
            Some(seen) => {
                tracing::error!(
                    root = %absolute.display(), kind = kind.as_str(), error = %e,
                    "the {} root is missing or unreachable; it existed before, so it is not \
                     recreated (a share that is not mounted?): its recordings wait until it is \
                     back, the other roots go on",
                    kind.as_str()
                );
                return Ok((seen.resolved.clone(), seen.mount_point));
            }
            // Only a root never seen is created, the first time.
            None if create && e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(configured)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create it: {e}")))?;
                std::fs::canonicalize(configured)?
            }
            None => return Err(e),
        },
    };
    known.remember(&absolute, &canonical, kind)?;
    let mount_point = known.get(&absolute, kind).is_some_and(|k| k.mount_point);
    Ok((canonical, mount_point))
}

/// The root a key belongs to, among `roots`.
pub fn root_of<'a>(roots: &'a [Root], key: &SourceKey) -> Option<&'a Root> {
    roots.iter().find(|r| *r.source == *key.root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WatchRoot {
            source: dir.path().join("in"),
            output: dir.path().join("out"),
            ..WatchRoot::default()
        };
        std::fs::create_dir(&cfg.source).unwrap();
        let mut known = KnownRoots::load(dir.path()).unwrap();
        let root = Root::resolve(&cfg, &mut known).unwrap();
        let key = root
            .key_for(&root.source.join("day 1/-Show 'x' ü.TS"))
            .unwrap();
        assert_eq!(key.rel(), Path::new("day 1/-Show 'x' ü.TS"));
        assert_eq!(
            root.output_for(key.rel()),
            root.output.join("day 1/-Show 'x' ü.mp4")
        );
        assert!(root.key_for(&root.source.join(".hidden.ts")).is_none());
        assert!(root.key_for(&root.source.join("notes.txt")).is_none());
        assert!(root.key_for(Path::new("/elsewhere/a.ts")).is_none());
    }
}
