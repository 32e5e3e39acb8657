//! Watch roots as the running agent sees them: absolute folders, the extensions they accept, and
//! where each source's output goes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use h264_config::agent::WatchRoot;

use crate::key::SourceKey;

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
}

impl Root {
    /// Resolves a configured root: the source must exist; the output folder is created.
    pub fn resolve(cfg: &WatchRoot) -> std::io::Result<Root> {
        let source = std::fs::canonicalize(&cfg.source).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("watch source {}: {e}", cfg.source.display()),
            )
        })?;
        std::fs::create_dir_all(&cfg.output).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create output folder {}: {e}", cfg.output.display()),
            )
        })?;
        let output = std::fs::canonicalize(&cfg.output)?;
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
        let root = Root::resolve(&cfg).unwrap();
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
