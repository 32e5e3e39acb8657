//! Strict loading of `agent.toml`: every syntax, unknown-key, type and validation problem is
//! reported at once, each with its key path and, where it helps, a "did you mean".
//!
//! How: the file is parsed to a TOML table, then every top-level section is deserialized on its
//! own (and, when it fails, every key of it on its own), so one bad value hides no other. Unknown
//! keys are collected with `serde_ignored`; the keys that would have been valid come from serde
//! itself ([`crate::fields`]). Keys with type errors are then dropped, the rest deserialized, and
//! the result validated ([`crate::validate`]); problems under a dropped key are not repeated.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::agent::{
    AgentConfig, AgentSection, Alerts, Captions, Disk, Email, Logging, Readiness, Transcode,
    WatchRoot,
};
use crate::fields::field_names;
use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::validate::{normalize, validate};

/// A config that loaded, with the warnings worth showing to the operator.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config, extensions normalised (see [`normalize`]).
    pub config: AgentConfig,
    /// Problems that do not stop the agent.
    pub warnings: Vec<Problem>,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file has at least one error; `problems` holds every error and warning, errors first.
    #[error("{}", list(problems))]
    Invalid {
        /// Everything wrong with the file.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (none for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems } => problems,
        }
    }
}

/// A header line and then one problem per line.
fn list(problems: &[Problem]) -> String {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut out = format!("invalid configuration: {errors} error{}", plural(errors));
    if warnings > 0 {
        let _ = write!(out, ", {warnings} warning{}", plural(warnings));
    }
    for problem in problems {
        let _ = write!(out, "\n{problem}");
    }
    out
}

/// Reads, parses and validates the agent config at `path`.
///
/// Relative paths inside the file are relative to the current directory, not to the file.
pub fn load_agent_config(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_agent_config(&text, Some(path))
}

/// Parses and validates an agent config; `origin` names the file in problems.
pub fn parse_agent_config(text: &str, origin: Option<&Path>) -> Result<Loaded, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError::Invalid {
        problems: problems.into_iter().map(|p| p.in_file(origin)).collect(),
    };
    let mut table: Table = text
        .parse()
        .map_err(|e| fail(vec![syntax_problem(text, &e)]))?;

    let mut found = Found::default();
    for (key, value) in &table {
        found.section(key, value);
    }
    for path in &found.failed {
        remove(&mut table, path);
    }
    let mut config: AgentConfig =
        Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let mut problems = found.problems.clone();
                problems.push(Problem::error("", e.message()));
                fail(problems)
            })?;

    let failed: Vec<String> = found.failed.iter().map(|p| render(p)).collect();
    let mut problems = found.problems;
    problems.extend(
        validate(&config, None)
            .into_iter()
            .filter(|p| !under_any(&p.key, &failed)),
    );
    // Errors first, then by key, which groups them by section.
    problems.sort_by(|a, b| (a.severity, &a.key).cmp(&(b.severity, &b.key)));
    if problems.iter().any(Problem::is_error) {
        return Err(fail(problems));
    }
    normalize(&mut config);
    let warnings = problems.into_iter().map(|p| p.in_file(origin)).collect();
    Ok(Loaded { config, warnings })
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key path as operators write it: `watch[0].extensions`.
fn render(path: &[Seg]) -> String {
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
fn under_any(key: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        key.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
    })
}

/// The problems found while deserializing, and the key paths whose values failed.
#[derive(Default)]
struct Found {
    problems: Vec<Problem>,
    failed: Vec<Vec<Seg>>,
}

impl Found {
    /// Checks the top-level `key`, drilling down to single keys when it fails.
    fn section(&mut self, key: &str, value: &Value) {
        let Some(error) = self.piece(key, value.clone(), None) else {
            return;
        };
        // Drill only into a value of the shape the section takes, else every key repeats one error.
        let mut drilled = false;
        let mut hint = None;
        match value {
            Value::Table(t) if self.takes_table(key) => {
                for (k, v) in t {
                    let at = vec![Seg::Key(key.into()), Seg::Key(k.clone())];
                    drilled |= self.key(key, Value::Table(one(k, v.clone())), None, at);
                }
            }
            Value::Array(items) if items.iter().all(Value::is_table) && self.takes_list(key) => {
                for (i, item) in items.iter().enumerate() {
                    for (k, v) in item.as_table().into_iter().flatten() {
                        let at = vec![Seg::Key(key.into()), Seg::Index(i), Seg::Key(k.clone())];
                        let piece = Value::Array(vec![Value::Table(one(k, v.clone()))]);
                        drilled |= self.key(key, piece, Some(i), at);
                    }
                }
            }
            Value::Table(_) if self.takes_list(key) => {
                hint = Some(format!("write [[{key}]] before each entry"));
            }
            Value::Array(_) if self.takes_table(key) => {
                hint = Some(format!(
                    "[{key}] is a single table: write [{key}], not [[{key}]]"
                ));
            }
            _ => {}
        }
        if !drilled {
            self.type_error(vec![Seg::Key(key.into())], &error, hint);
        }
    }

    /// Whether section `key` is a table (`[key]`).
    fn takes_table(&mut self, key: &str) -> bool {
        self.piece(key, Value::Table(Table::new()), None).is_none()
    }

    /// Whether section `key` is a list of tables (`[[key]]`).
    fn takes_list(&mut self, key: &str) -> bool {
        self.piece(key, Value::Array(vec![Value::Table(Table::new())]), None)
            .is_none()
    }

    /// Checks one drilled-down key; whether it failed.
    fn key(&mut self, section: &str, piece: Value, index: Option<usize>, at: Vec<Seg>) -> bool {
        let failed = self.piece(section, piece, index);
        if let Some(error) = &failed {
            self.type_error(at, error, None);
        }
        failed.is_some()
    }

    /// Deserializes `{section = value}` as a whole config, recording unknown keys (their array
    /// index replaced by `index`, as `value` holds one item) when it succeeds; else the
    /// error message.
    fn piece(&mut self, section: &str, value: Value, index: Option<usize>) -> Option<String> {
        let mut ignored = Vec::new();
        let result: Result<AgentConfig, _> =
            serde_ignored::deserialize(Value::Table(one(section, value)), |path| {
                let mut segs = Vec::new();
                segments(&path, &mut segs);
                ignored.push(segs);
            });
        // A failed piece is drilled into (or is a single bad key): its unknown keys come then.
        if let Err(e) = result {
            return Some(plain(e.message()));
        }
        for mut path in ignored {
            if let (Some(i), Some(Seg::Index(at))) = (index, path.get_mut(1)) {
                *at = i;
            }
            self.problems.push(unknown_key(&path));
        }
        None
    }

    fn type_error(&mut self, path: Vec<Seg>, message: &str, hint: Option<String>) {
        let hint = hint.or_else(|| variant_hint(message));
        self.problems
            .push(Problem::error(render(&path), message).with_hint_opt(hint));
        self.failed.push(path);
    }
}

/// A table with one key.
fn one(key: &str, value: Value) -> Table {
    let mut table = Table::new();
    table.insert(key.to_owned(), value);
    table
}

/// `serde_ignored`'s path as segments (options and newtypes add none).
fn segments(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
    use serde_ignored::Path as P;
    match path {
        P::Root => {}
        P::Seq { parent, index } => {
            segments(parent, out);
            out.push(Seg::Index(*index));
        }
        P::Map { parent, key } => {
            segments(parent, out);
            out.push(Seg::Key(key.clone()));
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            segments(parent, out);
        }
    }
}

/// The keys valid in the table at `parent`, when it is one of the config's structs.
fn known_keys(parent: &[Seg]) -> Option<&'static [&'static str]> {
    let section = match parent {
        [] => return Some(field_names::<AgentConfig>()),
        [Seg::Key(s)] => s.as_str(),
        [Seg::Key(s), Seg::Index(_)] if s == "watch" => return Some(field_names::<WatchRoot>()),
        [Seg::Key(a), Seg::Key(e)] if a == "alerts" && e == "email" => {
            return Some(field_names::<Email>())
        }
        _ => return None,
    };
    Some(match section {
        "agent" => field_names::<AgentSection>(),
        "readiness" => field_names::<Readiness>(),
        "transcode" => field_names::<Transcode>(),
        "captions" => field_names::<Captions>(),
        "disk" => field_names::<Disk>(),
        "alerts" => field_names::<Alerts>(),
        "logging" => field_names::<Logging>(),
        _ => return None,
    })
}

fn unknown_key(path: &[Seg]) -> Problem {
    let Some((Seg::Key(name), parent)) = path.split_last() else {
        return Problem::error(render(path), "unexpected value");
    };
    let hint = known_keys(parent).map(|known| {
        did_you_mean(name, known.iter().copied())
            .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")))
    });
    Problem::error(render(path), format!("unknown key `{name}`")).with_hint_opt(hint)
}

/// serde's message with operator words for Rust types (`expected u8` → a whole number …).
fn plain(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message;
    };
    let expected = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "a sequence" => "a list",
        e if e.starts_with("struct ") => "a table",
        e => e,
    };
    format!("{head}, expected {expected}")
}

/// "did you mean" for serde's `unknown variant `x`, expected one of `a`, `b``.
fn variant_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown variant `")?;
    let (bad, expected) = rest.split_once('`')?;
    did_you_mean(bad, expected.split('`').skip(1).step_by(2))
}

fn syntax_problem(text: &str, error: &toml::de::Error) -> Problem {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return Problem::error("", format!("TOML syntax error: {message}"));
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Problem::error(
        "",
        format!("TOML syntax error at line {line}, column {column}: {message}"),
    )
}

/// Drops the value at `path` (which failed to deserialize) so that the rest can be used.
fn remove(table: &mut Table, path: &[Seg]) {
    fn walk(value: &mut Value, path: &[Seg]) {
        match (value, path) {
            (Value::Table(t), [Seg::Key(k)]) => {
                t.remove(k);
            }
            (Value::Table(t), [Seg::Key(k), rest @ ..]) => {
                if let Some(v) = t.get_mut(k) {
                    walk(v, rest);
                }
            }
            (Value::Array(items), [Seg::Index(i), rest @ ..]) => {
                if let Some(v) = items.get_mut(*i) {
                    walk(v, rest);
                }
            }
            _ => {}
        }
    }
    let mut root = Value::Table(std::mem::take(table));
    walk(&mut root, path);
    if let Value::Table(t) = root {
        *table = t;
    }
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
    fn every_section_has_known_keys() {
        for section in field_names::<AgentConfig>() {
            let parent = match *section {
                "watch" => vec![Seg::Key("watch".into()), Seg::Index(0)],
                s => vec![Seg::Key(s.into())],
            };
            assert!(
                known_keys(&parent).is_some_and(|k| !k.is_empty()),
                "{section}"
            );
        }
    }

    #[test]
    fn type_names_become_words() {
        let cases = [
            (
                "invalid type: string \"high\", expected u8",
                "expected a whole number from 0 to 255",
            ),
            (
                "invalid value: integer `-1`, expected usize",
                "expected a whole number, 0 or more",
            ),
            (
                "invalid type: string \"x\", expected a sequence",
                "expected a list",
            ),
            (
                "invalid type: integer `3`, expected struct AgentSection",
                "expected a table",
            ),
            (
                "invalid type: integer `3`, expected a boolean",
                "expected a boolean",
            ),
        ];
        for (serde, want) in cases {
            assert!(plain(serde).ends_with(want), "{serde}");
        }
    }

    #[test]
    fn variant_hints() {
        let msg = "unknown variant `pol`, expected one of `auto`, `events`, `poll`";
        assert_eq!(variant_hint(msg).as_deref(), Some("did you mean `poll`?"));
        assert_eq!(variant_hint("invalid type: string"), None);
    }
}
