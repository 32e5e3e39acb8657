//! A strict reader of the Prometheus text exposition format (version 0.0.4), so tests check
//! that a `/metrics` answer is valid, not only that it contains some text.
//!
//! It rejects: a malformed metric or label name, an unquoted or badly escaped label value, a
//! value that is not a number (`NaN`, `+Inf`, `-Inf` are numbers), a second `# TYPE` for one
//! family, a `# TYPE` after the family's samples, an unknown type, and a sample whose family
//! was declared with another type's suffixes.

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, e.g. `h264_jobs_total`.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Family name -> type (`counter`, `gauge`, `histogram`, `summary`, `untyped`).
    pub types: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The samples named `name` (exactly).
    pub fn named(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the sample `name` whose labels include every pair of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// Parses `text`; the error names the line and what is wrong.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut seen_samples: std::collections::HashSet<String> = Default::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |what: &str| format!("line {n}: {what}: `{line}`");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut parts = rest.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| err("TYPE without a name"))?;
                    let kind = parts
                        .next()
                        .ok_or_else(|| err("TYPE without a type"))?
                        .trim();
                    check_name(name).map_err(|e| err(&e))?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(err("unknown metric type"));
                    }
                    if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err("a second TYPE for the same family"));
                    }
                    if seen_samples.contains(name) {
                        return Err(err("TYPE after the family's samples"));
                    }
                }
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| err("HELP without a name"))?;
                    check_name(name).map_err(|e| err(&e))?;
                }
                _ => {} // a comment
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| err(&e))?;
        let family = family_of(&sample.name, &out.types);
        if let Some(kind) = out.types.get(&family) {
            let suffix = &sample.name[family.len()..];
            let allowed: &[&str] = match kind.as_str() {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            if !allowed.contains(&suffix) {
                return Err(err(&format!("`{}` does not fit a {kind}", sample.name)));
            }
            if kind == "histogram" && suffix == "_bucket" && !sample.labels.contains_key("le") {
                return Err(err("a histogram bucket without `le`"));
            }
        }
        seen_samples.insert(family);
        out.samples.push(sample);
    }
    Ok(out)
}

fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            ) {
                return base.to_owned();
            }
        }
    }
    name.to_owned()
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid metric name"))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).ok_or("unterminated labels")?;
            if body[start..].starts_with('}') {
                end = start + 1;
                break;
            }
            let eq = body[start..].find('=').ok_or("a label without `=`")? + start;
            let lname = &body[start..eq];
            if lname.is_empty()
                || lname.starts_with(|c: char| c.is_ascii_digit())
                || !lname.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("`{lname}` is not a valid label name"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("the value of label `{lname}` is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("an unterminated label value")?.1 {
                    '\\' => match chars.next().ok_or("a dangling escape")?.1 {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        c => return Err(format!("`\\{c}` is not a valid escape")),
                    },
                    '"' => break,
                    '\n' => return Err("a raw newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(lname.to_owned(), value).is_some() {
                return Err(format!("label `{lname}` given twice"));
            }
            match chars.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    end = i + 1;
                    break;
                }
                _ => return Err("labels must be separated by `,` and closed by `}`".into()),
            }
        }
        rest = &body[end..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("a sample without a value")?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .map_err(|_| format!("`{v}` is not a number"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("`{ts}` is not a timestamp"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_valid_exposition() {
        let text = "# HELP h264_jobs_total Jobs finished\n# TYPE h264_jobs_total counter\n\
                    h264_jobs_total{outcome=\"converted\"} 3\n\
                    # TYPE h264_job_seconds histogram\n\
                    h264_job_seconds_bucket{le=\"+Inf\"} 3\nh264_job_seconds_sum 1.5\n\
                    h264_job_seconds_count 3\nh264_up{path=\"a \\\"b\\\"\\\\c\"} 1 1700000000000\n";
        let e = parse(text).unwrap();
        assert_eq!(
            e.value("h264_jobs_total", &[("outcome", "converted")]),
            Some(3.0)
        );
        assert_eq!(e.types["h264_job_seconds"], "histogram");
        assert_eq!(e.named("h264_up")[0].labels["path"], "a \"b\"\\c");
    }

    #[test]
    fn rejects_what_a_scraper_would_reject() {
        for bad in [
            "1abc 3",
            "ok{l=unquoted} 1",
            "ok{l=\"x\"} three",
            "ok{l=\"x\\q\"} 1",
            "# TYPE a counter\n# TYPE a gauge",
            "a 1\n# TYPE a counter",
            "# TYPE h histogram\nh_bucket 1",
            "# TYPE a wrong",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
