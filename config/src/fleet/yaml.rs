//! Reading a fleet manifest's YAML safely, with `yaml_serde`, into the TOML-shaped value tree the
//! rest of the crate works on.
//!
//! Guards, each ending in a clear error rather than a hang or a crash: the size limit and a
//! flow-nesting limit before parsing ([`crate::limits`]; `yaml_serde`'s parser slows down
//! quadratically on deeply nested flow maps), `yaml_serde`'s own recursion and alias-repetition
//! limits while parsing, and a budget of [`MAX_NODES`] values counted as the document is read,
//! so that aliases expanding exponentially ("billion laughs") stop after a few thousand values
//! instead of filling memory. Tags, null values, non-text keys and duplicate keys are reported
//! with their key path.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::{Table, Value};

use crate::keypath::{render, Seg};
use crate::limits::{flow_nesting, MAX_NESTING};
use crate::problem::Problem;

/// The most values (scalars, lists and maps, aliases counted each time they are expanded) a
/// manifest may hold. Real manifests hold about a hundred.
pub const MAX_NODES: usize = 10_000;

/// A YAML value as read, before it is checked.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Parses `text` into a table; every problem found, or the problem that stopped the reading.
pub(crate) fn read(text: &str) -> Result<(Table, Vec<Problem>), Problem> {
    flow_nesting(text, MAX_NESTING)?;
    let budget = Cell::new(0);
    let seed = NodeSeed {
        budget: &budget,
        depth: 0,
    };
    let node = seed
        .deserialize(yaml_serde::Deserializer::from_str(text))
        .map_err(|e| {
            let line = e.location().map(|l| l.line());
            Problem::error("", format!("YAML: {e}"))
                .with_hint_opt(hint_for(&e.to_string()))
                .at_line(line)
        })?;
    let mut problems = Vec::new();
    match node {
        Node::Map(_) => {}
        Node::Null => return Err(Problem::error("", "is empty").with_hint(EXAMPLE)),
        _ => return Err(Problem::error("", "is not a YAML map of keys").with_hint(EXAMPLE)),
    }
    let mut path = Vec::new();
    match convert(node, &mut path, &mut problems) {
        Some(Value::Table(table)) => Ok((table, problems)),
        _ => Ok((Table::new(), problems)),
    }
}

const EXAMPLE: &str =
    "a manifest starts with apiVersion: h264create.dev/v1, kind: FleetConfig, metadata and spec";

fn hint_for(message: &str) -> Option<String> {
    let hint = if message.contains("repetition limit") || message.contains("values") {
        "write the values out: anchors and aliases (&x, *x) that expand this much are refused"
    } else if message.contains("recursion limit") || message.contains("nest") {
        "a manifest nests a few levels; this looks generated or hostile"
    } else if message.contains("more than one document") {
        "keep one manifest per file (no `---` between two)"
    } else if message.contains("tag") {
        "remove the `!tag`: manifests hold plain values"
    } else {
        return None;
    };
    Some(hint.into())
}

/// Checks a node and turns it into a TOML value; `None` (with a problem) where that fails.
fn convert(node: Node, path: &mut Vec<Seg>, problems: &mut Vec<Problem>) -> Option<Value> {
    let at = |path: &[Seg]| render(path);
    match node {
        Node::Null => {
            let hint =
                "give it a value or remove the key (`{}` is an empty map, `[]` an empty list)";
            problems.push(Problem::error(at(path), "has no value (null)").with_hint(hint));
            None
        }
        Node::Bool(b) => Some(Value::Boolean(b)),
        Node::Int(i) => match i64::try_from(i) {
            Ok(i) => Some(Value::Integer(i)),
            Err(_) => {
                problems.push(Problem::error(at(path), format!("{i} is too large")));
                None
            }
        },
        Node::Float(f) => Some(Value::Float(f)),
        Node::Str(s) => Some(Value::String(s)),
        Node::Seq(items) => {
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                path.push(Seg::Index(i));
                if let Some(v) = convert(item, path, problems) {
                    out.push(v);
                }
                path.pop();
            }
            Some(Value::Array(out))
        }
        Node::Map(entries) => {
            let mut table = Table::new();
            for (key, value) in entries {
                let key = match key {
                    Node::Str(s) => s,
                    other => {
                        let message = format!("has a key that is not text: {other:?}");
                        problems.push(Problem::error(at(path), message));
                        continue;
                    }
                };
                path.push(Seg::Key(key.clone()));
                if table.contains_key(&key) {
                    let message = "is set twice".to_string();
                    problems.push(Problem::error(at(path), message).with_hint("keep one of them"));
                } else if let Some(v) = convert(value, path, problems) {
                    table.insert(key, v);
                }
                path.pop();
            }
            Some(Value::Table(table))
        }
    }
}

/// Reads one value, counting it against the budget and its depth against [`MAX_NESTING`].
#[derive(Clone, Copy)]
struct NodeSeed<'a> {
    budget: &'a Cell<usize>,
    depth: usize,
}

impl NodeSeed<'_> {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        let used = self.budget.get() + 1;
        self.budget.set(used);
        if used > MAX_NODES {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_NODES} values"
            )));
        }
        Ok(())
    }

    fn deeper<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= MAX_NESTING {
            return Err(E::custom(format!(
                "lists and maps nest more than {MAX_NESTING} deep"
            )));
        }
        Ok(Self {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.spend()?;
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.spend()?;
        let inner = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        self.spend()?;
        let inner = self.deeper()?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(inner)? {
            let value = map.next_value_seed(inner)?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Node, A::Error> {
        Err(de::Error::custom(
            "YAML tags (`!name value`) are not allowed",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_documents() {
        let (table, problems) = read("a: 1\nb: [x, 2.5, true]\nc: {d: e}\n").unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(table["a"].as_integer(), Some(1));
        assert_eq!(table["b"][1].as_float(), Some(2.5));
        assert_eq!(table["c"]["d"].as_str(), Some("e"));
    }

    #[test]
    fn reports_nulls_duplicates_and_odd_keys_by_path() {
        let (_, problems) = read("a:\nb: {c: ~}\nd: 1\nd: 2\n1: x\n").unwrap();
        let found: Vec<_> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("a", "has no value (null)"),
                ("b.c", "has no value (null)"),
                ("d", "is set twice"),
                ("", "has a key that is not text: Int(1)"),
            ]
        );
    }

    #[test]
    fn refuses_tags_several_documents_and_non_maps() {
        for (text, want) in [
            ("a: !secret x\n", "tags"),
            ("a: 1\n---\nb: 2\n", "one manifest per file"),
            ("- a\n- b\n", "not a YAML map"),
            ("", "is empty"),
            ("a: [1, 2\n", "YAML"),
        ] {
            let p = read(text).unwrap_err();
            assert!(p.to_string().contains(want), "{text:?}: {p}");
        }
    }
}
