//! The CCExtractor path of the caption stage, against stand-ins.
//!
//! CCExtractor is not in Debian's packages, so these tests run stand-ins with CCExtractor's
//! command line (`INPUT -o OUTPUT -out=FORMAT`) and its exit codes (`ccx_common_common.h`):
//!
//! - the test kit's **realistic stand-in** ([`h264_testkit::ccextractor::standin`]), which
//!   behaves like the real program (0.96.5) where the agent depends on it: it reads the captions
//!   of MPEG transport and program streams, and finds nothing in MP4 (exit 10, or exit 0 after
//!   "Error: NULL file path provided to processmp4") or WTV files;
//! - **scripted stand-ins** (`ccextractor-standin`, a shell script) for what the real one does
//!   when things go wrong: it crashes, hangs, writes part of a file and fails, or finds nothing.
//!
//! Everything else is real: the agent binary, FFmpeg, process groups and signals.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Setup;
use h264_agent::journal::{JobState, Journal};
use h264_testkit::captions::{
    default_cues, encode_608, parse_srt, CaptionedKind, ExpectedCue, FPS, PADDING,
};
use h264_testkit::ccextractor::{self, read_rcwt, Mp4};
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::wait_for;
use nix::sys::signal::Signal;

/// The shell prologue of every stand-in: parse CCExtractor's arguments.
const PARSE_ARGS: &str = r#"#!/bin/sh
# Stand-in for CCExtractor in tests: same command line, scripted behaviour.
input="$1"; shift
out=""; format="srt"
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -out=*) format="${1#-out=}"; shift ;;
    *) echo "unknown option $1" >&2; exit 7 ;;
  esac
done
[ -f "$input" ] || { echo "no input file" >&2; exit 2; }
"#;

/// Writes a valid file of the requested format.
const WRITE_OUTPUT: &str = r#"
case "$format" in
  srt) printf '1\n00:00:01,000 --> 00:00:02,000\nSTAND-IN CAPTION\n\n' > "$out" ;;
  webvtt) printf 'WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nSTAND-IN CAPTION\n\n' > "$out" ;;
  bin) printf '\314\314\355\314\000\120\000\001\000\000\000\350\003\000\000\000\000\000\000\001\000\374\224\040' > "$out" ;;
esac
"#;

fn standin(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("ccextractor-standin");
    std::fs::write(&path, format!("{PARSE_ARGS}{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// An installation whose caption stage uses the stand-in written from `body`.
fn setup(body: &str, formats: &str, extra: &str) -> Setup {
    let s = Setup::new("", common::BASE);
    let program = standin(s.dir.path(), body);
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text = text.replace("max_attempts = 2", "max_attempts = 1");
    text.push_str(&format!(
        "\n[captions]\nformats = [{formats}]\ntool = \"ccextractor\"\nccextractor = '{}'\n\
         retry_backoff = \"100ms\"\n{extra}\n",
        program.display()
    ));
    std::fs::write(&s.config, text).unwrap();
    s
}

/// An installation whose caption stage uses the test kit's realistic stand-in; each run of it
/// appends its input's path to `ccextractor-inputs.log` in the installation.
fn realistic(mp4: Mp4, formats: &str) -> Setup {
    let mut s = Setup::new("", common::BASE);
    let program = ccextractor::standin(s.dir.path(), mp4);
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push_str(&format!(
        "\n[captions]\nformats = [{formats}]\ntool = \"ccextractor\"\nccextractor = '{}'\n\
         retry_backoff = \"100ms\"\nmax_attempts = 2\n",
        program.display()
    ));
    std::fs::write(&s.config, text).unwrap();
    let log = s.dir.path().join("ccextractor-inputs.log");
    s.env
        .push((ccextractor::LOG_ENV.into(), log.display().to_string()));
    s
}

/// The inputs the realistic stand-in was given, in order.
fn inputs_given(s: &Setup) -> Vec<String> {
    std::fs::read_to_string(s.dir.path().join("ccextractor-inputs.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The `.srt` of `name` holds exactly `fixture`'s cue texts, in order.
fn srt_holds(s: &Setup, name: &str, cues: &[ExpectedCue]) {
    let srt = std::fs::read_to_string(s.output_of(name).with_extension("srt")).unwrap();
    let texts: Vec<String> = parse_srt(&srt).into_iter().map(|c| c.2).collect();
    let want: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, want, "{name}.srt");
}

/// The `.bin` of `name` is RCWT whose first time is within one frame of the first caption
/// data, at `first_secs` from the start of the recording.
fn bin_starts_at(s: &Setup, name: &str, first_secs: f64, fps: f64) {
    let groups = read_rcwt(&s.output_of(name).with_extension("bin"));
    assert!(!groups.is_empty(), "{name}.bin holds no caption data");
    let first = groups[0].ms as f64 / 1000.0;
    assert!(
        (first - first_secs).abs() <= 1.0 / fps + 1e-3,
        "{name}.bin starts at {first:.3}s, the first caption data is at {first_secs:.3}s"
    );
    assert!(groups.iter().all(|g| !g.blocks.is_empty()));
}

#[test]
fn the_standin_reads_transport_streams_and_finds_nothing_in_mp4_as_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let ts = CaptionedKind::H264Ts.make(dir.path(), "a.ts");
    let mp4 = CaptionedKind::H264Mp4.make(dir.path(), "a.mp4");
    let wtv = CaptionedKind::Wtv.make(dir.path(), "a.wtv");
    let run_as = |program: &Path, input: &Path, out: &Path, format: &str| {
        std::process::Command::new(program)
            .arg(input)
            .arg("-o")
            .arg(out)
            .arg(format!("-out={format}"))
            .output()
            .unwrap()
    };
    let run = |program: &Path, input: &Path, out: &Path| run_as(program, input, out, "srt");
    let exit10 = ccextractor::standin(&dir.path().join(""), Mp4::NoCaptions);
    let out = dir.path().join("out.srt");
    let done = run(&exit10, &ts.path, &out);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let texts: Vec<String> = parse_srt(&std::fs::read_to_string(&out).unwrap())
        .into_iter()
        .map(|c| c.2)
        .collect();
    assert_eq!(texts.len(), ts.cues.len());
    for input in [&mp4.path, &wtv.path] {
        let _ = std::fs::remove_file(&out);
        let done = run(&exit10, input, &out);
        assert_eq!(done.status.code(), Some(10), "{}", input.display());
        assert!(String::from_utf8_lossy(&done.stdout).contains("No captions were found in input"));
        assert!(!out.exists());
    }
    let sub = dir.path().join("null");
    std::fs::create_dir_all(&sub).unwrap();
    let null_path = ccextractor::standin(&sub, Mp4::NullPath);
    let done = run(&null_path, &mp4.path, &out);
    assert_eq!(done.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&done.stdout)
        .contains("Error: NULL file path provided to processmp4"));
    assert!(!out.exists(), "the empty output is deleted");
    let bad = run_as(&null_path, &mp4.path, &out, "nonsense");
    assert_eq!(bad.status.code(), Some(7), "a malformed parameter");
}

#[test]
fn transport_streams_go_straight_in_and_their_bin_starts_at_the_first_caption() {
    let s = realistic(Mp4::NoCaptions, r#""srt", "bin""#);
    let h264 = CaptionedKind::H264Ts.make(&s.input, "h264.ts");
    let mpeg2 = CaptionedKind::Mpeg2Ts.make(&s.input, "mpeg2.ts");
    assert!(s.run_once().status.success());
    let first = first_caption_data_secs(&default_cues());
    for (name, fixture) in [("h264.ts", &h264), ("mpeg2.ts", &mpeg2)] {
        let r = s.record(name).unwrap();
        assert_eq!(r.state, JobState::Succeeded, "{name}: {:?}", r.error);
        assert_eq!(r.captions.as_deref(), Some("srt,bin (ccextractor)"));
        srt_holds(&s, name, &fixture.cues);
        bin_starts_at(&s, name, first, fixture.fps);
    }
    let given = inputs_given(&s);
    assert_eq!(given.len(), 4, "one run per format and file: {given:?}");
    for input in &given {
        assert!(
            input.ends_with("h264.ts") || input.ends_with("mpeg2.ts"),
            "CCExtractor was given {input}, not the source"
        );
    }
    no_temporaries(&s);
}

#[test]
fn wtv_and_mp4_sources_go_through_an_mpeg_ts_copy_of_the_converted_video() {
    for mp4 in [Mp4::NoCaptions, Mp4::NullPath] {
        let s = realistic(mp4, r#""srt", "bin""#);
        let wtv = CaptionedKind::Wtv.make(&s.input, "rec.wtv");
        let mp4_source = CaptionedKind::H264Mp4.make(&s.input, "clip.mp4");
        assert!(s.run_once().status.success());
        let first = first_caption_data_secs(&default_cues());
        for (name, fixture) in [("rec.wtv", &wtv), ("clip.mp4", &mp4_source)] {
            let r = s.record(name).unwrap();
            assert_eq!(r.state, JobState::Succeeded, "{name}: {:?}", r.error);
            assert_eq!(r.captions.as_deref(), Some("srt,bin (ccextractor)"));
            srt_holds(&s, name, &fixture.cues);
            bin_starts_at(&s, name, first, fixture.fps);
        }
        let given = inputs_given(&s);
        assert_eq!(given.len(), 4, "{given:?}");
        for input in &given {
            assert!(
                input.ends_with(".mp4.ccextractor.ts.h264create-tmp"),
                "CCExtractor was given {input}, not a TS copy of the output"
            );
            assert!(!Path::new(input).exists(), "{input} was not removed");
        }
        no_temporaries(&s);
    }
}

#[test]
fn an_extractor_that_finds_nothing_in_a_captioned_source_fails_the_job() {
    // Exit 10, and exit 0 without a file (the real program's two ways of finding nothing).
    for body in [
        "echo 'No captions were found in input.'\nexit 10\n",
        "echo 'Error: NULL file path provided to processmp4'\nexit 0\n",
    ] {
        let s = setup(body, r#""srt""#, "max_attempts = 2");
        let fixture = CaptionedKind::H264Ts.make(&s.input, "news.ts");
        assert_eq!(s.run_once().status.code(), Some(1));
        let r = s.record("news.ts").unwrap();
        assert_eq!(r.state, JobState::Failed);
        assert_eq!(r.stage.as_deref(), Some("captions"));
        let error = r.error.unwrap();
        assert!(
            error.contains("the source has CC1 captions")
                && error.contains(&format!("{:?}", fixture.cues[0].text))
                && error.contains("found none")
                && error.contains("2 caption attempt"),
            "{error}"
        );
        assert!(s.output_files().is_empty(), "{:?}", s.output_files());
        no_temporaries(&s);
    }
}

fn no_temporaries(s: &Setup) {
    let left: Vec<String> = s
        .output_files()
        .into_iter()
        .filter(|f| f.contains("h264create-tmp"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

#[test]
fn a_successful_run_publishes_every_sidecar_beside_the_mp4() {
    let s = setup(WRITE_OUTPUT, r#""srt", "vtt", "bin""#, "");
    Fixture::H264Ts.copy_to(&s.input, "show.ts");
    assert!(s.run_once().status.success());
    assert_eq!(
        s.output_files(),
        ["show.bin", "show.mp4", "show.srt", "show.vtt"]
    );
    assert!(std::fs::read_to_string(s.output.join("show.srt"))
        .unwrap()
        .contains("STAND-IN"));
    assert!(std::fs::read(s.output.join("show.bin"))
        .unwrap()
        .starts_with(&[0xCC, 0xCC, 0xED]));
    let r = s.record("show.ts").unwrap();
    assert_eq!(r.captions.as_deref(), Some("srt,vtt,bin (ccextractor)"));
}

#[test]
fn exit_10_means_no_captions_and_the_mp4_is_still_published() {
    let s = setup(
        "echo 'No captions were found in input.' >&2\nexit 10\n",
        r#""srt""#,
        "",
    );
    Fixture::H264Ts.copy_to(&s.input, "quiet.ts");
    assert!(s.run_once().status.success(), "no captions is not an error");
    assert_eq!(
        s.output_files(),
        ["quiet.mp4"],
        "no empty sidecar unless asked for"
    );
    let r = s.record("quiet.ts").unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.captions.as_deref(), Some("none"));
    assert!(Journal::open(&s.state)
        .unwrap()
        .recent_events(10)
        .unwrap()
        .is_empty());
}

#[test]
fn exit_10_with_write_empty_publishes_empty_sidecars() {
    let s = setup("exit 10\n", r#""srt", "vtt""#, "write_empty = true");
    Fixture::H264Ts.copy_to(&s.input, "quiet.ts");
    assert!(s.run_once().status.success());
    assert_eq!(s.output_files(), ["quiet.mp4", "quiet.srt", "quiet.vtt"]);
    assert_eq!(
        std::fs::read_to_string(s.output.join("quiet.vtt")).unwrap(),
        "WEBVTT\n\n"
    );
}

#[test]
fn a_crash_is_retried_then_fails_the_job_and_publishes_nothing() {
    let body = "printf '1\\n00:00:01,000 --> ' > \"$out\"\nkill -SEGV $$\n";
    let s = setup(body, r#""srt""#, "max_attempts = 2");
    Fixture::H264Ts.copy_to(&s.input, "crash.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = s.record("crash.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.stage.as_deref(), Some("captions"));
    let error = r.error.unwrap();
    assert!(
        error.contains("signal 11") && error.contains("2 caption attempt"),
        "{error}"
    );
    assert!(
        s.output_files().is_empty(),
        "no MP4 without its sidecars: {:?}",
        s.output_files()
    );
}

#[test]
fn a_partial_file_then_failure_publishes_nothing() {
    let body = "printf '1\\n00:00:01,000 --> 00:00:02' > \"$out\"\necho 'read error' >&2\nexit 8\n";
    let s = setup(body, r#""srt""#, "max_attempts = 1");
    Fixture::H264Ts.copy_to(&s.input, "partial.ts");
    assert_eq!(s.run_once().status.code(), Some(1));
    let r = s.record("partial.ts").unwrap();
    assert!(r.error.unwrap().contains("read error (exit 8)"));
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
    no_temporaries(&s);
}

/// Hangs with a grandchild (`sleep SECONDS`), so that only a process-group kill leaves nothing
/// behind. Each test uses its own number to find its own sleeper.
fn hang(seconds: u32) -> String {
    format!("sleep {seconds} &\nwait\n")
}

/// Live `sleep SECONDS` processes.
fn sleepers(seconds: u32) -> Vec<u32> {
    let marker = seconds.to_string();
    h264_testkit::process::processes_named("sleep")
        .into_iter()
        .filter(|pid| h264_testkit::process::cmdline(*pid).is_some_and(|a| a.contains(&marker)))
        .filter(|pid| common::alive(*pid))
        .collect()
}

#[test]
fn a_hung_extractor_is_killed_at_the_stall_timeout_with_its_children() {
    let s = setup(
        &hang(7321),
        r#""srt""#,
        "stall_timeout = \"1s\"\nmax_attempts = 1",
    );
    Fixture::H264Ts.copy_to(&s.input, "hang.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = s.record("hang.ts").unwrap();
    assert!(r.error.unwrap().contains("no sign of life"));
    assert!(s.output_files().is_empty());
    assert!(
        sleepers(7321).is_empty(),
        "the stand-in's child outlived it"
    );
}

#[test]
fn shutdown_during_the_caption_stage_leaves_no_child_and_no_sidecar() {
    let s = setup(&hang(7322), r#""srt""#, "stall_timeout = \"5m\"");
    Fixture::H264Ts.copy_to(&s.input, "stop.ts");
    let mut agent = s.spawn();
    wait_for(
        "the stand-in's child",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || (!sleepers(7322).is_empty()).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let family = h264_testkit::process::descendants_of(agent.pid());
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
    for pid in family {
        assert!(
            !common::alive(pid),
            "process {pid} of the caption stage outlived the agent"
        );
    }
    assert!(sleepers(7322).is_empty());
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
    assert_eq!(s.record("stop.ts").unwrap().state, JobState::Interrupted);
}

/// Seconds from the first frame to the first frame whose field-1 pair is not padding, for the
/// captioned fixtures made with `cues`.
fn first_caption_data_secs(cues: &[h264_testkit::captions::Cue]) -> f64 {
    let pairs = encode_608(cues, h264_testkit::captions::DEFAULT_FRAMES);
    let first = pairs.iter().position(|p| *p != PADDING).unwrap();
    first as f64 / FPS
}
