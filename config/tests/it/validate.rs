//! Validation rules, one table row each: a change to a valid config and the problem it causes.

use crate::cases;

use std::path::{Path, PathBuf};

use cases::{run_cases, Change, Expect};
use h264_config::agent::{OnFailure, OnSuccess, WatchRoot};
use h264_config::validate::{normalize, validate};
use h264_config::{AgentConfig, HumanDuration, Severity};

use Severity::{Error, Warning};

/// A valid config: source `<tmp>/in` (exists), output `<tmp>/out` (does not yet).
fn base(tmp: &Path) -> AgentConfig {
    let mut config = AgentConfig::embedded_default();
    config.watch[0].source = tmp.join("in");
    config.watch[0].output = tmp.join("out");
    config
}

/// A second root, with its own existing source `<tmp>/<name>`.
fn add_root(c: &mut AgentConfig, tmp: &Path, name: &str) -> usize {
    std::fs::create_dir_all(tmp.join(name)).unwrap();
    let source = tmp.join(name);
    let output = tmp.join(format!("{name}-out"));
    c.watch.push(WatchRoot {
        source,
        output,
        ..WatchRoot::default()
    });
    c.watch.len() - 1
}

fn secs(s: u64) -> HumanDuration {
    HumanDuration::from_secs(s)
}

fn run(cases: &[(&str, Change, Expect)]) {
    run_cases(cases, |tmp| {
        std::fs::create_dir(tmp.join("in")).unwrap();
        base(tmp)
    });
}

#[test]
fn agent_rules() {
    run(&[
        (
            "id ok",
            |c, _| c.agent.id = Some("studio-a.1_x".into()),
            None,
        ),
        (
            "id empty",
            |c, _| c.agent.id = Some(String::new()),
            Some((Error, "agent.id", "is empty")),
        ),
        (
            "id too long",
            |c, _| c.agent.id = Some("a".repeat(65)),
            Some((Error, "agent.id", "64")),
        ),
        ("id longest", |c, _| c.agent.id = Some("a".repeat(64)), None),
        (
            "id space",
            |c, _| c.agent.id = Some("studio a".into()),
            Some((Error, "agent.id", "' '")),
        ),
        (
            "id slash",
            |c, _| c.agent.id = Some("a/b".into()),
            Some((Error, "agent.id", "'/'")),
        ),
        (
            "state_dir empty",
            |c, _| c.agent.state_dir = PathBuf::new(),
            Some((Error, "agent.state_dir", "empty")),
        ),
        (
            "workers 0",
            |c, _| c.agent.workers = 0,
            Some((Error, "agent.workers", "0 is out of range 1-64")),
        ),
        (
            "workers 65",
            |c, _| c.agent.workers = 65,
            Some((Error, "agent.workers", "65 is out of range")),
        ),
        ("workers 1", |c, _| c.agent.workers = 1, None),
        ("workers 64", |c, _| c.agent.workers = 64, None),
        (
            "grace short",
            |c, _| c.agent.shutdown_grace = HumanDuration::from_millis(500),
            Some((Error, "agent.shutdown_grace", "at least 1s")),
        ),
        ("grace 1s", |c, _| c.agent.shutdown_grace = secs(1), None),
        (
            "resync 0",
            |c, _| c.agent.resync_interval = secs(0),
            Some((Error, "agent.resync_interval", "at least 1s")),
        ),
    ]);
}

#[test]
fn watch_folder_rules() {
    run(&[
        (
            "no roots",
            |c, _| c.watch.clear(),
            Some((Error, "watch", "[[watch]] source =")),
        ),
        (
            "source unset",
            |c, _| c.watch[0].source = PathBuf::new(),
            Some((Error, "watch[0].source", "is not set")),
        ),
        (
            "output unset",
            |c, _| c.watch[0].output = PathBuf::new(),
            Some((Error, "watch[0].output", "is not set")),
        ),
        (
            "source missing",
            |c, t| c.watch[0].source = t.join("nope"),
            Some((
                Error,
                "watch[0].source",
                "does not exist (hint: create it or fix the path)",
            )),
        ),
        (
            "source is a file",
            |c, t| {
                std::fs::write(t.join("file"), "").unwrap();
                c.watch[0].source = t.join("file");
            },
            Some((
                Error,
                "watch[0].source",
                "is not a directory (hint: create it or fix the path)",
            )),
        ),
        (
            "output is a file",
            |_, t| {
                std::fs::write(t.join("out"), "").unwrap();
            },
            Some((Error, "watch[0].output", "is not a directory")),
        ),
        (
            "output existing folder",
            |_, t| std::fs::create_dir(t.join("out")).unwrap(),
            None,
        ),
        (
            "output is source",
            |c, t| c.watch[0].output = t.join("in"),
            Some((Error, "watch[0].output", "same folder as source")),
        ),
        (
            "output is source, spelt otherwise",
            |c, t| c.watch[0].output = t.join("in/./x/.."),
            Some((Error, "watch[0].output", "same folder as source")),
        ),
        (
            "output inside source",
            |c, t| c.watch[0].output = t.join("in/h264"),
            Some((Error, "watch[0].output", "is inside source")),
        ),
        (
            "output inside non-recursive source",
            |c, t| {
                c.watch[0].recursive = false;
                c.watch[0].output = t.join("in/h264");
            },
            Some((Error, "watch[0].output", "is inside source")),
        ),
        (
            "output beside source with common prefix",
            |c, t| c.watch[0].output = t.join("in-h264"),
            None,
        ),
        (
            "source inside output",
            |c, t| {
                c.watch[0].output = t.to_path_buf();
            },
            Some((Error, "watch[0].source", "is inside output")),
        ),
        (
            "poll interval 0",
            |c, _| c.watch[0].poll_interval = secs(0),
            Some((Error, "watch[0].poll_interval", "more than 0s")),
        ),
    ]);
}

#[test]
fn rules_between_roots() {
    run(&[
        ("two separate roots", |c, t| _ = add_root(c, t, "in2"), None),
        (
            "same source",
            |c, t| {
                let i = add_root(c, t, "in2");
                c.watch[i].source = t.join("in");
            },
            Some((Error, "watch[1].source", "overlaps watch[0].source")),
        ),
        (
            "nested source",
            |c, t| {
                let i = add_root(c, t, "in/sub");
                c.watch[i].output = t.join("sub-out");
            },
            Some((Error, "watch[1].source", "overlaps watch[0].source")),
        ),
        (
            "same output",
            |c, t| {
                let i = add_root(c, t, "in2");
                c.watch[i].output = t.join("out");
            },
            Some((
                Warning,
                "watch[1].output",
                "would both become `show.mp4` (hint: give each root its own output folder",
            )),
        ),
        (
            "output inside another source",
            |c, t| {
                let i = add_root(c, t, "in2");
                c.watch[i].output = t.join("in/h264");
            },
            Some((Error, "watch[1].output", "is inside watch[0].source")),
        ),
    ]);
}

#[test]
fn extension_rules() {
    run(&[
        (
            "empty list",
            |c, _| c.watch[0].extensions.clear(),
            Some((Error, "watch[0].extensions", "no file would be converted")),
        ),
        (
            "upper case",
            |c, _| c.watch[0].extensions = vec!["TS".into()],
            None,
        ),
        (
            "leading dot",
            |c, _| c.watch[0].extensions = vec![".ts".into()],
            Some((Warning, "watch[0].extensions[0]", "read as `ts`")),
        ),
        (
            "glob",
            |c, _| c.watch[0].extensions = vec!["ts".into(), "*.wtv".into()],
            Some((Error, "watch[0].extensions[1]", "not a file extension")),
        ),
        (
            "empty entry",
            |c, _| c.watch[0].extensions = vec![".".into()],
            Some((Error, "watch[0].extensions[0]", "not a file extension")),
        ),
        (
            "twice",
            |c, _| c.watch[0].extensions = vec!["ts".into(), "TS".into()],
            Some((Warning, "watch[0].extensions[1]", "`ts` is listed twice")),
        ),
    ]);
}

#[test]
fn done_and_quarantine_rules() {
    run(&[
        (
            "move without done_dir",
            |c, _| c.watch[0].on_success = OnSuccess::Move,
            Some((
                Error,
                "watch[0].done_dir",
                "is required by on_success = \"move\"",
            )),
        ),
        (
            "move with done_dir",
            |c, t| {
                c.watch[0].on_success = OnSuccess::Move;
                c.watch[0].done_dir = Some(t.join("done"));
            },
            None,
        ),
        (
            "done_dir unused",
            |c, t| c.watch[0].done_dir = Some(t.join("done")),
            Some((
                Warning,
                "watch[0].done_dir",
                "ignored unless on_success = \"move\"",
            )),
        ),
        (
            "done_dir empty",
            |c, _| {
                c.watch[0].on_success = OnSuccess::Move;
                c.watch[0].done_dir = Some(PathBuf::new());
            },
            Some((Error, "watch[0].done_dir", "is empty")),
        ),
        (
            "done_dir in recursive source",
            |c, t| {
                c.watch[0].on_success = OnSuccess::Move;
                c.watch[0].done_dir = Some(t.join("in/done"));
            },
            Some((Error, "watch[0].done_dir", "watched recursively")),
        ),
        (
            "done_dir in flat source",
            |c, t| {
                c.watch[0].recursive = false;
                c.watch[0].on_success = OnSuccess::Move;
                c.watch[0].done_dir = Some(t.join("in/done"));
            },
            None,
        ),
        (
            "done_dir is flat source",
            |c, t| {
                c.watch[0].recursive = false;
                c.watch[0].on_success = OnSuccess::Move;
                c.watch[0].done_dir = Some(t.join("in"));
            },
            Some((Error, "watch[0].done_dir", "same folder as watch[0].source")),
        ),
        (
            "quarantine without dir",
            |c, _| c.watch[0].on_failure = OnFailure::Quarantine,
            Some((
                Error,
                "watch[0].quarantine_dir",
                "is required by on_failure = \"quarantine\"",
            )),
        ),
        (
            "quarantine is output",
            |c, t| {
                c.watch[0].on_failure = OnFailure::Quarantine;
                c.watch[0].quarantine_dir = Some(t.join("out"));
            },
            Some((Error, "watch[0].quarantine_dir", "same folder as output")),
        ),
        (
            "quarantine in another source",
            |c, t| {
                let i = add_root(c, t, "in2");
                c.watch[i].on_failure = OnFailure::Quarantine;
                c.watch[i].quarantine_dir = Some(t.join("in/q"));
            },
            Some((Error, "watch[1].quarantine_dir", "inside watch[0].source")),
        ),
    ]);
}

#[test]
fn readiness_rules() {
    run(&[
        (
            "stable 1h",
            |c, _| c.readiness.stable_for = secs(3600),
            None,
        ),
        (
            "stable 2h",
            |c, _| c.readiness.stable_for = secs(7200),
            Some((Error, "readiness.stable_for", "longer than 1h")),
        ),
        (
            "stable 0",
            |c, _| c.readiness.stable_for = secs(0),
            Some((Warning, "readiness.stable_for", "while still being written")),
        ),
        (
            "min duration 2h",
            |c, _| c.readiness.min_duration = secs(7200),
            Some((Warning, "readiness.min_duration", "rejected")),
        ),
        (
            "min duration 0",
            |c, _| c.readiness.min_duration = secs(0),
            None,
        ),
        (
            "probe timeout 0",
            |c, _| c.readiness.probe_timeout = secs(0),
            Some((Error, "readiness.probe_timeout", "at least 1s")),
        ),
        (
            "probe timeout 2h",
            |c, _| c.readiness.probe_timeout = secs(7200),
            Some((Error, "readiness.probe_timeout", "longer than 1h")),
        ),
        (
            "min duration 2 days",
            |c, _| c.readiness.min_duration = secs(2 * 86400),
            Some((Error, "readiness.min_duration", "longer than 1day")),
        ),
        (
            "decode errors 1000000",
            |c, _| c.readiness.max_decode_errors = 1_000_000,
            Some((Error, "readiness.max_decode_errors", "out of range 0-10000")),
        ),
    ]);
}

#[test]
fn transcode_rules() {
    run(&[
        ("crf 0", |c, _| c.transcode.crf = 0, None),
        ("crf 35", |c, _| c.transcode.crf = 35, None),
        (
            "crf 51",
            |c, _| c.transcode.crf = 51,
            Some((Warning, "transcode.crf", "visibly blocky")),
        ),
        (
            "crf 70",
            |c, _| c.transcode.crf = 70,
            Some((
                Error,
                "transcode.crf",
                "70 is out of range 0-51 (hint: lower is better quality; 18-28 is usual)",
            )),
        ),
        (
            "a slow preset",
            |c, _| c.transcode.preset = "veryslow".into(),
            None,
        ),
        (
            "placebo",
            |c, _| c.transcode.preset = "placebo".into(),
            Some((Warning, "transcode.preset", "slower for no visible gain")),
        ),
        (
            "preset typo",
            |c, _| c.transcode.preset = "veryfsat".into(),
            Some((Error, "transcode.preset", "did you mean `veryfast`?")),
        ),
        (
            "preset unknown",
            |c, _| c.transcode.preset = "turbo".into(),
            Some((Error, "transcode.preset", "one of: ultrafast,")),
        ),
        (
            "profile typo",
            |c, _| c.transcode.profile = "hihg".into(),
            Some((Error, "transcode.profile", "did you mean `high`?")),
        ),
        (
            "profile baseline",
            |c, _| c.transcode.profile = "baseline".into(),
            None,
        ),
        (
            "level empty",
            |c, _| c.transcode.level = Some(String::new()),
            Some((Error, "transcode.level", "is empty")),
        ),
        (
            "level 4.1",
            |c, _| c.transcode.level = Some("4.1".into()),
            None,
        ),
        (
            "pix_fmt empty",
            |c, _| c.transcode.pix_fmt = String::new(),
            Some((Error, "transcode.pix_fmt", "is empty")),
        ),
        (
            "ffmpeg empty",
            |c, _| c.transcode.ffmpeg = PathBuf::new(),
            Some((Error, "transcode.ffmpeg", "is empty")),
        ),
        (
            "ffprobe empty",
            |c, _| c.transcode.ffprobe = PathBuf::new(),
            Some((Error, "transcode.ffprobe", "is empty")),
        ),
        (
            "attempts 0",
            |c, _| c.transcode.max_attempts = 0,
            Some((Error, "transcode.max_attempts", "0 is out of range 1-100")),
        ),
        (
            "attempts 101",
            |c, _| c.transcode.max_attempts = 101,
            Some((Error, "transcode.max_attempts", "101 is out of range")),
        ),
        ("attempts 100", |c, _| c.transcode.max_attempts = 100, None),
        (
            "backoff above max",
            |c, _| c.transcode.retry_backoff = secs(601),
            Some((
                Error,
                "transcode.retry_backoff",
                "longer than retry_backoff_max (10m)",
            )),
        ),
        (
            "backoff equal max",
            |c, _| c.transcode.retry_backoff = secs(600),
            None,
        ),
        (
            "stall 4s",
            |c, _| c.transcode.stall_timeout = secs(4),
            Some((Error, "transcode.stall_timeout", "at least 5s")),
        ),
        ("stall 5s", |c, _| c.transcode.stall_timeout = secs(5), None),
        (
            "tolerance 0",
            |c, _| c.transcode.duration_tolerance = secs(0),
            Some((Error, "transcode.duration_tolerance", "more than 0s")),
        ),
        (
            "bitrate 128K",
            |c, _| c.transcode.audio_bitrate = "128K".into(),
            None,
        ),
        (
            "bitrate bits",
            |c, _| c.transcode.audio_bitrate = "128000".into(),
            None,
        ),
        (
            "bitrate kbps",
            |c, _| c.transcode.audio_bitrate = "160kbps".into(),
            Some((
                Error,
                "transcode.audio_bitrate",
                "`160kbps` is not a bitrate",
            )),
        ),
        (
            "bitrate k",
            |c, _| c.transcode.audio_bitrate = "k".into(),
            Some((Error, "transcode.audio_bitrate", "not a bitrate")),
        ),
        (
            "local args ok",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-movflags".into(), "+faststart".into()],
            None,
        ),
        (
            "local -y",
            |c, _| {
                c.transcode.local_ffmpeg_args =
                    vec!["-movflags".into(), "+faststart".into(), "-y".into()]
            },
            Some((
                Error,
                "transcode.local_ffmpeg_args[2]",
                "`-y` is not allowed: the agent decides about overwriting",
            )),
        ),
        (
            "local -i",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-i".into(), "x".into()],
            Some((Error, "transcode.local_ffmpeg_args[0]", "`-i`")),
        ),
        (
            "local -progress",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-progress".into(), "x".into()],
            Some((Error, "transcode.local_ffmpeg_args[0]", "`-progress`")),
        ),
        (
            "local -f, spelt -f:x (security review C2)",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-f:x".into(), "ffmetadata".into()],
            Some((
                Error,
                "transcode.local_ffmpeg_args[0]",
                "`-f:x` is not allowed",
            )),
        ),
        (
            "a positional output",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-an".into(), "/srv/x.mkv".into()],
            Some((
                Error,
                "transcode.local_ffmpeg_args[1]",
                "another output file",
            )),
        ),
        (
            "a TCP output",
            |c, _| {
                c.transcode.local_ffmpeg_args = vec!["-metadata".into(), "tcp://127.0.0.1:9".into()]
            },
            Some((Error, "transcode.local_ffmpeg_args[1]", "is a URL")),
        ),
        (
            "-attach",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-attach".into(), "secret".into()],
            Some((
                Error,
                "transcode.local_ffmpeg_args[0]",
                "reads a file into the output",
            )),
        ),
        (
            "a filter script",
            |c, _| {
                c.transcode.local_ffmpeg_args =
                    vec!["-filter_complex_script".into(), "secret".into()]
            },
            Some((Error, "transcode.local_ffmpeg_args[0]", "it reads a file")),
        ),
        (
            "a movie filter",
            |c, _| {
                c.transcode.remux = false;
                c.transcode.local_ffmpeg_args = vec!["-vf".into(), "movie=secret".into()]
            },
            Some((Error, "transcode.local_ffmpeg_args[1]", "`movie`")),
        ),
        (
            "drawtext with a textfile",
            |c, _| {
                c.transcode.remux = false;
                c.transcode.local_ffmpeg_args =
                    vec!["-vf".into(), "drawtext=textfile=secret".into()]
            },
            Some((Error, "transcode.local_ffmpeg_args[1]", "`textfile`")),
        ),
        (
            "-t cuts the output short (review H1)",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-t".into(), "0.2".into()],
            Some((
                Error,
                "transcode.local_ffmpeg_args[0]",
                "cuts the output short",
            )),
        ),
        (
            "the deprecated local extra_args: read as local arguments, with a warning",
            |c, _| c.transcode.extra_args = vec!["-movflags".into(), "+faststart".into()],
            Some((Warning, "transcode.extra_args", "deprecated")),
        ),
        (
            "a tolerance above the cap",
            |c, _| c.transcode.duration_tolerance = h264_config::HumanDuration::from_secs(3),
            Some((Error, "transcode.duration_tolerance", "largest allowed, 2s")),
        ),
        (
            "an odd max_height",
            |c, _| c.transcode.max_height = Some(721),
            Some((Error, "transcode.max_height", "even height")),
        ),
        (
            "a sample rate AAC does not encode",
            |c, _| c.transcode.audio_sample_rate = Some(12345),
            Some((Error, "transcode.audio_sample_rate", "12345")),
        ),
    ]);
}

#[test]
fn logging_rules() {
    run(&[
        (
            "level empty",
            |c, _| c.logging.level = " ".into(),
            Some((Error, "logging.level", "is empty")),
        ),
        (
            "level filter",
            |c, _| c.logging.level = "info,h264_agent=debug".into(),
            None,
        ),
    ]);
}

#[test]
fn every_problem_is_reported_with_the_file() {
    let mut config = AgentConfig::default();
    config.agent.workers = 0;
    config.transcode.crf = 99;
    config.logging.level.clear();
    let problems = validate(&config, Some(Path::new("agent.toml")));
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["agent.workers", "watch", "transcode.crf", "logging.level"]
    );
    assert!(problems
        .iter()
        .all(|p| p.file.as_deref() == Some(Path::new("agent.toml"))));
}

#[test]
fn normalize_strips_dots_lowers_and_dedupes() {
    let mut config = AgentConfig::embedded_default();
    config.watch[0].extensions = vec![".TS".into(), " wtv ".into(), "ts".into(), "Mp4".into()];
    normalize(&mut config);
    assert_eq!(config.watch[0].extensions, ["ts", "wtv", "mp4"]);
}

#[test]
fn caption_rules() {
    use h264_config::agent::CaptionTool;
    run(&[
        (
            "srt and vtt need nothing",
            |c, _| c.captions.formats = vec!["srt".into(), "vtt".into()],
            None,
        ),
        (
            "unknown format",
            |c, _| c.captions.formats = vec!["webvt".into()],
            Some((Error, "captions.formats[0]", "vtt")),
        ),
        (
            "bin with the ffmpeg tool",
            |c, _| {
                c.captions.formats = vec!["bin".into()];
                c.captions.tool = CaptionTool::Ffmpeg;
            },
            Some((Error, "captions.formats", "needs CCExtractor")),
        ),
        (
            "bin without a CCExtractor",
            |c, tmp| {
                c.captions.formats = vec!["bin".into()];
                c.captions.ccextractor = Some(tmp.join("no-such-ccextractor"));
            },
            Some((Error, "captions.formats", "not found")),
        ),
        (
            "bin with a CCExtractor at the configured path",
            |c, tmp| {
                std::fs::write(tmp.join("ccx"), b"").unwrap();
                c.captions.formats = vec!["bin".into()];
                c.captions.ccextractor = Some(tmp.join("ccx"));
            },
            None,
        ),
        (
            "tool ccextractor that is missing",
            |c, tmp| {
                c.captions.tool = CaptionTool::Ccextractor;
                c.captions.ccextractor = Some(tmp.join("missing"));
            },
            Some((Error, "captions.tool", "not found")),
        ),
        (
            "zero attempts",
            |c, _| c.captions.max_attempts = 0,
            Some((Error, "captions.max_attempts", "out of range")),
        ),
        (
            "stall timeout too short",
            |c, _| c.captions.stall_timeout = HumanDuration::from_millis(10),
            Some((Error, "captions.stall_timeout", "too short")),
        ),
    ]);
}

#[test]
fn operations_rules() {
    use h264_config::agent::Email;
    use h264_config::FreeSpace;
    fn email() -> Email {
        Email {
            smtp: "smtp://127.0.0.1:2525".into(),
            from: "agent@example.org".into(),
            to: vec!["ops@example.org".into()],
            ..Email::default()
        }
    }
    run(&[
        (
            "control on loopback",
            |c, _| c.agent.control = "127.0.0.1:9000".into(),
            None,
        ),
        (
            "control without a port",
            |c, _| c.agent.control = "localhost".into(),
            Some((Error, "agent.control", "not an address")),
        ),
        (
            "control on every interface",
            |c, _| c.agent.control = "0.0.0.0:7442".into(),
            Some((Warning, "agent.control", "not a loopback")),
        ),
        (
            "critical above warn",
            |c, _| c.disk.critical = FreeSpace::Percent(20.0),
            Some((Error, "disk.critical", "above disk.warn")),
        ),
        (
            "thresholds in bytes",
            |c, _| {
                c.disk.warn = FreeSpace::Bytes(20_000_000_000);
                c.disk.critical = FreeSpace::Bytes(5_000_000_000);
            },
            None,
        ),
        (
            "a complete e-mail section",
            |c, _| c.alerts.email = Some(email()),
            None,
        ),
        (
            "an http address for smtp",
            |c, _| {
                c.alerts.email = Some(Email {
                    smtp: "http://mail".into(),
                    ..email()
                })
            },
            Some((Error, "alerts.email.smtp", "smtp://")),
        ),
        (
            "no recipient",
            |c, _| {
                c.alerts.email = Some(Email {
                    to: vec![],
                    ..email()
                })
            },
            Some((Error, "alerts.email.to", "no recipient")),
        ),
        (
            "a user without a password source",
            |c, _| {
                c.alerts.email = Some(Email {
                    username: Some("u".into()),
                    ..email()
                })
            },
            Some((Error, "alerts.email.username", "password")),
        ),
        (
            "a user with a password from the environment",
            |c, _| {
                c.alerts.email = Some(Email {
                    username: Some("u".into()),
                    password_env: Some("SMTP_PASSWORD".into()),
                    ..email()
                })
            },
            None,
        ),
        (
            "keep no log files",
            |c, _| c.logging.keep = 0,
            Some((Error, "logging.keep", "at least 1")),
        ),
    ]);
}

#[test]
fn controller_rules() {
    fn endpoint(c: &mut AgentConfig, e: &str) {
        c.controller.endpoint = Some(e.into());
    }
    fn label(c: &mut AgentConfig, k: &str, v: &str) {
        c.controller.labels.insert(k.into(), v.into());
    }
    run(&[
        ("no controller", |c, _| c.controller.endpoint = None, None),
        (
            "host and port, over http",
            |c, _| endpoint(c, "http://controller.example.org:7443"),
            Some((
                Warning,
                "controller.endpoint",
                "cleartext and unauthenticated",
            )),
        ),
        (
            "localhost over http",
            |c, _| endpoint(c, "http://localhost:7443"),
            None,
        ),
        (
            "loopback with a slash",
            |c, _| endpoint(c, "http://127.0.0.1:7443/"),
            None,
        ),
        ("ipv6", |c, _| endpoint(c, "http://[::1]:7443"), None),
        (
            "empty",
            |c, _| endpoint(c, " "),
            Some((Error, "controller.endpoint", "is empty")),
        ),
        (
            "no scheme",
            |c, _| endpoint(c, "controller:7443"),
            Some((
                Error,
                "controller.endpoint",
                "not an http:// or https:// address",
            )),
        ),
        (
            "https without the fleet CA",
            |c, _| endpoint(c, "https://controller:7443"),
            Some((
                Error,
                "controller.ca",
                "is not set, but controller.endpoint is https://",
            )),
        ),
        (
            "grpc scheme",
            |c, _| endpoint(c, "grpc://controller:7443"),
            Some((
                Error,
                "controller.endpoint",
                "`grpc://` is not http:// or https://",
            )),
        ),
        (
            "a path",
            |c, _| endpoint(c, "http://controller:7443/fleet"),
            Some((Error, "controller.endpoint", "has a path")),
        ),
        (
            "no host",
            |c, _| endpoint(c, "http://:7443"),
            Some((Error, "controller.endpoint", "no valid host")),
        ),
        (
            "a user in the address",
            |c, _| endpoint(c, "http://me@controller:7443"),
            Some((Error, "controller.endpoint", "no valid host")),
        ),
        (
            "port out of range",
            |c, _| endpoint(c, "http://controller:70000"),
            Some((Error, "controller.endpoint", "not a port")),
        ),
        (
            "port 0",
            |c, _| endpoint(c, "http://controller:0"),
            Some((Error, "controller.endpoint", "not a port")),
        ),
        (
            "no port",
            |c, _| endpoint(c, "http://localhost"),
            Some((Warning, "controller.endpoint", "port 80 is used")),
        ),
        (
            "labels",
            |c, _| {
                label(c, "site", "studio-a");
                label(c, "canary", "true");
                label(c, "example.org/rack", "r1_2");
                label(c, "empty", "");
            },
            None,
        ),
        (
            "label name with a space",
            |c, _| label(c, "my site", "a"),
            Some((Error, "controller.labels.my site", "not a label name")),
        ),
        (
            "label value with an equals sign",
            |c, _| label(c, "site", "a=b"),
            Some((Error, "controller.labels.site", "not a label value")),
        ),
        (
            "label value with a comma",
            |c, _| label(c, "site", "a,b"),
            Some((Error, "controller.labels.site", "not a label value")),
        ),
        (
            "label value too long",
            |c, _| label(c, "site", &"a".repeat(64)),
            Some((Error, "controller.labels.site", "at most 63")),
        ),
        (
            "label name empty",
            |c, _| label(c, "", "a"),
            Some((Error, "controller.labels.", "not a label name")),
        ),
        (
            "backoff too short",
            |c, _| c.controller.reconnect_backoff = HumanDuration::from_millis(50),
            Some((Error, "controller.reconnect_backoff", "at least 100ms")),
        ),
        (
            "backoff above its max",
            |c, _| c.controller.reconnect_backoff = secs(60),
            Some((
                Error,
                "controller.reconnect_backoff",
                "reconnect_backoff_max",
            )),
        ),
        (
            "backoff max too long",
            |c, _| c.controller.reconnect_backoff_max = secs(7200),
            Some((Error, "controller.reconnect_backoff_max", "longer than 1h")),
        ),
        (
            "fast backoff for tests",
            |c, _| {
                c.controller.reconnect_backoff = HumanDuration::from_millis(100);
                c.controller.reconnect_backoff_max = HumanDuration::from_millis(500);
            },
            None,
        ),
        (
            "stats too often",
            |c, _| c.controller.stats_interval = HumanDuration::from_millis(200),
            Some((Error, "controller.stats_interval", "at least 1s")),
        ),
        (
            "stats too rarely",
            |c, _| c.controller.stats_interval = secs(7200),
            Some((Error, "controller.stats_interval", "longer than 1h")),
        ),
    ]);
}

#[test]
fn conflict_rules() {
    run(&[
        (
            "remux with a video filter",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-vf".into(), "yadif".into()],
            Some((
                Warning,
                "transcode.local_ffmpeg_args",
                "needs re-encoding, so remux = true will be skipped",
            )),
        ),
        (
            "remux with a stream-specific audio filter",
            |c, _| c.transcode.local_ffmpeg_args = vec!["-filter:a:0".into(), "volume=2".into()],
            Some((
                Warning,
                "transcode.local_ffmpeg_args",
                "remux = true will be skipped",
            )),
        ),
        (
            "a filter without remux",
            |c, _| {
                c.transcode.remux = false;
                c.transcode.local_ffmpeg_args = vec!["-vf".into(), "yadif".into()];
            },
            None,
        ),
        (
            "state inside a source",
            |c, t| c.agent.state_dir = t.join("in/.state"),
            Some((Error, "agent.state_dir", "is inside watch[0].source")),
        ),
        (
            "state among the outputs",
            |c, t| c.agent.state_dir = t.join("out/state"),
            Some((Warning, "agent.state_dir", "among the MP4 files")),
        ),
        (
            "state apart",
            |c, t| c.agent.state_dir = t.join("state"),
            None,
        ),
        (
            "an output inside a recursive root's output",
            |c, t| {
                let i = add_root(c, t, "in2");
                c.watch[i].output = t.join("out/in2");
            },
            Some((Warning, "watch[1].output", "names may clash")),
        ),
        (
            "an output inside a flat root's output",
            |c, t| {
                c.watch[0].recursive = false;
                let i = add_root(c, t, "in2");
                c.watch[i].output = t.join("out/in2");
            },
            None,
        ),
    ]);
}

#[test]
fn more_pipeline_rules() {
    use h264_config::agent::CaptionTool;
    run(&[
        (
            "mtime grace 2h",
            |c, _| c.readiness.mtime_grace = secs(7200),
            Some((Error, "readiness.mtime_grace", "longer than 1h")),
        ),
        (
            "mtime grace 1h",
            |c, _| c.readiness.mtime_grace = secs(3600),
            None,
        ),
        (
            "no open-file check and a short wait",
            |c, _| c.readiness.open_file_check = false,
            Some((Warning, "readiness.stable_for", "half-written")),
        ),
        (
            "no open-file check and a long wait",
            |c, _| {
                c.readiness.open_file_check = false;
                c.readiness.stable_for = secs(30);
            },
            None,
        ),
        (
            "a level typo",
            |c, _| c.logging.level = "inof".into(),
            Some((Warning, "logging.level", "did you mean `info`?")),
        ),
        (
            "a bad level for a target",
            |c, _| c.logging.level = "info,h264_agent=verbose".into(),
            Some((
                Error,
                "logging.level",
                "`verbose` in `h264_agent=verbose` is not a level",
            )),
        ),
        (
            "a target name",
            |c, _| c.logging.level = "warn,h264_agent".into(),
            None,
        ),
        (
            "a caption format twice",
            |c, _| c.captions.formats = vec!["srt".into(), "srt".into()],
            Some((Warning, "captions.formats[1]", "listed twice")),
        ),
        (
            "a CCExtractor path the ffmpeg tool ignores",
            |c, t| {
                c.captions.tool = CaptionTool::Ffmpeg;
                c.captions.ccextractor = Some(t.join("ccx"));
            },
            Some((Warning, "captions.ccextractor", "is ignored")),
        ),
    ]);
}

/// A folder nobody can create anything in, not even root.
#[cfg(target_os = "linux")]
const UNWRITABLE: &str = "/proc/self/h264create-test";

#[cfg(target_os = "linux")]
#[test]
fn host_rules() {
    run(&[
        (
            "an output that cannot be created",
            |c, _| c.watch[0].output = UNWRITABLE.into(),
            Some((
                Error,
                "watch[0].output",
                "cannot be created in `/proc/self`",
            )),
        ),
        (
            "a state folder that cannot be created",
            |c, _| c.agent.state_dir = Path::new(UNWRITABLE).join("state"),
            Some((
                Error,
                "agent.state_dir",
                "does not exist and cannot be created",
            )),
        ),
        (
            "a quarantine that cannot be created",
            |c, _| {
                c.watch[0].on_failure = OnFailure::Quarantine;
                c.watch[0].quarantine_dir = Some(UNWRITABLE.into());
            },
            Some((Error, "watch[0].quarantine_dir", "cannot be created")),
        ),
        (
            "an existing output that cannot be written",
            |c, _| c.watch[0].output = "/proc/self".into(),
            Some((Error, "watch[0].output", "cannot be written")),
        ),
        (
            "a log folder that cannot be created",
            |c, _| c.logging.dir = Some(UNWRITABLE.into()),
            Some((Error, "logging.dir", "cannot be created")),
        ),
        (
            "a log folder that can",
            |c, t| c.logging.dir = Some(t.join("logs")),
            None,
        ),
        (
            "a missing password file",
            |c, t| {
                c.alerts.email = Some(h264_config::agent::Email {
                    smtp: "smtp://127.0.0.1:25".into(),
                    from: "a@example.org".into(),
                    to: vec!["b@example.org".into()],
                    username: Some("u".into()),
                    password_file: Some(t.join("no-password")),
                    ..Default::default()
                })
            },
            Some((Error, "alerts.email.password_file", "cannot be read")),
        ),
    ]);
}

#[test]
fn portable_checks_leave_the_host_alone() {
    use h264_config::validate::validate_with;
    use h264_config::Checks;
    let tmp = tempfile::tempdir().unwrap();
    let mut config = base(tmp.path());
    config.watch[0].source = tmp.path().join("not-here");
    config.captions.formats = vec!["bin".into()];
    config.captions.ccextractor = Some(tmp.path().join("no-ccextractor"));
    let full = validate_with(&config, None, Checks::Full);
    let keys: Vec<_> = full.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["watch[0].source", "captions.formats"], "{full:#?}");
    assert!(validate_with(&config, None, Checks::Portable).is_empty());
}

#[test]
fn share_and_credential_rules() {
    use h264_config::agent::{Email, WatchMode};
    fn email() -> Email {
        Email {
            smtp: "smtp://127.0.0.1:25".into(),
            from: "a@example.org".into(),
            to: vec!["b@example.org".into()],
            username: Some("u".into()),
            ..Email::default()
        }
    }
    run(&[
        (
            "a polled share with the default stable_for",
            |c, _| c.watch[0].mode = WatchMode::Poll,
            Some((Warning, "readiness.stable_for", "cannot see")),
        ),
        (
            "a polled share with a patient stable_for",
            |c, _| {
                c.watch[0].mode = WatchMode::Poll;
                c.readiness.stable_for = secs(120);
            },
            None,
        ),
        (
            "a second root polled",
            |c, t| {
                let i = add_root(c, t, "share");
                c.watch[i].mode = WatchMode::Poll;
            },
            Some((Warning, "readiness.stable_for", "watch[1] (mode = \"poll\"")),
        ),
        (
            "a local root with events",
            |c, _| c.watch[0].mode = WatchMode::Events,
            None,
        ),
        (
            "a password credential that is a path",
            |c, _| {
                c.alerts.email = Some(Email {
                    password_credential: Some("../smtp-password".into()),
                    ..email()
                })
            },
            Some((
                Error,
                "alerts.email.password_credential",
                "not a credential name",
            )),
        ),
        (
            "a password credential and a password file",
            |c, t| {
                std::fs::write(t.join("pw"), "secret\n").unwrap();
                c.alerts.email = Some(Email {
                    password_file: Some(t.join("pw")),
                    password_credential: Some("smtp-password".into()),
                    ..email()
                })
            },
            Some((Error, "alerts.email.password_credential", "both set")),
        ),
        (
            // The test does not run under systemd: no $CREDENTIALS_DIRECTORY.
            "a password credential outside the service",
            |c, _| {
                c.alerts.email = Some(Email {
                    password_credential: Some("smtp-password".into()),
                    ..email()
                })
            },
            Some((
                Warning,
                "alerts.email.password_credential",
                "LoadCredential",
            )),
        ),
    ]);
}

#[test]
fn a_password_credential_keeps_old_hashes_when_unset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = base(tmp.path());
    config.alerts.email = Some(h264_config::agent::Email::default());
    assert!(!config.canonical_json().contains("password_credential"));
    config.alerts.email.as_mut().unwrap().password_credential = Some("smtp-password".into());
    assert!(config
        .canonical_json()
        .contains("\"password_credential\":\"smtp-password\""));
}
