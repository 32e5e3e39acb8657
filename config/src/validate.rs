//! Semantic checks of an [`AgentConfig`]: every error and warning at once, each with its key path.
//!
//! Paths are resolved against the current directory (not the config file's folder); folders are
//! compared after resolving symlinks of the parts that exist. [`normalize`] then tidies what
//! validation accepted (extensions).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::agent::{
    AgentConfig, AgentSection, Alerts, CaptionTool, Captions, Disk, Logging, OnFailure, OnSuccess,
    Readiness,
};
use crate::agent::{Transcode, WatchRoot};
use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::units::{FreeSpace, HumanDuration};

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

/// FFmpeg arguments the agent sets itself, so `extra_args` may not.
pub const RESERVED_ARGS: [&str; 4] = ["-i", "-y", "-progress", "-f"];

const MINIMAL_WATCH: &str = r#"add a root like: [[watch]] source = "/srv/recordings/incoming" output = "/srv/recordings/h264""#;
const REPICKED: &str =
    "converted files would be picked up again; choose a folder outside every source";

/// Every problem with `config`; errors make it unusable. `origin` names the file in problems.
pub fn validate(config: &AgentConfig, origin: Option<&Path>) -> Vec<Problem> {
    let mut out = Vec::new();
    agent(&config.agent, &mut out);
    watch(&config.watch, &mut out);
    readiness(&config.readiness, &mut out);
    transcode(&config.transcode, &mut out);
    captions(&config.captions, &mut out);
    disk(&config.disk, &mut out);
    alerts(&config.alerts, &mut out);
    logging(&config.logging, &mut out);
    out.into_iter().map(|p| p.in_file(origin)).collect()
}

/// Tidies a validated config: extensions lose their leading dot, become lower case and are
/// listed once.
pub fn normalize(config: &mut AgentConfig) {
    for root in &mut config.watch {
        let mut seen = Vec::new();
        for ext in &root.extensions {
            let ext = normalize_extension(ext);
            if !seen.contains(&ext) {
                seen.push(ext);
            }
        }
        root.extensions = seen;
    }
}

fn normalize_extension(ext: &str) -> String {
    ext.trim().trim_start_matches('.').to_lowercase()
}

fn agent(a: &AgentSection, out: &mut Vec<Problem>) {
    match a.control.parse::<std::net::SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() => {
            let message = format!(
                "{addr} is not a loopback address: anyone on the network could pause this agent"
            );
            out.push(Problem::warning("agent.control", message).with_hint("use 127.0.0.1:PORT"));
        }
        Ok(_) => {}
        Err(_) => {
            let message = format!("`{}` is not an address with a port", a.control);
            out.push(Problem::error("agent.control", message).with_hint("e.g. \"127.0.0.1:7442\""));
        }
    }
    if let Some(id) = &a.id {
        let bad = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)));
        let problem = if id.is_empty() {
            Some("is empty".to_owned())
        } else if id.chars().count() > 64 {
            Some(format!(
                "is {} characters long; at most 64 are allowed",
                id.chars().count()
            ))
        } else {
            bad.map(|c| format!("`{id}` contains {c:?}"))
        };
        if let Some(message) = problem {
            out.push(Problem::error("agent.id", message).with_hint(
                "use letters, digits, `.`, `_` and `-` (like \"studio-a\"), or remove it to use the host name",
            ));
        }
    }
    if a.state_dir.as_os_str().is_empty() {
        out.push(Problem::error("agent.state_dir", "is empty"));
    }
    if !(1..=64).contains(&a.workers) {
        out.push(
            Problem::error(
                "agent.workers",
                format!("{} is out of range 1-64", a.workers),
            )
            .with_hint("how many files are converted at once; each FFmpeg uses several cores"),
        );
    }
    at_least(
        out,
        "agent.shutdown_grace",
        a.shutdown_grace,
        Duration::from_secs(1),
    );
    at_least(
        out,
        "agent.resync_interval",
        a.resync_interval,
        Duration::from_secs(1),
    );
}

fn watch(roots: &[WatchRoot], out: &mut Vec<Problem>) {
    if roots.is_empty() {
        out.push(
            Problem::error("watch", "no [[watch]] root is configured").with_hint(MINIMAL_WATCH),
        );
    }
    let sources: Vec<_> = roots.iter().map(|r| resolve(&r.source)).collect();
    let outputs: Vec<_> = roots.iter().map(|r| resolve(&r.output)).collect();
    for (i, root) in roots.iter().enumerate() {
        let at = |key: &str| format!("watch[{i}].{key}");
        folders(roots, i, &sources, &outputs, out);
        extensions(&at("extensions"), &root.extensions, out);
        if root.poll_interval.get().is_zero() {
            out.push(Problem::error(at("poll_interval"), "must be more than 0s"));
        }
        let moves = root.on_success == OnSuccess::Move;
        parking(
            out,
            &at("done_dir"),
            root.done_dir.as_deref(),
            moves,
            "on_success = \"move\"",
        );
        let quarantines = root.on_failure == OnFailure::Quarantine;
        let (key, dir) = (at("quarantine_dir"), root.quarantine_dir.as_deref());
        parking(out, &key, dir, quarantines, "on_failure = \"quarantine\"");
        for (key, dir) in [
            ("done_dir", &root.done_dir),
            ("quarantine_dir", &root.quarantine_dir),
        ] {
            let Some(dir) = dir.as_deref().filter(|d| !d.as_os_str().is_empty()) else {
                continue;
            };
            parked_outside(out, &at(key), &resolve(dir), &outputs[i], roots, &sources);
        }
    }
}

/// `source` and `output` of root `i`: set, existing where needed, apart from every source.
fn folders(
    roots: &[WatchRoot],
    i: usize,
    sources: &[PathBuf],
    outputs: &[PathBuf],
    out: &mut Vec<Problem>,
) {
    let root = &roots[i];
    let (src_key, out_key) = (format!("watch[{i}].source"), format!("watch[{i}].output"));
    let fix = "create it or fix the path";
    if root.source.as_os_str().is_empty() {
        out.push(Problem::error(&src_key, "is not set").with_hint(MINIMAL_WATCH));
    } else if !root.source.exists() {
        let message = format!("`{}` does not exist", root.source.display());
        out.push(Problem::error(&src_key, message).with_hint(fix));
    } else if !root.source.is_dir() {
        let message = format!("`{}` is not a directory", root.source.display());
        out.push(Problem::error(&src_key, message).with_hint(fix));
    }
    if root.output.as_os_str().is_empty() {
        out.push(Problem::error(&out_key, "is not set").with_hint(MINIMAL_WATCH));
    } else if root.output.exists() && !root.output.is_dir() {
        let message = format!("`{}` is not a directory", root.output.display());
        out.push(Problem::error(&out_key, message).with_hint(fix));
    }
    if root.source.as_os_str().is_empty() || root.output.as_os_str().is_empty() {
        return;
    }
    for (j, other) in sources.iter().enumerate() {
        if roots[j].source.as_os_str().is_empty() || roots[j].output.as_os_str().is_empty() {
            continue;
        }
        let name = if j == i {
            "source".to_owned()
        } else {
            format!("watch[{j}].source")
        };
        if *other == outputs[i] {
            let message = format!("is the same folder as {name}");
            out.push(Problem::error(&out_key, message).with_hint(REPICKED));
        } else if outputs[i].starts_with(other) {
            out.push(Problem::error(&out_key, format!("is inside {name}")).with_hint(REPICKED));
        }
        if j < i && (sources[i].starts_with(other) || other.starts_with(&sources[i])) {
            let message = format!("overlaps watch[{j}].source (`{}`)", other.display());
            let hint = "a folder may belong to one root only, or its files are converted twice";
            out.push(Problem::error(&src_key, message).with_hint(hint));
        }
        if j < i && outputs[j] == outputs[i] {
            let message = format!("is the same folder as watch[{j}].output");
            out.push(
                Problem::warning(&out_key, message)
                    .with_hint("outputs with the same name will clash"),
            );
        }
    }
    if sources[i] != outputs[i] && sources[i].starts_with(&outputs[i]) {
        let hint = "keep source and output apart";
        out.push(Problem::error(&src_key, "is inside output").with_hint(hint));
    }
}

fn extensions(key: &str, exts: &[String], out: &mut Vec<Problem>) {
    if exts.is_empty() {
        let hint = r#"list what the recorder writes, like extensions = ["ts", "wtv", "mp4"]"#;
        out.push(Problem::error(key, "is empty: no file would be converted").with_hint(hint));
    }
    let mut seen = Vec::new();
    for (n, ext) in exts.iter().enumerate() {
        let key = format!("{key}[{n}]");
        let norm = normalize_extension(ext);
        if norm.is_empty() || norm.contains(|c: char| "/\\*?".contains(c) || c.is_whitespace()) {
            let hint = r#"write the extension alone, like "ts""#;
            out.push(
                Problem::error(key, format!("`{ext}` is not a file extension")).with_hint(hint),
            );
        } else if seen.contains(&norm) {
            out.push(Problem::warning(key, format!("`{norm}` is listed twice")));
        } else if ext.trim().starts_with('.') {
            let message = format!("`{ext}`: the leading dot is not needed; read as `{norm}`");
            out.push(Problem::warning(key, message));
        }
        seen.push(norm);
    }
}

/// `done_dir` / `quarantine_dir`: set when `used`, noted when set but unused.
fn parking(out: &mut Vec<Problem>, key: &str, dir: Option<&Path>, used: bool, setting: &str) {
    match (dir, used) {
        (None, true) => {
            let hint = format!(
                "set {} or change {setting}",
                key.rsplit('.').next().unwrap_or(key)
            );
            out.push(Problem::error(key, format!("is required by {setting}")).with_hint(hint));
        }
        (Some(d), true) if d.as_os_str().is_empty() => out.push(Problem::error(key, "is empty")),
        (Some(_), false) => out.push(Problem::warning(
            key,
            format!("is ignored unless {setting}"),
        )),
        _ => {}
    }
}

/// A folder sources are moved to must not be the output nor be watched.
fn parked_outside(
    out: &mut Vec<Problem>,
    key: &str,
    dir: &Path,
    output: &Path,
    roots: &[WatchRoot],
    sources: &[PathBuf],
) {
    let hint = "moved files would be picked up again; choose a folder outside every source";
    if dir == output {
        out.push(Problem::error(key, "is the same folder as output").with_hint("keep them apart"));
    }
    for (j, (root, source)) in roots.iter().zip(sources).enumerate() {
        if root.source.as_os_str().is_empty() {
            continue;
        }
        if dir == source {
            let message = format!("is the same folder as watch[{j}].source");
            out.push(Problem::error(key, message).with_hint(hint));
        } else if root.recursive && dir.starts_with(source) {
            let message = format!("is inside watch[{j}].source, which is watched recursively");
            out.push(Problem::error(key, message).with_hint(hint));
        }
    }
}

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
    }
    if r.min_duration.get() > hour {
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
    }
    one_of(out, "transcode.preset", &t.preset, &PRESETS);
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
    for (n, arg) in t.extra_args.iter().enumerate() {
        if RESERVED_ARGS.contains(&arg.trim()) {
            let hint =
                "remove it: the agent sets the input, overwriting, progress and output format";
            let message = format!("`{arg}` is set by the agent");
            out.push(Problem::error(format!("transcode.extra_args[{n}]"), message).with_hint(hint));
        }
    }
}

/// Sidecar formats the agent can write.
pub const CAPTION_FORMATS: [&str; 3] = ["srt", "vtt", "bin"];

fn captions(c: &Captions, out: &mut Vec<Problem>) {
    for (n, format) in c.formats.iter().enumerate() {
        one_of(
            out,
            &format!("captions.formats[{n}]"),
            format,
            &CAPTION_FORMATS,
        );
    }
    let ccextractor = c.find_ccextractor();
    let where_ = || match &c.ccextractor {
        Some(path) => format!("at {} (captions.ccextractor)", path.display()),
        None => "on PATH".to_string(),
    };
    if c.formats.iter().any(|f| f == "bin") {
        if c.tool == CaptionTool::Ffmpeg {
            let hint = "set captions.tool = \"auto\" or \"ccextractor\", or drop \"bin\"";
            out.push(
                Problem::error(
                    "captions.formats",
                    "\"bin\" needs CCExtractor, but captions.tool is \"ffmpeg\"",
                )
                .with_hint(hint),
            );
        } else if ccextractor.is_none() {
            let message = format!("\"bin\" needs CCExtractor, which is not found {}", where_());
            let hint = "install CCExtractor and set captions.ccextractor, or drop \"bin\"";
            out.push(Problem::error("captions.formats", message).with_hint(hint));
        }
    }
    if c.tool == CaptionTool::Ccextractor && ccextractor.is_none() {
        let message = format!(
            "is \"ccextractor\", but CCExtractor is not found {}",
            where_()
        );
        let hint = "install CCExtractor and set captions.ccextractor, or use tool = \"auto\"";
        out.push(Problem::error("captions.tool", message).with_hint(hint));
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

fn disk(d: &Disk, out: &mut Vec<Problem>) {
    let as_percent = |t: FreeSpace| match t {
        FreeSpace::Percent(p) => Some(p),
        FreeSpace::Bytes(_) => None,
    };
    if let (Some(w), Some(c)) = (as_percent(d.warn), as_percent(d.critical)) {
        if c > w {
            let message = format!("{} is above disk.warn ({})", d.critical, d.warn);
            let hint = "critical is the lower threshold: e.g. warn = \"10%\", critical = \"5%\"";
            out.push(Problem::error("disk.critical", message).with_hint(hint));
        }
    }
    if let (FreeSpace::Bytes(w), FreeSpace::Bytes(c)) = (d.warn, d.critical) {
        if c > w {
            let message = format!("{} bytes is above disk.warn ({w} bytes)", c);
            out.push(
                Problem::error("disk.critical", message)
                    .with_hint("critical is the lower threshold"),
            );
        }
    }
    at_least(
        out,
        "disk.check_interval",
        d.check_interval,
        Duration::from_secs(1),
    );
}

fn alerts(a: &Alerts, out: &mut Vec<Problem>) {
    if a.queue_limit == 0 {
        out.push(Problem::error("alerts.queue_limit", "must be at least 1"));
    }
    if a.retry_backoff > a.retry_backoff_max {
        let message = format!(
            "{} is longer than retry_backoff_max ({})",
            a.retry_backoff, a.retry_backoff_max
        );
        out.push(Problem::error("alerts.retry_backoff", message));
    }
    let Some(e) = &a.email else { return };
    let scheme = e.smtp.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("smtp" | "smtps")) {
        let message = format!("`{}` is not an smtp:// or smtps:// address", e.smtp);
        let hint = "e.g. \"smtp://mail.example.org:587\" with starttls = true, or \"smtps://mail.example.org:465\"";
        out.push(Problem::error("alerts.email.smtp", message).with_hint(hint));
    }
    if !e.from.contains('@') {
        out.push(Problem::error(
            "alerts.email.from",
            format!("`{}` is not an e-mail address", e.from),
        ));
    }
    if e.to.is_empty() {
        out.push(
            Problem::error("alerts.email.to", "names no recipient")
                .with_hint("to = [\"ops@example.org\"]"),
        );
    }
    for (n, to) in e.to.iter().enumerate() {
        if !to.contains('@') {
            out.push(Problem::error(
                format!("alerts.email.to[{n}]"),
                format!("`{to}` is not an e-mail address"),
            ));
        }
    }
    if e.username.is_some() && e.password_env.is_none() && e.password_file.is_none() {
        let hint = "set password_env = \"SMTP_PASSWORD\" or password_file = \"/etc/h264create/smtp-password\"";
        out.push(
            Problem::error("alerts.email.username", "is set but no password source is")
                .with_hint(hint),
        );
    }
    if e.password_env.is_some() && e.password_file.is_some() {
        out.push(Problem::error(
            "alerts.email.password_file",
            "and password_env are both set; keep one",
        ));
    }
}

fn logging(l: &Logging, out: &mut Vec<Problem>) {
    if l.keep == 0 {
        out.push(
            Problem::error("logging.keep", "must be at least 1")
                .with_hint("14 keeps two weeks of daily files"),
        );
    }
    if l.level.trim().is_empty() {
        let hint = r#"a tracing filter like "info" or "info,h264_agent=debug""#;
        out.push(Problem::error("logging.level", "is empty").with_hint(hint));
    }
}

fn at_least(out: &mut Vec<Problem>, key: &str, value: HumanDuration, min: Duration) {
    if value.get() < min {
        let message = format!(
            "{value} is too short; it must be at least {}",
            HumanDuration(min)
        );
        out.push(Problem::error(key, message));
    }
}

fn one_of(out: &mut Vec<Problem>, key: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        let hint = did_you_mean(value, allowed.iter().copied())
            .unwrap_or_else(|| format!("one of: {}", allowed.join(", ")));
        out.push(Problem::error(key, format!("unknown value `{value}`")).with_hint(hint));
    }
}

/// `path` made absolute against the current directory, `.` and `..` removed, and symlinks
/// resolved in the part that exists; used only to compare folders.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.into());
    let mut lexical = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut missing = Vec::new();
    let mut existing = lexical.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return missing.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}
