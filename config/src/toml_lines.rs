//! The line of every key of a TOML file, found by a light scan of the text after `toml` accepted
//! it: table headers (`[agent]`, `[[watch]]`, counted so the second is `watch[1]`) and
//! `key = value` lines (dotted keys included). Values spanning lines (arrays, multi-line strings)
//! are skipped over, so their inner lines are never mistaken for keys.
//!
//! The text is known to be valid TOML, so the scan only has to follow strings, comments and
//! brackets; keys inside inline tables take the line of the key that holds the table.

use std::collections::HashMap;

use crate::keypath::{render, Seg};
use crate::lines::KeyLines;

/// Lines of every header and key of `text` (valid TOML).
pub(crate) fn key_lines(text: &str) -> KeyLines {
    let mut lines = KeyLines::default();
    let mut table: Vec<Seg> = Vec::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut value = ValueScan::default();
    for (n, line) in text.lines().enumerate() {
        let no = n + 1;
        if value.is_open() {
            value.feed(line);
            continue;
        }
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("[[") {
            let keys = dotted_key(rest).0;
            let Some((last, prefix)) = keys.split_last() else {
                continue;
            };
            let mut path = resolve(prefix, &arrays);
            path.push(Seg::Key(last.clone()));
            lines.insert(render(&path), no);
            let count = arrays.entry(render(&path)).or_insert(0);
            path.push(Seg::Index(*count));
            *count += 1;
            lines.insert(render(&path), no);
            table = path;
        } else if let Some(rest) = t.strip_prefix('[') {
            table = resolve(&dotted_key(rest).0, &arrays);
            lines.insert(render(&table), no);
        } else if !t.is_empty() && !t.starts_with('#') {
            let (keys, rest) = dotted_key(t);
            let mut path = table.clone();
            for key in keys {
                path.push(Seg::Key(key));
                lines.insert(render(&path), no);
            }
            value.feed(rest.trim_start().strip_prefix('=').unwrap_or(rest));
        }
    }
    lines
}

/// Key segments to a path, stepping into the last item of each array of tables on the way (so
/// `[watch.x]` after two `[[watch]]` is `watch[1].x`).
fn resolve(keys: &[String], arrays: &HashMap<String, usize>) -> Vec<Seg> {
    let mut path = Vec::new();
    for key in keys {
        path.push(Seg::Key(key.clone()));
        if let Some(count) = arrays.get(&render(&path)).filter(|c| **c > 0) {
            path.push(Seg::Index(count - 1));
        }
    }
    path
}

/// A dotted key at the start of `s` (`a."b.c".'d'`) and what follows it.
fn dotted_key(s: &str) -> (Vec<String>, &str) {
    let mut keys = Vec::new();
    let mut rest = s.trim_start();
    loop {
        let (key, after) = if let Some(quoted) = rest.strip_prefix('"') {
            basic_string(quoted)
        } else if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').unwrap_or(quoted.len());
            (
                quoted[..end].to_owned(),
                quoted.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            (rest[..end].to_owned(), &rest[end..])
        };
        keys.push(key);
        rest = after.trim_start();
        match rest.strip_prefix('.') {
            Some(more) => rest = more.trim_start(),
            None => return (keys, rest),
        }
    }
}

/// The content of a basic string whose opening quote is already consumed (escapes kept as
/// written, which is enough to name a key) and the text after its closing quote.
fn basic_string(s: &str) -> (String, &str) {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return (s[..i].to_owned(), &s[i + 1..]),
            _ => {}
        }
    }
    (s.to_owned(), "")
}

/// Where a value that may span lines stands: inside a multi-line string, or inside brackets.
#[derive(Debug, Default)]
struct ValueScan {
    /// The delimiter of the multi-line string being read (`"""` or `'''`).
    string: Option<&'static str>,
    /// Open `[` and `{`.
    depth: usize,
}

impl ValueScan {
    fn is_open(&self) -> bool {
        self.string.is_some() || self.depth > 0
    }

    /// Follows one line (or the value part of a key line).
    fn feed(&mut self, line: &str) {
        let mut rest = line;
        loop {
            if let Some(delim) = self.string {
                let Some(end) = find_close(rest, delim) else {
                    return;
                };
                rest = &rest[end + delim.len()..];
                self.string = None;
            }
            let Some(start) = rest.find(['"', '\'', '#', '[', ']', '{', '}']) else {
                return;
            };
            let c = rest.as_bytes()[start];
            rest = &rest[start..];
            match c {
                b'#' => return,
                b'[' | b'{' => {
                    self.depth += 1;
                    rest = &rest[1..];
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    rest = &rest[1..];
                }
                _ => {
                    let delim = if c == b'"' { "\"\"\"" } else { "'''" };
                    if let Some(after) = rest.strip_prefix(delim) {
                        self.string = Some(delim);
                        rest = after;
                    } else if c == b'"' {
                        rest = basic_string(&rest[1..]).1;
                    } else {
                        let body = &rest[1..];
                        rest = body.find('\'').map_or("", |end| &body[end + 1..]);
                    }
                }
            }
        }
    }
}

/// Where the closing `delim` of a multi-line string is in `s` (an escaped `"` does not close a
/// basic string).
fn find_close(s: &str, delim: &str) -> Option<usize> {
    if delim == "'''" {
        return s.find(delim);
    }
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' if s[i..].starts_with(delim) => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_headers_keys_and_skips_values_spanning_lines() {
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
            ("agent.x.\"y.z\"", 5),
            ("watch", 7),
            ("watch[0]", 7),
            ("watch[0].source", 8),
            ("watch[0].extensions", 9),
            ("watch[0].extensions[1]", 9),
            ("watch[0].note", 13),
            ("watch[1]", 18),
            ("watch[1].output", 19),
            ("watch[1].sub", 20),
            ("watch[1].sub.q", 21),
        ];
        for (key, line) in want {
            assert_eq!(lines.line_of(key), Some(line), "{key}");
        }
        assert_eq!(lines.line_of("fake"), None);
    }
}
