//! Strict deserialization of a parsed table into a typed config, every problem collected.
//!
//! How: every top-level section is deserialized on its own (and, when it fails, every key of it
//! on its own), so one bad value hides no other. Unknown keys are collected with
//! `serde_ignored`; the keys that would have been valid come from serde itself
//! ([`crate::fields`]). Keys with type errors are then dropped and the rest deserialized, so that
//! validation can still look at what is left. Every format ends up here: TOML directly, INI and
//! fleet YAML after being turned into the same table shape.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::keypath::{render, Seg};
use crate::problem::Problem;
use crate::suggest::did_you_mean;

/// The keys valid in the table at a path, when that table is one of the config's structs.
pub(crate) type KnownKeys = fn(&[Seg]) -> Option<&'static [&'static str]>;

/// What strict deserialization found.
#[derive(Debug)]
pub(crate) struct Outcome<T> {
    /// The value with every failed key dropped (at its default); `None` when even that failed.
    pub value: Option<T>,
    /// Unknown keys and type errors.
    pub problems: Vec<Problem>,
    /// Key paths whose values failed; later problems under them only repeat these.
    pub failed: Vec<String>,
}

/// Deserializes `table` as a `T`, reporting unknown keys (with "did you mean" from `known`) and
/// type errors, each at its key path.
pub(crate) fn deserialize<T: DeserializeOwned>(mut table: Table, known: KnownKeys) -> Outcome<T> {
    let mut found = Found::<T> {
        known,
        problems: Vec::new(),
        failed: Vec::new(),
        root: PhantomData,
    };
    for (key, value) in &table {
        found.section(key, value);
    }
    for path in &found.failed {
        remove(&mut table, path);
    }
    let mut problems = found.problems;
    let value = match Value::Table(table).try_into::<T>() {
        Ok(value) => Some(value),
        Err(e) => {
            problems.push(Problem::error("", plain(e.message())));
            None
        }
    };
    Outcome {
        value,
        problems,
        failed: found.failed.iter().map(|p| render(p)).collect(),
    }
}

/// The problems found while deserializing, and the key paths whose values failed.
struct Found<T> {
    known: KnownKeys,
    problems: Vec<Problem>,
    failed: Vec<Vec<Seg>>,
    root: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Found<T> {
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

    /// Deserializes `{section = value}` as a whole `T`, recording unknown keys (their array
    /// index replaced by `index`, as `value` holds one item) when it succeeds; else the error.
    fn piece(&mut self, section: &str, value: Value, index: Option<usize>) -> Option<String> {
        let mut ignored = Vec::new();
        let result: Result<T, _> =
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
            let problem = unknown_key(&path, self.known);
            self.problems.push(problem);
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
pub(crate) fn one(key: &str, value: Value) -> Table {
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

/// An unknown key, with the closest known key or the list of known keys as hint.
pub(crate) fn unknown_key(path: &[Seg], known: KnownKeys) -> Problem {
    let Some((Seg::Key(name), parent)) = path.split_last() else {
        return Problem::error(render(path), "unexpected value");
    };
    let hint = known(parent).map(|known| {
        did_you_mean(name, known.iter().copied())
            .unwrap_or_else(|| format!("known keys here: {}", known.join(", ")))
    });
    Problem::error(render(path), format!("unknown key `{name}`")).with_hint_opt(hint)
}

/// serde's message with operator words for Rust types (`expected u8` → a whole number …).
pub(crate) fn plain(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message;
    };
    let expected = match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
        "f64" | "f32" => "a number",
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
