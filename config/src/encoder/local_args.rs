//! `transcode.local_ffmpeg_args`: free-form FFmpeg output arguments, allowed only in an agent's
//! own file and checked even there. They are read with FFmpeg's grammar: every token is an
//! option (`-name`, maybe with a stream specifier, `-c:v`) followed by its value, unless the
//! option is a flag. Refused, with the key and the reason:
//! - positional tokens (FFmpeg would take them as more output files) and `--`;
//! - values that are URLs or protocol names (`tcp://…`, `file:…`) or paths (`/…`, `./…`, `~…`);
//! - options the agent sets itself, options that cut the output short (`-t`, `-to`, `-ss`,
//!   `-frames`, `-fs`, …) and options that open files (`-attach`, `-dump_attachment`,
//!   `-filter_complex_script`, `-vstats_file`, `-passlogfile`, `-stats_*`, `-/opt`, …), in every
//!   spelling (`-f:x` is `-f`);
//! - filter graphs with filters that read or write files (`movie`, `amovie`, `sendcmd`,
//!   `subtitles`, `ass`, `zmq`, …) or file options (`textfile=`, `fontfile=`, `file=`, …).

use crate::problem::Problem;

/// Options the agent sets itself, with the reason each is refused.
const RESERVED: &[(&str, &str)] = &[
    ("i", "the agent names the input"),
    ("y", "the agent decides about overwriting"),
    ("n", "the agent decides about overwriting"),
    ("f", "the agent sets the output format"),
    ("progress", "the agent reads FFmpeg's progress"),
    ("v", "the agent reads FFmpeg's messages"),
    ("loglevel", "the agent reads FFmpeg's messages"),
    ("nostats", "the agent reads FFmpeg's messages"),
    ("stats", "the agent reads FFmpeg's messages"),
    (
        "t",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "to",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "ss",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "sseof",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "fs",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "frames",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "vframes",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "aframes",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    (
        "dframes",
        "it cuts the output short, so it could pass as a whole recording",
    ),
    ("attach", "it reads a file into the output"),
    ("dump_attachment", "it writes files"),
    ("filter_script", "it reads a file"),
    ("filter_complex_script", "it reads a file"),
    ("vstats", "it writes a file"),
    ("vstats_file", "it writes a file"),
    ("passlogfile", "it writes a file"),
    ("pass", "it writes a file"),
    ("sdp_file", "it writes a file"),
    ("report", "it writes a file"),
    ("fpre", "it reads a file"),
    ("pre", "it reads a file"),
    ("vpre", "it reads a file"),
    ("apre", "it reads a file"),
    ("spre", "it reads a file"),
    (
        "protocol_whitelist",
        "the agent limits FFmpeg to local files and pipes",
    ),
    (
        "protocol_blacklist",
        "the agent limits FFmpeg to local files and pipes",
    ),
    (
        "x264-params",
        "use transcode.x264_params, whose options are checked",
    ),
    (
        "x264opts",
        "use transcode.x264_params, whose options are checked",
    ),
];

/// FFmpeg options that take no value.
const FLAGS: &[&str] = &[
    "an",
    "vn",
    "sn",
    "dn",
    "shortest",
    "copyts",
    "start_at_zero",
    "bitexact",
    "autorotate",
    "autoscale",
    "ignore_unknown",
    "copy_unknown",
    "benchmark",
    "benchmark_all",
    "dump",
    "hex",
    "debug_ts",
    "stdin",
    "xerror",
    "accurate_seek",
    "re",
    "fix_sub_duration",
    "hide_banner",
];

/// Options whose value is a filter graph.
const FILTER_OPTIONS: &[&str] = &["vf", "af", "filter", "filter_complex", "lavfi"];

/// Filters that read or write files, load code or open sockets.
const FILE_FILTERS: &[&str] = &[
    "movie",
    "amovie",
    "sendcmd",
    "asendcmd",
    "zmq",
    "azmq",
    "subtitles",
    "ass",
    "frei0r",
    "frei0r_src",
    "ladspa",
    "lv2",
    "lut3d",
    "lut1d",
    "dnn_processing",
    "dnn_classify",
    "dnn_detect",
    "sr",
    "derain",
    "arnndn",
    "sofalizer",
    "ocr",
    "vidstabdetect",
    "vidstabtransform",
    "coreimage",
    "coreimagesrc",
    "libvmaf",
    "vmafmotion",
    "psnr",
    "ssim",
    "signature",
    "removelogo",
    "lensfun",
    "program_opencl",
    "openclsrc",
    "cover_rect",
    "find_rect",
    "qrencode",
    "qrencodesrc",
    "firequalizer",
];

/// Filter options that name a file.
const FILE_KEYS: &[&str] = &[
    "textfile",
    "fontfile",
    "filename",
    "file",
    "dumpfile",
    "stats_file",
    "log_path",
    "model",
    "model_path",
    "input",
    "result",
    "cover",
    "object",
    "db_path",
    "kernel",
    "source",
    "sofa",
];

/// Options that force re-encoding (filters, scaling, frame rate): a source that could be
/// remuxed is re-encoded when the local arguments hold one.
pub const REENCODING: [&str; 7] = ["vf", "af", "filter", "filter_complex", "lavfi", "s", "r"];

/// Whether any token of `args` is an option that forces re-encoding.
pub fn reencodes_any(args: &[String]) -> bool {
    args.iter()
        .filter_map(|a| option_name(a))
        .any(|name| REENCODING.contains(&name) || name == "aspect")
}

/// `-c:v` → `c`; `None` for a token that is not an option.
fn option_name(token: &str) -> Option<&str> {
    let rest = token.strip_prefix('-')?;
    if rest.is_empty() {
        return None;
    }
    Some(rest.split(':').next().unwrap_or(rest))
}

/// Every problem with the free-form arguments `args`, reported at `key[n]`.
pub fn check_local_args(args: &[String], key: &str, out: &mut Vec<Problem>) {
    let mut n = 0;
    while n < args.len() {
        let at = format!("{key}[{n}]");
        let token = args[n].as_str();
        let Some(name) = option_name(token) else {
            let message =
                format!("`{token}` is not an option: FFmpeg would take it as another output file");
            let hint = "every item is an option like \"-movflags\" followed by its value";
            out.push(Problem::error(at, message).with_hint(hint));
            n += 1;
            continue;
        };
        n += 1;
        if let Some(reason) = refused(name) {
            out.push(Problem::error(
                at,
                format!("`{token}` is not allowed: {reason}"),
            ));
            // Its value, if any, is not checked again.
            if !FLAGS.contains(&name) && n < args.len() && option_name(&args[n]).is_none() {
                n += 1;
            }
            continue;
        }
        if is_flag(name) {
            continue;
        }
        let Some(value) = args.get(n) else {
            out.push(Problem::error(at, format!("`{token}` needs a value")));
            break;
        };
        let value_at = format!("{key}[{n}]");
        n += 1;
        if let Some(why) = unsafe_value(value) {
            out.push(Problem::error(
                value_at,
                format!("`{value}` (the value of `{token}`) {why}"),
            ));
            continue;
        }
        if FILTER_OPTIONS.contains(&name) {
            if let Some(why) = unsafe_filters(value) {
                out.push(Problem::error(
                    value_at,
                    format!("`{value}` (the value of `{token}`) {why}"),
                ));
            }
        }
    }
}

/// Why an option name is refused, if it is.
fn refused(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return Some("`-/option` reads the option's value from a file".into());
    }
    if name.starts_with('-') {
        return Some("`--` ends FFmpeg's options: what follows would be output files".into());
    }
    if name.starts_with("stats_") {
        return Some("it writes a file".into());
    }
    RESERVED
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, why)| (*why).to_owned())
}

fn is_flag(name: &str) -> bool {
    FLAGS.contains(&name)
        || name
            .strip_prefix("no")
            .is_some_and(|rest| FLAGS.contains(&rest))
}

/// Why a value is refused: a URL, a protocol prefix or a path.
fn unsafe_value(value: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.contains("://") {
        return Some("is a URL: FFmpeg only opens local files the agent names");
    }
    let scheme_len = v
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'))
        .count();
    if scheme_len > 0
        && v.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && v.as_bytes().get(scheme_len) == Some(&b':')
    {
        return Some("names a protocol (`name:`): FFmpeg only opens local files the agent names");
    }
    if v.starts_with('/') || v.starts_with('~') || v.starts_with("./") || v.starts_with("../") {
        return Some("is a path: the arguments may not name files");
    }
    None
}

/// Why a filter graph is refused: a filter or a filter option that opens files.
fn unsafe_filters(graph: &str) -> Option<String> {
    // Quotes and escapes only hide separators: dropping them can only find more filters.
    let plain: String = graph
        .chars()
        .filter(|c| !matches!(c, '\\' | '\'' | '"'))
        .collect();
    let mut unlabelled = String::new();
    let mut depth = 0;
    for c in plain.chars() {
        match c {
            '[' => {
                depth += 1;
                unlabelled.push(',');
            }
            ']' => depth = 0.max(depth - 1),
            _ if depth == 0 => unlabelled.push(c),
            _ => {}
        }
    }
    for element in unlabelled.split([',', ';']) {
        let element = element.trim();
        let name = element
            .split(['=', '@'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if FILE_FILTERS.contains(&name.as_str()) {
            return Some(format!("uses the filter `{name}`, which opens files"));
        }
        if let Some((_, options)) = element.split_once('=') {
            for part in options.split([':', '=']) {
                let word = part.trim().to_ascii_lowercase();
                if FILE_KEYS.contains(&word.as_str()) {
                    return Some(format!(
                        "sets the filter option `{word}`, which names a file"
                    ));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(args: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        check_local_args(&args, "transcode.local_ffmpeg_args", &mut out);
        out.into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn ordinary_options_pass() {
        for ok in [
            &["-movflags", "+faststart"][..],
            &["-vf", "yadif,scale=1280:-2"],
            &["-vf", "scale=-2:'min(ih,720)'"],
            &["-an"],
            &["-metadata:s:a:0", "language=eng", "-aspect", "16:9"],
            &["-no_such_option", "1"],
            &["-tune", "film", "-map", "0:s?"],
        ] {
            assert!(errors(ok).is_empty(), "{ok:?}: {:?}", errors(ok));
        }
    }

    #[test]
    fn every_forbidden_form_is_refused() {
        for bad in [
            &["-f:x", "ffmetadata", "x"][..],
            &["-f", "mp4"],
            &["-i", "x"],
            &["-attach", "secret.txt"],
            &["-dump_attachment:t", "out"],
            &["-filter_complex_script", "secret"],
            &["-/vf", "secret"],
            &["-t", "0.2"],
            &["-frames:v", "5"],
            &["-an", "out.mkv"],
            &["leftover.mkv"],
            &["--", "x"],
            &["-metadata", "tcp://127.0.0.1:9/"],
            &["-metadata", "file:secret"],
            &["-vf", "movie=secret.png"],
            &["-filter_complex", "[0:v]scale=2:2[a];amovie=x[b]"],
            &["-vf", "drawtext=textfile=secret"],
            &["-vf", "sendcmd=f=cmds"],
            &["-af", "ASENDCMD=f=x"],
            &["-vf", "subtitles=s.srt"],
            &["-vf", "null,metadata=mode=print:file=out"],
            &["-stats_enc_pre", "x"],
            &["-passlogfile", "x"],
            &["-x264-params", "stats=x"],
            &["-vf"],
        ] {
            assert!(!errors(bad).is_empty(), "{bad:?}");
        }
        assert!(errors(&["-f:x", "ffmetadata"])[0].contains("transcode.local_ffmpeg_args[0]"));
    }
}
