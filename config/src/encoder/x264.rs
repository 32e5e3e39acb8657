//! `transcode.x264_params`: x264 options as `key=value` separated by `:`, each key from an
//! allow-list and each value checked. Options that name files (`stats`, `cqmfile`, `qpfile`,
//! `dump-yuv`, …) are not on the list.

use crate::problem::Problem;

/// What a value of an x264 option may be.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number in a range.
    Int(i32, i32),
    /// A decimal number in a range.
    Float(f64, f64),
    /// `0` or `1`.
    Bool,
    /// One of these words.
    Word(&'static [&'static str]),
    /// Two numbers separated by a comma, each in a range (`deblock=-1,-1`, `psy-rd=1.0,0.15`).
    Pair(f64, f64),
}

const COLOR_PRIMARIES: &[&str] = &[
    "undef",
    "bt709",
    "bt470m",
    "bt470bg",
    "smpte170m",
    "smpte240m",
    "film",
    "bt2020",
    "smpte428",
    "smpte431",
    "smpte432",
];
const TRANSFERS: &[&str] = &[
    "undef",
    "bt709",
    "bt470m",
    "bt470bg",
    "smpte170m",
    "smpte240m",
    "linear",
    "log100",
    "log316",
    "iec61966-2-4",
    "bt1361e",
    "iec61966-2-1",
    "bt2020-10",
    "bt2020-12",
    "smpte2084",
    "smpte428",
    "arib-std-b67",
];
const MATRICES: &[&str] = &[
    "undef",
    "bt709",
    "fcc",
    "bt470bg",
    "smpte170m",
    "smpte240m",
    "GBR",
    "YCgCo",
    "bt2020nc",
    "bt2020c",
    "smpte2085",
    "chroma-derived-nc",
    "chroma-derived-c",
    "ICtCp",
];

/// The x264 options `x264_params` may set, with what their values may be.
pub const X264_PARAMS: &[(&str, Kind)] = &[
    ("ref", Kind::Int(1, 16)),
    ("bframes", Kind::Int(0, 16)),
    ("b-adapt", Kind::Int(0, 2)),
    ("b-pyramid", Kind::Word(&["none", "strict", "normal"])),
    ("keyint", Kind::Int(1, 1000)),
    ("min-keyint", Kind::Int(1, 1000)),
    ("scenecut", Kind::Int(0, 100)),
    ("open-gop", Kind::Bool),
    ("rc-lookahead", Kind::Int(0, 250)),
    ("mbtree", Kind::Bool),
    ("aq-mode", Kind::Int(0, 3)),
    ("aq-strength", Kind::Float(0.0, 3.0)),
    ("psy", Kind::Bool),
    ("psy-rd", Kind::Pair(0.0, 10.0)),
    ("deblock", Kind::Pair(-6.0, 6.0)),
    ("me", Kind::Word(&["dia", "hex", "umh", "esa", "tesa"])),
    ("subme", Kind::Int(0, 11)),
    ("merange", Kind::Int(4, 64)),
    ("trellis", Kind::Int(0, 2)),
    (
        "direct",
        Kind::Word(&["none", "spatial", "temporal", "auto"]),
    ),
    ("weightp", Kind::Int(0, 2)),
    ("weightb", Kind::Bool),
    ("mixed-refs", Kind::Bool),
    ("8x8dct", Kind::Bool),
    ("cabac", Kind::Bool),
    ("fast-pskip", Kind::Bool),
    ("dct-decimate", Kind::Bool),
    ("slices", Kind::Int(0, 64)),
    ("nal-hrd", Kind::Word(&["none", "vbr", "cbr"])),
    ("qpmin", Kind::Int(0, 69)),
    ("qpmax", Kind::Int(0, 69)),
    ("ipratio", Kind::Float(1.0, 3.0)),
    ("pbratio", Kind::Float(1.0, 3.0)),
    ("chroma-qp-offset", Kind::Int(-12, 12)),
    ("intra-refresh", Kind::Bool),
    ("bluray-compat", Kind::Bool),
    ("force-cfr", Kind::Bool),
    ("colorprim", Kind::Word(COLOR_PRIMARIES)),
    ("transfer", Kind::Word(TRANSFERS)),
    ("colormatrix", Kind::Word(MATRICES)),
];

const KEY: &str = "transcode.x264_params";

/// Every problem with an `x264_params` value.
pub(crate) fn check(params: &str, out: &mut Vec<Problem>) {
    if params.trim().is_empty() {
        let hint = "remove it, or write options like \"ref=4:bframes=3\"";
        out.push(Problem::error(KEY, "is empty").with_hint(hint));
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for item in params.split(':') {
        let Some((name, value)) = item.split_once('=') else {
            let message = format!("`{item}` is not key=value");
            let hint = "x264 options separated by `:`, like \"ref=4:bframes=3\"";
            out.push(Problem::error(KEY, message).with_hint(hint));
            continue;
        };
        let Some((_, kind)) = X264_PARAMS.iter().find(|(k, _)| *k == name) else {
            let names: Vec<&str> = X264_PARAMS.iter().map(|(k, _)| *k).collect();
            let message = format!("`{name}` is not an x264 option the agent passes on");
            let hint = crate::suggest::did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| format!("one of: {}", names.join(", ")));
            out.push(Problem::error(KEY, message).with_hint(hint));
            continue;
        };
        if seen.contains(&name) {
            out.push(Problem::error(KEY, format!("`{name}` is given twice")));
        }
        seen.push(name);
        if let Err(want) = value_fits(value, *kind) {
            let message = format!("`{name}={value}`: the value must be {want}");
            out.push(Problem::error(KEY, message));
        }
    }
}

/// `Err(what the value must be)` when `value` does not fit `kind`.
fn value_fits(value: &str, kind: Kind) -> Result<(), String> {
    let number = |s: &str| -> Option<f64> {
        let ok = !s.is_empty()
            && s.len() <= 12
            && s.bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
        ok.then(|| s.parse::<f64>().ok()).flatten()
    };
    match kind {
        Kind::Int(lo, hi) => match value.parse::<i32>() {
            Ok(n) if (lo..=hi).contains(&n) && !value.starts_with('+') => Ok(()),
            _ => Err(format!("a whole number from {lo} to {hi}")),
        },
        Kind::Float(lo, hi) => match number(value) {
            Some(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("a number from {lo} to {hi}")),
        },
        Kind::Bool => match value {
            "0" | "1" => Ok(()),
            _ => Err("0 or 1".into()),
        },
        Kind::Word(words) => match words.contains(&value) {
            true => Ok(()),
            false => Err(format!("one of: {}", words.join(", "))),
        },
        Kind::Pair(lo, hi) => {
            let fits = value.split_once(',').is_some_and(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|s| number(s).is_some_and(|n| (lo..=hi).contains(&n)))
            });
            match fits {
                true => Ok(()),
                false => Err(format!("two numbers from {lo} to {hi}, like `{lo},{hi}`")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(params: &str) -> Vec<String> {
        let mut out = Vec::new();
        check(params, &mut out);
        out.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn allowed_keys_with_checked_values() {
        assert!(errors("ref=4:bframes=3:deblock=-1,-1:me=umh:psy-rd=1.0,0.15").is_empty());
        for bad in [
            "stats=/srv/x",
            "ref=99",
            "ref",
            "me=bogus",
            "cabac=yes",
            "deblock=-1",
            "ref=4:ref=5",
            "",
        ] {
            assert!(!errors(bad).is_empty(), "{bad}");
        }
    }
}
