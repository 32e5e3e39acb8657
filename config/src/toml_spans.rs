//! The line of every key of a TOML file, from the spans of `toml`'s own parser
//! ([`toml::de::DeTable`]): each key (a header's, a dotted key's, an inline table's) and each
//! table of an array of tables (its `[[header]]`) gets the line its span starts on. An item of
//! an array of plain values has no line of its own: a problem with it points at the key that
//! holds the array, where the operator reads the whole list. The file has been parsed once
//! already by the time this runs, so a text that does not parse gives no lines rather than an
//! error.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::keypath::{render, Seg};
use crate::lines::KeyLines;

/// Lines of every key and array item of `text` (valid TOML).
pub(crate) fn key_lines(text: &str) -> KeyLines {
    let mut walk = Walk {
        line_starts: text.match_indices('\n').map(|(i, _)| i + 1).collect(),
        path: Vec::new(),
        lines: KeyLines::default(),
    };
    if let Ok(doc) = DeTable::parse(text) {
        walk.table(doc.get_ref());
    }
    walk.lines
}

/// The walk's state: where lines start, the key path being visited, what was found.
struct Walk {
    /// Byte offsets where lines 2, 3, … start.
    line_starts: Vec<usize>,
    path: Vec<Seg>,
    lines: KeyLines,
}

impl Walk {
    fn table(&mut self, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            self.path.push(Seg::Key(key.get_ref().to_string()));
            self.record(key.span().start);
            self.value(value);
            self.path.pop();
        }
    }

    fn value(&mut self, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(table) => self.table(table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let DeValue::Table(table) = item.get_ref() else {
                        continue;
                    };
                    self.path.push(Seg::Index(i));
                    self.record(item.span().start);
                    self.table(table);
                    self.path.pop();
                }
            }
            _ => {}
        }
    }

    /// Records the current path at the line of byte `offset` (1-based).
    fn record(&mut self, offset: usize) {
        let line = self.line_starts.partition_point(|&start| start <= offset) + 1;
        self.lines.insert(render(&self.path), line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_headers_keys_and_tables_exactly() {
        let text = r#"
top = 1
[agent]
workers = 2
x."y.z" = 3 # comment [

[[watch]]
source = "a # not a comment"
extensions = [
  "ts", # [ in a comment
  "wtv]",
]
note = """
fake = 1
[fake]
"""
inline = { a = 1,
  b = 2 }

[[watch]]
'output' = 'b'
[watch.sub]
q = 1
"#;
        let lines = key_lines(text);
        let want = [
            ("top", 2),
            ("agent", 3),
            ("agent.workers", 4),
            ("agent.x", 5),
            ("agent.x.\"y.z\"", 5),
            ("watch", 7),
            ("watch[0]", 7),
            ("watch[0].source", 8),
            ("watch[0].extensions", 9),
            ("watch[0].extensions[0]", 9),
            ("watch[0].extensions[1]", 9),
            ("watch[0].note", 13),
            ("watch[0].inline.a", 17),
            ("watch[0].inline.b", 18),
            ("watch[1]", 20),
            ("watch[1].output", 21),
            ("watch[1].sub", 22),
            ("watch[1].sub.q", 23),
            ("watch[1].sub.missing", 22),
        ];
        for (key, line) in want {
            assert_eq!(lines.line_of(key), Some(line), "{key}");
        }
        assert_eq!(lines.line_of("fake"), None);
        assert_eq!(key_lines("not = [valid").line_of("not"), None);
    }
}
