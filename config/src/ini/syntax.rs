//! The INI grammar, line by line: `[section]` headers (with an optional `:label` or `.label`),
//! `key = value` (or `key: value`) entries, and `;` / `#` comments, whole-line or after a value
//! (preceded by a space). Comments are kept with the entry or header they precede, so migration
//! can carry them into the TOML. No continuation lines, no interpolation.

use crate::problem::Problem;

/// A parsed INI file: its sections in file order, and the problems of its syntax.
#[derive(Debug, Default)]
pub(crate) struct IniDoc {
    /// Sections in file order (repeated names stay separate).
    pub sections: Vec<Section>,
    /// Comments after the last entry of the file.
    pub trailing: Vec<String>,
    /// Lines that are neither header, entry nor comment; entries before any header.
    pub problems: Vec<Problem>,
}

/// `[name]` or `[name:label]` and the entries under it.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// The name, lower case (`watch`).
    pub name: String,
    /// The label after `:` or `.` (`[watch:news]` → `news`), as written.
    pub label: Option<String>,
    /// The header as written, for messages and migration comments.
    pub header: String,
    /// Where the header is (1-based).
    pub line: usize,
    /// Comment lines just above the header, and after it on the same line.
    pub comments: Vec<String>,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

/// `key = value`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The key, lower case, `-` read as `_`.
    pub key: String,
    /// The key as written.
    pub raw_key: String,
    /// The value as written, trimmed, without its trailing comment; quotes still in.
    pub value: String,
    /// Where it is (1-based).
    pub line: usize,
    /// Comment lines just above the entry, and after it on the same line.
    pub comments: Vec<String>,
}

/// Parses `text` line by line; never fails, problems are collected in the result.
pub(crate) fn parse(text: &str) -> IniDoc {
    let mut doc = IniDoc::default();
    let mut pending: Vec<String> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let t = raw.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(comment) = t.strip_prefix([';', '#']) {
            pending.push(comment.trim().to_owned());
            continue;
        }
        if t.starts_with('[') {
            match header(t) {
                Ok((name, label, inline)) => {
                    let mut comments = std::mem::take(&mut pending);
                    comments.extend(inline);
                    doc.sections.push(Section {
                        name: name.to_lowercase(),
                        label,
                        header: t.split(']').next().unwrap_or(t).to_owned() + "]",
                        line,
                        comments,
                        entries: Vec::new(),
                    });
                }
                Err(message) => doc.problems.push(
                    Problem::error("", message)
                        .with_hint("a section header looks like [transcode] or [watch:news]")
                        .at_line(Some(line)),
                ),
            }
            continue;
        }
        let Some(split) = t.find(['=', ':']) else {
            doc.problems.push(
                Problem::error(
                    "",
                    format!("`{t}` is not `key = value`, a [section] or a comment"),
                )
                .with_hint("values cannot continue on the next line; start comments with ; or #")
                .at_line(Some(line)),
            );
            continue;
        };
        let raw_key = t[..split].trim().to_owned();
        let (value, inline) = split_comment(t[split + 1..].trim());
        let mut comments = std::mem::take(&mut pending);
        comments.extend(inline.map(str::to_owned));
        let entry = Entry {
            key: raw_key.to_lowercase().replace('-', "_"),
            raw_key,
            value: value.to_owned(),
            line,
            comments,
        };
        match doc.sections.last_mut() {
            Some(section) => section.entries.push(entry),
            None => doc.problems.push(
                Problem::error(
                    "",
                    format!("`{}` comes before any [section]", entry.raw_key),
                )
                .with_hint("put it under the section it belongs to, like [agent]")
                .at_line(Some(line)),
            ),
        }
    }
    doc.trailing = pending;
    doc
}

/// `[name]`, `[name:label]` or `[name.label]`, then an optional comment.
fn header(t: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let Some(close) = t.find(']') else {
        return Err(format!("`{t}`: the section header has no closing `]`"));
    };
    let inner = t[1..close].trim();
    let rest = t[close + 1..].trim();
    let inline = match rest.strip_prefix([';', '#']) {
        Some(comment) => Some(comment.trim().to_owned()),
        None if rest.is_empty() => None,
        None => {
            return Err(format!(
                "`{t}`: unexpected `{rest}` after the section header"
            ))
        }
    };
    let (name, label) = match inner.split_once([':', '.']) {
        Some((name, label)) => (name.trim(), Some(label.trim())),
        None => (inner, None),
    };
    if name.is_empty() || label.is_some_and(str::is_empty) {
        return Err(format!("`{t}`: empty section name"));
    }
    Ok((name.to_owned(), label.map(str::to_owned), inline))
}

/// A value and its trailing comment: `;` or `#` after a space, outside quotes.
pub(crate) fn split_comment(value: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut token_start = true;
    let mut prev = ' ';
    for (i, c) in value.char_indices() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == ';' || c == '#') && prev.is_whitespace() => {
                return (value[..i].trim_end(), Some(value[i + 1..].trim()));
            }
            None if (c == '"' || c == '\'') && token_start => quote = Some(c),
            None => {}
        }
        if quote.is_none() {
            token_start = c == ',' || (c.is_whitespace() && token_start);
        } else {
            token_start = false;
        }
        prev = c;
    }
    (value, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_entries_and_comments() {
        let text = "\
; top comment
[Agent] ; inline
Workers = 2   ; two
state-dir: /var/lib/h264 # colon form

[watch:news]
# the news root
source = \"/srv/rec;1\" ; quoted semicolon
[watch.sport]
source = C:\\rec#1
; trailing
";
        let doc = parse(text);
        assert!(doc.problems.is_empty(), "{:?}", doc.problems);
        let names: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.name.as_str(), s.label.as_deref(), s.line))
            .collect();
        assert_eq!(
            names,
            [
                ("agent", None, 2),
                ("watch", Some("news"), 6),
                ("watch", Some("sport"), 9)
            ]
        );
        let agent = &doc.sections[0];
        assert_eq!(agent.comments, ["top comment", "inline"]);
        assert_eq!(
            (
                agent.entries[0].key.as_str(),
                agent.entries[0].value.as_str()
            ),
            ("workers", "2")
        );
        assert_eq!(agent.entries[0].comments, ["two"]);
        assert_eq!(agent.entries[1].key, "state_dir");
        assert_eq!(agent.entries[1].value, "/var/lib/h264");
        assert_eq!(doc.sections[1].entries[0].value, "\"/srv/rec;1\"");
        assert_eq!(
            doc.sections[1].entries[0].comments,
            ["the news root", "quoted semicolon"]
        );
        assert_eq!(doc.sections[2].entries[0].value, "C:\\rec#1");
        assert_eq!(doc.trailing, ["trailing"]);
    }

    #[test]
    fn bad_lines_are_reported_with_their_line() {
        let doc = parse("orphan = 1\n[agent\n[]\njust words\n[ok] junk\n");
        let lines: Vec<_> = doc.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(3), Some(4), Some(5)]);
        assert!(doc.problems[0].message.contains("before any [section]"));
    }

    #[test]
    fn comments_need_a_space_before_them() {
        assert_eq!(split_comment("a;b ; c"), ("a;b", Some("c")));
        assert_eq!(split_comment("ts, 'x ;y' ;z"), ("ts, 'x ;y'", Some("z")));
        assert_eq!(
            split_comment("\"a\\\" ;b\" #c"),
            ("\"a\\\" ;b\"", Some("c"))
        );
    }
}
