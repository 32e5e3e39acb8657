//! Which line of a file each key path came from, so that problems found after parsing (type
//! errors, validation) still point at a line.
//!
//! Each format fills a [`KeyLines`] its own way (TOML spans, the YAML scanner, the INI parser); a
//! problem whose exact key has no line takes the line of the nearest enclosing key, so a missing
//! `watch[0].done_dir` points at the `[[watch]]` header.

use std::collections::BTreeMap;

use crate::keypath::parent;
use crate::problem::Problem;

/// Key path → 1-based line where it is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    /// Records `key` at `line`; the first line recorded for a key wins.
    pub(crate) fn insert(&mut self, key: String, line: usize) {
        self.0.entry(key).or_insert(line);
    }

    /// The line of `key`, or of its nearest enclosing key.
    pub(crate) fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.0.get(key) {
                return Some(*line);
            }
            key = parent(key)?;
        }
    }

    /// Gives every problem without a line the line of its key.
    pub(crate) fn locate(&self, problems: Vec<Problem>) -> Vec<Problem> {
        problems
            .into_iter()
            .map(|p| {
                if p.line.is_some() || p.key.is_empty() {
                    return p;
                }
                let line = self.line_of(&p.key);
                p.at_line(line)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_the_enclosing_key() {
        let mut lines = KeyLines::default();
        lines.insert("watch[0]".into(), 3);
        lines.insert("watch[0].extensions".into(), 5);
        lines.insert("watch[0].extensions".into(), 9);
        assert_eq!(lines.line_of("watch[0].extensions[2]"), Some(5));
        assert_eq!(lines.line_of("watch[0].done_dir"), Some(3));
        assert_eq!(lines.line_of("agent.workers"), None);
        let located = lines.locate(vec![Problem::error("watch[0].mode", "x")]);
        assert_eq!(located[0].line, Some(3));
    }
}
