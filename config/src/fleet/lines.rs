//! The line of every key of a block-style YAML manifest, found by following indentation: a
//! `key:` belongs to the nearest key less indented than it, a `- ` item to the key above it
//! (also at the same indentation, the compact style `steps:\n- canary: 1`). Flow collections
//! (`{canary: 1}`) and block scalars (`|`, `>`) are skipped as a whole: their keys take the line
//! of the key holding them. Best effort by design: a line is a hint to the operator, the key path
//! in the message is exact.

use crate::keypath::{render, Seg};
use crate::lines::KeyLines;

/// A key or list item whose children are more indented.
#[derive(Debug)]
struct Frame {
    indent: usize,
    path: Vec<Seg>,
    item: bool,
    items: usize,
}

/// Lines of the keys and list items of `text`.
pub(crate) fn key_lines(text: &str) -> KeyLines {
    let mut lines = KeyLines::default();
    let mut frames: Vec<Frame> = Vec::new();
    let mut root_items = 0;
    let mut block: Option<usize> = None;
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let no = n + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let t = line.trim();
        if let Some(at) = block {
            if t.is_empty() || indent > at {
                continue;
            }
            block = None;
        }
        if flow > 0 {
            flow = depth_after(t, flow);
            continue;
        }
        if t.is_empty() || t.starts_with('#') || t == "---" || t == "..." {
            continue;
        }
        let mut col = indent;
        let mut rest = &line[indent..];
        loop {
            if rest == "-" || rest.starts_with("- ") {
                while frames
                    .last()
                    .is_some_and(|f| f.indent > col || (f.indent == col && f.item))
                {
                    frames.pop();
                }
                let (parent, index) = match frames.last_mut() {
                    Some(f) => {
                        f.items += 1;
                        (f.path.clone(), f.items - 1)
                    }
                    None => {
                        root_items += 1;
                        (Vec::new(), root_items - 1)
                    }
                };
                let mut path = parent;
                path.push(Seg::Index(index));
                lines.insert(render(&path), no);
                frames.push(Frame {
                    indent: col,
                    path,
                    item: true,
                    items: 0,
                });
                let after = rest.get(1..).unwrap_or("");
                let skipped = after.len() - after.trim_start().len();
                col += 1 + skipped;
                rest = after.trim_start();
                continue;
            }
            let Some((key, value)) = mapping_key(rest) else {
                flow = depth_after(rest, 0);
                break;
            };
            while frames.last().is_some_and(|f| f.indent >= col) {
                frames.pop();
            }
            let mut path = frames.last().map(|f| f.path.clone()).unwrap_or_default();
            path.push(Seg::Key(key));
            lines.insert(render(&path), no);
            frames.push(Frame {
                indent: col,
                path,
                item: false,
                items: 0,
            });
            let value = value.trim();
            if value.starts_with(['|', '>']) {
                block = Some(indent);
            } else {
                flow = depth_after(value, 0);
            }
            break;
        }
    }
    lines
}

/// `key: value` or `key:` at the start of `s` (plain or quoted key), and the value part.
fn mapping_key(s: &str) -> Option<(String, &str)> {
    if let Some(q) = s.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let body = &s[1..];
        let end = body.find(q)?;
        let after = body[end + 1..].trim_start().strip_prefix(':')?;
        return (after.is_empty() || after.starts_with(' '))
            .then(|| (body[..end].to_owned(), after));
    }
    if s.starts_with(['[', '{', '#', '?', '&', '*', '!', '|', '>']) {
        return None;
    }
    let mut search = 0;
    while let Some(found) = s[search..].find(':') {
        let at = search + found;
        let after = &s[at + 1..];
        if after.is_empty() || after.starts_with(' ') {
            return Some((s[..at].trim().to_owned(), after));
        }
        search = at + 1;
    }
    None
}

/// Flow nesting after reading `s` (outside quotes and comments), starting from `depth`.
fn depth_after(s: &str, mut depth: usize) -> usize {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev == ' ' => break,
                '"' | '\'' if " [{,:".contains(prev) => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_block_style_manifests() {
        let text = "\
apiVersion: h264create.dev/v1
kind: FleetConfig
metadata:
  name: studios
spec:
  transcode:
    crf: 70   # too high
    extra_args:
      - -vf
      - yadif
  notes: |
    crf: 1
  rollout:
    steps:
    - canary: 1
    - {percent: 25}
    - pause:
        {}
    analysis: {max_failure_rate: 0.1,
      min_jobs: 3}
  logging:
    'level': info
";
        let lines = key_lines(text);
        let want = [
            ("apiVersion", 1),
            ("metadata.name", 4),
            ("spec.transcode.crf", 7),
            ("spec.transcode.extra_args[1]", 10),
            ("spec.notes", 11),
            ("spec.rollout.steps", 14),
            ("spec.rollout.steps[0].canary", 15),
            ("spec.rollout.steps[1].percent", 16),
            ("spec.rollout.steps[2].pause", 17),
            ("spec.rollout.analysis.min_jobs", 19),
            ("spec.logging.level", 22),
        ];
        for (key, line) in want {
            assert_eq!(lines.line_of(key), Some(line), "{key}");
        }
    }
}
