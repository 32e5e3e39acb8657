//! Output for people (aligned tables) and for scripts (`-o json`, `-o yaml`): every command
//! builds a serde view of its answer, then prints it in the chosen format.

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts (one document; `status --watch`: one line per snapshot).
    Json,
    /// YAML for scripts.
    Yaml,
    /// Comma-separated rows (`rollout shadow-report`); other commands print their table.
    Csv,
}

/// `-o table|json|yaml|csv`, shared by the controller and agent verbs.
#[derive(Debug, Clone, Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// Prints `value` as JSON or YAML, or as the text `table` renders.
pub fn emit<T: Serialize>(format: Format, value: &T, table: impl FnOnce(&T) -> String) {
    match format {
        Format::Table | Format::Csv => print!("{}", table(value)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Yaml => print!("{}", yaml_serde::to_string(value).unwrap_or_default()),
    }
}

/// `text` with control characters and Unicode bidi controls replaced by visible escapes
/// (`\u{1b}`), everything else unchanged.
pub fn visible(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A table: a header row and rows, columns padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row; control and bidi characters in its cells are shown escaped, so text an
    /// agent reported (file names, messages) cannot move the cursor, clear the screen or
    /// reverse what the operator reads.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| visible(&c)).collect());
    }

    /// The table as text, one line per row.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The table as CSV (RFC 4180): the header row, then one line per row. Cells are quoted
    /// when needed; a cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets
    /// a leading `'`, so a file name an agent reported cannot become a formula.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        for (i, row) in self.rows.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c, i > 0)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_cell(cell: &str, data: bool) -> String {
    let numeric = cell.parse::<f64>().is_ok();
    let mut text = cell.to_owned();
    if data && !numeric && text.starts_with(['=', '+', '-', '@']) {
        text.insert(0, '\'');
    }
    if text.contains([',', '"', '\r', '\n']) || text.starts_with(' ') || text.ends_with(' ') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The output of the history verbs (`jobs`, `report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TabularFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts.
    Json,
    /// CSV for spreadsheets (and pandas).
    Csv,
}

impl TabularFormat {
    /// Prints `value` as JSON, or `table` as aligned text or CSV.
    pub fn emit<T: Serialize>(self, value: &T, table: impl FnOnce(&T) -> Table) {
        match self {
            TabularFormat::Table => print!("{}", table(value).render()),
            TabularFormat::Csv => print!("{}", table(value).csv()),
            TabularFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
        }
    }
}

/// `key: value` lines, keys padded.
pub fn pairs(items: &[(&str, String)]) -> String {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    items
        .iter()
        .map(|(k, v)| format!("{:<w$} {}\n", format!("{k}:"), visible(v)))
        .collect()
}

/// A Unix time in milliseconds as RFC 3339 UTC (seconds), or `-` for none.
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// How long ago a Unix time in milliseconds was, e.g. `3s`, `5m`, `2h`, or `-`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let s = ((now_ms - ms).max(0) / 1000) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_times_read() {
        let mut t = Table::new(&["AGENT", "SYNC"]);
        t.row(vec!["studio-a-long".into(), "synced".into()]);
        t.row(vec!["b".into(), "error".into()]);
        assert_eq!(
            t.render(),
            "AGENT          SYNC\nstudio-a-long  synced\nb              error\n"
        );
        assert_eq!(time(0), "-");
        assert_eq!(time(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(ago(1_000, 6_000), "5s");
        assert_eq!(ago(1_000, 1_000 + 600_000), "10m");
        let mut c = Table::new(&["FILE", "N"]);
        c.row(vec!["=cmd|' /C calc'!A0".into(), "-1".into()]);
        c.row(vec!["a,\"b\"".into(), "2".into()]);
        assert_eq!(
            c.csv(),
            "FILE,N\r\n'=cmd|' /C calc'!A0,-1\r\n\"a,\"\"b\"\"\",2\r\n"
        );
        assert_eq!(
            pairs(&[("a", "1".into()), ("bbb", "2".into())]),
            "a:   1\nbbb: 2\n"
        );
    }
}
