//! Key paths as operators write them (`watch[0].extensions[1]`), shared by every format so that
//! a problem names the same key whether the file was TOML, INI or YAML.

use std::fmt::Write as _;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A key of a table.
    Key(String),
    /// An item of a list.
    Index(usize),
}

/// A key path as operators write it: `watch[0].extensions`; keys that are not bare words are
/// quoted.
pub(crate) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                } else {
                    let _ = write!(out, "{k:?}");
                }
            }
        }
    }
    out
}

/// Whether `key` is `prefix` or lies under it.
pub(crate) fn under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Whether `key` is one of `prefixes` or lies under one.
pub(crate) fn under_any(key: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| under(key, p))
}

/// The key path one level up: `watch[0].extensions[1]` → `watch[0].extensions` → `watch[0]` →
/// `watch` → none.
pub(crate) fn parent(key: &str) -> Option<&str> {
    let cut = key.rfind(['.', '['])?;
    Some(&key[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_render_like_toml() {
        let path = [
            Seg::Key("watch".into()),
            Seg::Index(1),
            Seg::Key("output".into()),
        ];
        assert_eq!(render(&path), "watch[1].output");
        assert_eq!(render(&[Seg::Key("a b".into())]), "\"a b\"");
        assert!(under_any("watch[0].source", &["watch".into()]));
        assert!(under_any("watch", &["watch".into()]));
        assert!(!under_any("watcher", &["watch".into()]));
    }

    #[test]
    fn parents_walk_up_to_the_section() {
        let mut key = "watch[0].extensions[1]";
        let mut seen = vec![key];
        while let Some(up) = parent(key) {
            seen.push(up);
            key = up;
        }
        assert_eq!(
            seen,
            [
                "watch[0].extensions[1]",
                "watch[0].extensions",
                "watch[0]",
                "watch"
            ]
        );
    }
}
