//! INI value spellings turned into the TOML values `agent.toml` would hold, so that both
//! formats meet in one deserializer: `yes`/`off`/`1` → `true`/`false`, `0.5` seconds → `"500ms"`,
//! `ts, wtv` → `["ts", "wtv"]`, quoted text unquoted. What does not convert is explained in
//! words, with the accepted spellings.

use std::time::Duration;

use toml::Value;

use super::schema::Kind;

/// `raw` (as written, comment removed) read as `kind`; `Ok(None)` for an empty optional value.
pub(crate) fn convert(raw: &str, kind: Kind) -> Result<Option<Value>, String> {
    let words = |lower: bool| -> Result<Value, String> {
        let items = split_list(raw, !lower)?;
        Ok(Value::Array(
            items
                .into_iter()
                .map(|s| Value::String(if lower { s.to_lowercase() } else { s }))
                .collect(),
        ))
    };
    Ok(Some(match kind {
        Kind::Bool => Value::Boolean(boolean(&unquote(raw)?)?),
        Kind::Count => Value::Integer(count(&unquote(raw)?)?),
        Kind::Duration => duration(&unquote(raw)?)?,
        Kind::Text => Value::String(unquote(raw)?),
        Kind::Word => Value::String(unquote(raw)?.trim().to_lowercase()),
        Kind::OptText => {
            let text = unquote(raw)?;
            if text.trim().is_empty() {
                return Ok(None);
            }
            Value::String(text)
        }
        Kind::Words => words(true)?,
        Kind::Args => words(false)?,
        Kind::Pairs => pairs(raw)?,
        Kind::Subsection => return Err("is a section of its own".into()),
        Kind::Program => {
            let text = unquote(raw)?;
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            match text.parse::<i64>() {
                Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Value::Integer(n),
                _ => Value::String(text.to_owned()),
            }
        }
    }))
}

/// `site=studio-a, canary=true` → `{site = "studio-a", canary = "true"}`; items separated by
/// commas, each may be quoted as a whole (`"note=a, b"`).
fn pairs(raw: &str) -> Result<Value, String> {
    let mut table = toml::Table::new();
    for item in split_list(raw, true)? {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!(
                "`{item}` is not a key=value pair; write labels like site=studio-a, canary=true"
            ));
        };
        let key = key.trim();
        if table.contains_key(key) {
            return Err(format!("`{key}` is given twice"));
        }
        table.insert(key.to_owned(), Value::String(value.trim().to_owned()));
    }
    Ok(Value::Table(table))
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(format!(
            "`{s}` is not a yes/no value; write yes or no (also on/off, true/false, 1/0)"
        )),
    }
}

fn count(s: &str) -> Result<i64, String> {
    let t = s.trim();
    t.strip_prefix('+')
        .unwrap_or(t)
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))
}

/// Plain seconds become an integer (`30`) or a humantime string (`0.5` → `"500ms"`); anything
/// else is passed on for the duration parser to judge (`"2m"` is fine, `"soon"` is not).
fn duration(s: &str) -> Result<Value, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{s}` seconds is too long"));
    }
    if let Some((int, frac)) = t.split_once('.') {
        let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()) {
            if frac.len() > 9 {
                return Err(format!(
                    "`{s}`: seconds take at most 9 decimals (nanoseconds)"
                ));
            }
            let secs: u64 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| format!("`{s}` seconds is too long"))?
            };
            let nanos: u32 = format!("{frac:0<9}").parse().unwrap_or(0);
            let d = Duration::new(secs, nanos);
            return Ok(Value::String(humantime::format_duration(d).to_string()));
        }
    }
    Ok(Value::String(t.to_owned()))
}

/// The text of a value: quotes removed when the whole value is quoted (`"..."` with `\"` and
/// `\\` escapes, `'...'` as written), else as written.
pub(crate) fn unquote(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let Some(q) = t.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(t.to_owned());
    };
    let (text, rest) = quoted(&t[1..], q)?;
    if !rest.trim().is_empty() {
        return Err(format!(
            "unexpected `{}` after the quoted value",
            rest.trim()
        ));
    }
    Ok(text)
}

/// The content of a quoted item whose opening quote `q` is consumed, and what follows it.
fn quoted(s: &str, q: char) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            if c != '"' && c != '\\' {
                out.push('\\'); // only \" and \\ are escapes; C:\rec stays C:\rec
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Ok((out, &s[i + c.len_utf8()..]));
        } else {
            out.push(c);
        }
    }
    Err(format!("the quote {q} is never closed"))
}

/// Items separated by commas (and by spaces too when `commas_only` is false), each trimmed and
/// unquoted; empty items (a trailing comma) are dropped.
fn split_list(raw: &str, commas_only: bool) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut rest = raw.trim();
    while !rest.is_empty() {
        let is_sep = |c: char| c == ',' || (!commas_only && c.is_whitespace());
        if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let (item, after) = quoted(&rest[1..], q)?;
            items.push(item);
            let after = after.trim_start();
            if !after.is_empty() && !after.starts_with(is_sep) {
                return Err(format!(
                    "unexpected `{after}` after a quoted item; separate items with commas"
                ));
            }
            rest = after;
        } else {
            let end = rest.find(is_sep).unwrap_or(rest.len());
            let item = rest[..end].trim();
            if !item.is_empty() {
                items.push(item.to_owned());
            }
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(is_sep).trim_start();
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, kind: Kind) -> Option<Value> {
        convert(raw, kind).unwrap()
    }

    fn strings(v: &[&str]) -> Option<Value> {
        Some(Value::Array(
            v.iter().map(|s| Value::String((*s).into())).collect(),
        ))
    }

    #[test]
    fn spellings_convert() {
        for yes in ["yes", "On", "TRUE", "1", "\"yes\""] {
            assert_eq!(ok(yes, Kind::Bool), Some(Value::Boolean(true)), "{yes}");
        }
        for no in ["no", "OFF", "False", "0"] {
            assert_eq!(ok(no, Kind::Bool), Some(Value::Boolean(false)), "{no}");
        }
        assert_eq!(ok("+4", Kind::Count), Some(Value::Integer(4)));
        assert_eq!(ok("-1", Kind::Count), Some(Value::Integer(-1)));
        assert_eq!(ok("30", Kind::Duration), Some(Value::Integer(30)));
        assert_eq!(
            ok("0.5", Kind::Duration),
            Some(Value::String("500ms".into()))
        );
        assert_eq!(
            ok("90.25", Kind::Duration),
            Some(Value::String("1m 30s 250ms".into()))
        );
        assert_eq!(
            ok(".5", Kind::Duration),
            Some(Value::String("500ms".into()))
        );
        assert_eq!(ok("2m", Kind::Duration), Some(Value::String("2m".into())));
        assert_eq!(ok("Poll", Kind::Word), Some(Value::String("poll".into())));
        assert_eq!(ok("", Kind::OptText), None);
        assert_eq!(ok("\"\"", Kind::OptText), None);
        assert_eq!(
            ok("\"C:\\rec\\new\"", Kind::Text),
            Some(Value::String("C:\\rec\\new".into()))
        );
        assert_eq!(
            ok("'say \"hi\"'", Kind::Text),
            Some(Value::String("say \"hi\"".into()))
        );
        assert_eq!(
            ok("ts, WTV  mp4,", Kind::Words),
            strings(&["ts", "wtv", "mp4"])
        );
        assert_eq!(ok("", Kind::Words), strings(&[]));
        assert_eq!(
            ok("-movflags, +faststart, \"yadif,scale=1280:-2\"", Kind::Args),
            strings(&["-movflags", "+faststart", "yadif,scale=1280:-2"])
        );
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        let cases = [
            ("maybe", Kind::Bool, "yes or no"),
            ("two", Kind::Count, "not a whole number"),
            ("2.5", Kind::Count, "not a whole number"),
            ("\"open", Kind::Text, "never closed"),
            ("\"a\" b", Kind::Text, "after the quoted value"),
            ("\"a\"b, c", Kind::Args, "separate items with commas"),
            ("0.0000000001", Kind::Duration, "9 decimals"),
            ("site", Kind::Pairs, "not a key=value pair"),
            ("a=1, a=2", Kind::Pairs, "given twice"),
        ];
        for (raw, kind, want) in cases {
            let err = convert(raw, kind).unwrap_err();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }

    #[test]
    fn labels_are_key_value_pairs() {
        let mut want = toml::Table::new();
        want.insert("site".into(), Value::String("studio-a".into()));
        want.insert("canary".into(), Value::String("true".into()));
        want.insert("note".into(), Value::String("a, b".into()));
        assert_eq!(
            ok("site = studio-a, canary=true, \"note=a, b\"", Kind::Pairs),
            Some(Value::Table(want))
        );
        assert_eq!(ok("", Kind::Pairs), Some(Value::Table(toml::Table::new())));
    }
}
