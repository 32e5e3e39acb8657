//! Rules for the pipeline sections, the ones a fleet manifest may set: `[readiness]`,
//! `[transcode]`, `[captions]`, `[logging]`. None of them looks at the machine, so a fleet
//! manifest is checked with exactly these rules before it is sent anywhere.

use std::time::Duration;

use super::{at_least, at_most, one_of};
use crate::agent::{AgentConfig, CaptionTool, Captions, Logging, Readiness, Transcode};
use crate::problem::Problem;
use crate::suggest::did_you_mean;

/// x264's presets, fastest first.
pub const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// The H.264 profiles the agent encodes.
pub const PROFILES: [&str; 3] = ["baseline", "main", "high"];

/// Sidecar formats the agent can write.
pub const CAPTION_FORMATS: [&str; 3] = ["srt", "vtt", "bin"];

/// `tracing` level names.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

pub(crate) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    readiness(&config.readiness, out);
    transcode(&config.transcode, out);
    captions(&config.captions, out);
    logging(&config.logging, out);
}

/// The longest `readiness.min_duration`: above it every recording would be rejected.
pub const MAX_MIN_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The longest `readiness.probe_timeout`: a hung ffprobe holds a worker this long.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The largest `readiness.max_decode_errors`: above it no recording would ever count as
/// corrupt.
pub const MAX_DECODE_ERRORS: u32 = 10_000;

fn readiness(r: &Readiness, out: &mut Vec<Problem>) {
    let hour = Duration::from_secs(3600);
    if r.stable_for.get() > hour {
        let message = format!("{} is longer than 1h", r.stable_for);
        let hint = "a file is converted once it is unchanged this long; 10s-1m is usual";
        out.push(Problem::error("readiness.stable_for", message).with_hint(hint));
    } else if r.stable_for.get().is_zero() {
        let message = "is 0s: files could be picked up while still being written";
        out.push(
            Problem::warning("readiness.stable_for", message).with_hint("10s or more is usual"),
        );
    } else if !r.open_file_check && r.stable_for.get() < Duration::from_secs(30) {
        let message = format!(
            "{} with open_file_check = false: a recorder that pauses writing this long has its file picked up half-written",
            r.stable_for
        );
        let hint = "turn open_file_check on, or wait 30s or more";
        out.push(Problem::warning("readiness.stable_for", message).with_hint(hint));
    }
    at_most(
        out,
        "readiness.mtime_grace",
        r.mtime_grace,
        hour,
        "the modification time must be this old before a file is converted; a few seconds is usual",
    );
    if r.min_duration.get() > MAX_MIN_DURATION {
        let message = format!(
            "{} is longer than {}: every recording would be rejected as invalid",
            r.min_duration,
            crate::HumanDuration(MAX_MIN_DURATION)
        );
        let hint = "recordings shorter than this are refused; 1s-1m is usual";
        out.push(Problem::error("readiness.min_duration", message).with_hint(hint));
    } else if r.min_duration.get() > hour {
        let message = format!(
            "{}: every shorter recording is rejected as invalid",
            r.min_duration
        );
        out.push(Problem::warning("readiness.min_duration", message));
    }
    at_least(
        out,
        "readiness.probe_timeout",
        r.probe_timeout,
        Duration::from_secs(1),
    );
    at_most(
        out,
        "readiness.probe_timeout",
        r.probe_timeout,
        MAX_PROBE_TIMEOUT,
        "a hung ffprobe holds a worker this long; 2m is the default",
    );
    if r.max_decode_errors > MAX_DECODE_ERRORS {
        let message = format!(
            "{} is out of range 0-{MAX_DECODE_ERRORS}: no recording would ever count as corrupt",
            r.max_decode_errors
        );
        let hint = "damage reports a recording may have before it is refused; 10 is the default";
        out.push(Problem::error("readiness.max_decode_errors", message).with_hint(hint));
    }
}

fn transcode(t: &Transcode, out: &mut Vec<Problem>) {
    for (key, program) in [
        ("transcode.ffmpeg", &t.ffmpeg),
        ("transcode.ffprobe", &t.ffprobe),
    ] {
        if program.as_os_str().is_empty() {
            out.push(Problem::error(key, "is empty").with_hint("a program name on PATH or a path"));
        }
    }
    if t.crf > 51 {
        out.push(
            Problem::error("transcode.crf", format!("{} is out of range 0-51", t.crf))
                .with_hint("lower is better quality; 18-28 is usual"),
        );
    } else if t.crf > 35 {
        let message = format!("{}: pictures will be visibly blocky", t.crf);
        out.push(
            Problem::warning("transcode.crf", message)
                .with_hint("lower is better quality; 18-28 is usual"),
        );
    }
    one_of(out, "transcode.preset", &t.preset, &PRESETS);
    if t.preset == "placebo" {
        let hint = "\"veryslow\" is as good for a fraction of the time";
        out.push(
            Problem::warning(
                "transcode.preset",
                "\"placebo\" is many times slower for no visible gain",
            )
            .with_hint(hint),
        );
    }
    one_of(out, "transcode.profile", &t.profile, &PROFILES);
    if t.level.as_deref().is_some_and(|l| l.trim().is_empty()) {
        let hint = "remove it to let the encoder choose, or write one like \"4.1\"";
        out.push(Problem::error("transcode.level", "is empty").with_hint(hint));
    }
    if t.pix_fmt.trim().is_empty() {
        out.push(
            Problem::error("transcode.pix_fmt", "is empty")
                .with_hint("\"yuv420p\" plays everywhere"),
        );
    }
    if !(1..=100).contains(&t.max_attempts) {
        let message = format!("{} is out of range 1-100", t.max_attempts);
        out.push(Problem::error("transcode.max_attempts", message));
    }
    if t.retry_backoff > t.retry_backoff_max {
        let message = format!(
            "{} is longer than retry_backoff_max ({})",
            t.retry_backoff, t.retry_backoff_max
        );
        out.push(Problem::error("transcode.retry_backoff", message));
    }
    at_least(
        out,
        "transcode.stall_timeout",
        t.stall_timeout,
        Duration::from_secs(5),
    );
    if t.duration_tolerance.get().is_zero() {
        let hint = "outputs never match their source's duration exactly; 500ms is usual";
        out.push(
            Problem::error("transcode.duration_tolerance", "must be more than 0s").with_hint(hint),
        );
    }
    let digits = t
        .audio_bitrate
        .strip_suffix(['k', 'K'])
        .unwrap_or(&t.audio_bitrate);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let message = format!("`{}` is not a bitrate", t.audio_bitrate);
        let hint = r#"kilobits per second like "160k", or bits per second like "160000""#;
        out.push(Problem::error("transcode.audio_bitrate", message).with_hint(hint));
    }
    crate::encoder::check(t, out);
    local_args_reencode(t, out);
}

/// The remux warning: local arguments that need re-encoding make `remux = true` moot.
fn local_args_reencode(t: &Transcode, out: &mut Vec<Problem>) {
    if t.remux && crate::encoder::local_args::reencodes_any(&crate::encoder::free_form_args(t)) {
        let message = "holds an option that needs re-encoding, so remux = true will be skipped: every source is re-encoded, compliant H.264 too";
        let hint = "set transcode.remux = false to say so, or remove the filter";
        out.push(Problem::warning("transcode.local_ffmpeg_args", message).with_hint(hint));
    }
}

fn captions(c: &Captions, out: &mut Vec<Problem>) {
    let mut seen: Vec<&str> = Vec::new();
    for (n, format) in c.formats.iter().enumerate() {
        let key = format!("captions.formats[{n}]");
        one_of(out, &key, format, &CAPTION_FORMATS);
        if seen.contains(&format.as_str()) {
            out.push(Problem::warning(key, format!("`{format}` is listed twice")));
        }
        seen.push(format);
    }
    if c.tool == CaptionTool::Ffmpeg && c.formats.iter().any(|f| f == "bin") {
        let hint = "set captions.tool = \"auto\" or \"ccextractor\", or drop \"bin\"";
        out.push(
            Problem::error(
                "captions.formats",
                "\"bin\" needs CCExtractor, but captions.tool is \"ffmpeg\"",
            )
            .with_hint(hint),
        );
    }
    if c.tool == CaptionTool::Ffmpeg && c.ccextractor.is_some() {
        let message = "is ignored: captions.tool is \"ffmpeg\"";
        let hint = "remove it, or set captions.tool = \"auto\" to use CCExtractor";
        out.push(Problem::warning("captions.ccextractor", message).with_hint(hint));
    }
    if !(1..=20).contains(&c.max_attempts) {
        let message = format!("{} is out of range 1-20", c.max_attempts);
        out.push(Problem::error("captions.max_attempts", message));
    }
    at_least(
        out,
        "captions.stall_timeout",
        c.stall_timeout,
        Duration::from_secs(1),
    );
}

/// `level` is a `tracing` filter: comma-separated directives, each a level or `target=level`.
fn logging(l: &Logging, out: &mut Vec<Problem>) {
    if l.keep == 0 {
        out.push(
            Problem::error("logging.keep", "must be at least 1")
                .with_hint("14 keeps two weeks of daily files"),
        );
    }
    let hint = r#"a tracing filter like "info" or "info,h264_agent=debug""#;
    if l.level.trim().is_empty() {
        out.push(Problem::error("logging.level", "is empty").with_hint(hint));
        return;
    }
    for directive in l.level.split(',').map(str::trim) {
        if directive.contains('[') {
            continue; // span filters: left to tracing
        }
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level.trim(),
            None if is_level(directive) => continue,
            None => {
                // A bare word is a target name to tracing: "inof" silently means "all of inof".
                if let Some(dym) = did_you_mean(directive, LEVELS) {
                    let message = format!("`{directive}` is not a level, so it is read as a target name and the agent logs almost nothing");
                    out.push(Problem::warning("logging.level", message).with_hint(dym));
                }
                continue;
            }
        };
        if !is_level(level) {
            let message = format!("`{level}` in `{directive}` is not a level");
            let dym = did_you_mean(level, LEVELS)
                .unwrap_or_else(|| format!("one of: {}", LEVELS.join(", ")));
            out.push(Problem::error("logging.level", message).with_hint(dym));
        }
    }
}

fn is_level(word: &str) -> bool {
    LEVELS.contains(&word.to_ascii_lowercase().as_str())
}
