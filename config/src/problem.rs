//! [`Problem`]: one thing wrong with a config file, located by file and key path, with a hint.
//!
//! Loading and validation collect every problem rather than stopping at the first, so that an
//! operator fixes a file in one go. A problem carries the line it concerns when the format gives
//! one (TOML, INI, block-style YAML), found from its key path after the fact (module `lines`).

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The config cannot be used.
    Error,
    /// The config works but is probably not what was meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One thing wrong with a config.
///
/// Displays as `agent.toml:12: transcode.crf: 70 is out of range 0-51 (hint: …)`, the way
/// compilers point at a line; warnings start with `warning: `. The file, line and key parts are
/// left out when unknown (empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The config file, when the config came from one.
    pub file: Option<PathBuf>,
    /// The line in `file` (1-based), when the format tells it.
    pub line: Option<usize>,
    /// Where in the file: a key path like `watch[1].output` or `transcode.crf`; empty for the
    /// file as a whole (such as a syntax error).
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Problem {
    /// An error at `key`.
    pub fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, key, message)
    }

    /// A warning at `key`.
    pub fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, key, message)
    }

    fn new(severity: Severity, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: None,
            line: None,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// The same problem with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same problem with a hint, when there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The same problem located in `file`.
    pub fn in_file(mut self, file: Option<&Path>) -> Self {
        self.file = file.map(Path::to_path_buf);
        self
    }

    /// The same problem at `line` of its file (kept when `line` is `None`).
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line.or(self.line);
        self
    }

    /// Whether this problem makes the config unusable.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_key_message_and_hint() {
        let cases = [
            (
                Problem::error("transcode.crf", "70 is out of range 0-51")
                    .with_hint("lower is better quality; 18-28 is usual")
                    .in_file(Some(Path::new("agent.toml"))),
                "agent.toml: transcode.crf: 70 is out of range 0-51 \
                 (hint: lower is better quality; 18-28 is usual)",
            ),
            (
                Problem::warning("watch[1].output", "same output as watch[0]"),
                "warning: watch[1].output: same output as watch[0]",
            ),
            (
                Problem::error("", "syntax error").in_file(Some(Path::new("a.toml"))),
                "a.toml: syntax error",
            ),
            (
                Problem::error("agent.workers", "0 is out of range")
                    .in_file(Some(Path::new("agent.ini")))
                    .at_line(Some(7)),
                "agent.ini:7: agent.workers: 0 is out of range",
            ),
            (
                Problem::warning("logging.level", "odd").at_line(Some(3)),
                "warning: line 3: logging.level: odd",
            ),
        ];
        for (problem, want) in cases {
            assert_eq!(problem.to_string(), want);
        }
    }

    #[test]
    fn errors_sort_before_warnings() {
        assert!(Severity::Error < Severity::Warning);
        assert!(Problem::error("a", "b").is_error());
        assert!(!Problem::warning("a", "b").is_error());
    }
}
