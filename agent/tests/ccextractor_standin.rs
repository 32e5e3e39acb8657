//! The CCExtractor path of the caption stage, against a stand-in.
//!
//! CCExtractor is not in Debian's packages, so these tests write a **stand-in executable**
//! (`ccextractor-standin`, a shell script) that follows CCExtractor's command line
//! (`INPUT -o OUTPUT -out=FORMAT`) and its documented exit codes, and behaves as each test needs:
//! it succeeds, reports "no captions" (exit 10), crashes, hangs, or writes part of a file and
//! fails. Everything else is real: the agent binary, FFmpeg, process groups and signals.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Setup;
use h264_agent::journal::{JobState, Journal};
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
  bin) printf '\314\314\355\314\000\120\000\001\000\000\000' > "$out" ;;
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
