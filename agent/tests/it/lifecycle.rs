//! The agent as a daemon under stress: recorders still writing, `kill -9`, SIGTERM, sources
//! deleted mid-job. Real binary, real FFmpeg, real signals.

use crate::common;

use std::time::Duration;

use common::{alive, Setup};
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;
use h264_testkit::probe::probe;
use h264_testkit::slow_writer::SlowWriter;
use h264_testkit::wait::wait_for;
use nix::sys::signal::Signal;

/// FFmpeg's `realtime` filter makes a transcode last as long as the media (about 3 s), long
/// enough to interrupt it. Remux is off so that the filter applies.
const SLOW_TRANSCODE: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"

[transcode]
preset = "ultrafast"
remux = false
local_ffmpeg_args = ["-vf", "realtime"]
stall_timeout = "30s"
max_attempts = 2
retry_backoff = "1s"
"#;

fn events_mode() -> &'static str {
    "mode = \"events\"\n"
}

#[test]
fn a_file_held_open_by_its_writer_is_not_started_before_it_is_closed() {
    // Size and mtime settle between chunks (stable_for is shorter than the chunk interval), so
    // only the open-file check stands between the agent and a premature start.
    let s = Setup::new(
        events_mode(),
        "[readiness]\nstable_for = \"300ms\"\nmtime_grace = \"0s\"\nopen_file_check = true\n\
         [transcode]\npreset = \"ultrafast\"\n",
    );
    let mut agent = s.spawn();
    let dest = s.input.join("live.ts");
    let writer = SlowWriter::start(
        Fixture::Mpeg2InterlacedTs.path(),
        &dest,
        6,
        Duration::from_millis(700),
    );
    writer.wait();
    let record = s.wait_state("live.ts", JobState::Succeeded, Duration::from_secs(60));
    assert_eq!(
        record.attempts, 1,
        "exactly one attempt, started after the close"
    );
    let full = probe(Fixture::Mpeg2InterlacedTs.path()).duration;
    assert!(
        (probe(&s.output_of("live.ts")).duration - full).abs() <= 0.5,
        "full duration"
    );
    assert!(
        agent.log().contains("open for writing"),
        "the agent saw the writer"
    );
    let events = h264_agent::journal::Journal::open(&s.state)
        .unwrap()
        .recent_events(100)
        .unwrap();
    assert!(
        events.is_empty(),
        "no cancelled or failed attempt: {events:?}"
    );
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn without_the_open_file_check_size_and_mtime_stability_prevent_a_premature_start() {
    let s = Setup::new(
        events_mode(),
        "[readiness]\nstable_for = \"2s\"\nmtime_grace = \"0s\"\nopen_file_check = false\n\
         [transcode]\npreset = \"ultrafast\"\n",
    );
    let mut agent = s.spawn();
    let dest = s.input.join("live.ts");
    let writer = SlowWriter::start_reopening(
        Fixture::Mpeg2InterlacedTs.path(),
        &dest,
        5,
        Duration::from_millis(600),
    );
    writer.wait();
    let record = s.wait_state("live.ts", JobState::Succeeded, Duration::from_secs(60));
    assert_eq!(record.attempts, 1);
    let full = probe(Fixture::Mpeg2InterlacedTs.path()).duration;
    assert!(
        (probe(&s.output_of("live.ts")).duration - full).abs() <= 0.5,
        "full duration"
    );
    let events = h264_agent::journal::Journal::open(&s.state)
        .unwrap()
        .recent_events(100)
        .unwrap();
    assert!(events.is_empty(), "no cancelled attempt: {events:?}");
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn kill_9_during_a_transcode_then_restart_redoes_only_the_interrupted_job() {
    let s = Setup::new("", SLOW_TRANSCODE);
    Fixture::H264Ts.copy_to(&s.input, "done.ts");
    assert!(s.run_once().status.success());
    let done_mtime = std::fs::metadata(s.output_of("done.ts"))
        .unwrap()
        .modified()
        .unwrap();

    Fixture::H264Ts.copy_to(&s.input, "victim.ts");
    let mut agent = s.spawn();
    let ffmpeg = agent.wait_for_ffmpeg(Duration::from_secs(30));
    // Let FFmpeg write part of its temporary output (in the output's private work folder).
    wait_for(
        "a partial temporary output",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            std::fs::read_dir(s.output.join(".h264create-work"))
                .ok()?
                .flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(".h264create-tmp"))
                .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        },
    )
    .unwrap();
    agent.signal(Signal::SIGKILL);
    agent.wait_exit(Duration::from_secs(5));
    assert!(
        !s.output_of("victim.ts").exists(),
        "nothing under the final name yet"
    );
    assert_eq!(
        s.record("victim.ts").unwrap().state,
        JobState::Running,
        "as the crash left it"
    );

    let out = s.run_once();
    assert!(out.status.success());
    assert!(!alive(ffmpeg), "the orphaned FFmpeg was killed at restart");
    let victim = s.record("victim.ts").unwrap();
    assert_eq!(victim.state, JobState::Succeeded);
    let info = probe(&s.output_of("victim.ts"));
    assert!((info.duration - probe(Fixture::H264Ts.path()).duration).abs() <= 0.5);
    assert_eq!(
        s.record("done.ts").unwrap().attempts,
        1,
        "the finished file was not redone"
    );
    assert_eq!(
        std::fs::metadata(s.output_of("done.ts"))
            .unwrap()
            .modified()
            .unwrap(),
        done_mtime
    );
    assert_eq!(
        s.output_files(),
        vec!["done.mp4".to_string(), "victim.mp4".to_string()]
    );
}

#[test]
fn sigterm_during_a_transcode_exits_in_time_and_leaves_no_ffmpeg() {
    let s = Setup::new("", SLOW_TRANSCODE);
    Fixture::H264Ts.copy_to(&s.input, "rec.ts");
    let mut agent = s.spawn();
    let ffmpeg = agent.wait_for_ffmpeg(Duration::from_secs(30));
    agent.signal(Signal::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(!alive(ffmpeg), "FFmpeg {ffmpeg} must not outlive the agent");
    assert_eq!(s.record("rec.ts").unwrap().state, JobState::Interrupted);
    assert!(
        s.output_files().is_empty(),
        "no output, no temporary: {:?}",
        s.output_files()
    );
}

#[test]
fn a_source_deleted_during_its_transcode_cancels_the_job_and_publishes_nothing() {
    let s = Setup::new(events_mode(), SLOW_TRANSCODE);
    let source = Fixture::H264Ts.copy_to(&s.input, "gone.ts");
    let mut agent = s.spawn();
    let ffmpeg = agent.wait_for_ffmpeg(Duration::from_secs(30));
    std::fs::remove_file(&source).unwrap();
    let record = s.wait_state("gone.ts", JobState::Cancelled, Duration::from_secs(20));
    assert!(record.error.unwrap().contains("deleted"));
    wait_for(
        "FFmpeg to stop",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (!alive(ffmpeg)).then_some(()),
    )
    .unwrap();
    assert!(
        s.output_files().is_empty(),
        "nothing published: {:?}",
        s.output_files()
    );
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn poll_mode_finds_new_recordings_in_new_folders() {
    let s = Setup::new(
        "mode = \"poll\"\npoll_interval = \"300ms\"\n",
        "[readiness]\nstable_for = \"500ms\"\nmtime_grace = \"0s\"\n[transcode]\npreset = \"ultrafast\"\n",
    );
    let mut agent = s.spawn();
    wait_for(
        "the agent to start",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || agent.log().contains("watching by polling").then_some(()),
    )
    .unwrap();
    std::fs::create_dir_all(s.input.join("2026/11")).unwrap();
    Fixture::H264Mp4.copy_to(&s.input.join("2026/11"), "late.mp4");
    s.wait_state(
        "2026/11/late.mp4",
        JobState::Succeeded,
        Duration::from_secs(30),
    );
    assert!(s.output.join("2026/11/late.mp4").exists());
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn log_files_roll_by_day_and_only_the_newest_are_kept() {
    let s = Setup::basic();
    let logs = s.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    // Files an earlier run left, oldest first, and one that is not a log of the agent's.
    for day in 1..=3 {
        let old = logs.join(format!("h264-agent.2026-11-0{day}.log"));
        std::fs::write(old, "an old line\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(logs.join("notes.txt"), "not a log\n").unwrap();
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    config.push_str(&format!(
        "\n[logging]\ndir = '{}'\nrotation = \"daily\"\nkeep = 2\n",
        logs.display()
    ));
    std::fs::write(&s.config, config).unwrap();
    Fixture::H264Ts.copy_to(&s.input, "logged.ts");
    assert!(s.run_once().status.success());

    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        names[0], "h264-agent.2026-11-03.log",
        "the newest old file is kept"
    );
    assert_eq!(names[2], "notes.txt", "only the agent's logs are pruned");
    let today = &names[1];
    let date = today
        .strip_prefix("h264-agent.")
        .and_then(|n| n.strip_suffix(".log"))
        .unwrap();
    assert_eq!(date.len(), "YYYY-MM-DD".len(), "{today}");
    let text = std::fs::read_to_string(logs.join(today)).unwrap();
    assert!(text.contains("h264-agent started"), "{text}");
    assert!(text.contains("converted"), "{text}");
    assert!(
        text.contains("h264-agent stopped"),
        "the last lines are flushed at exit: {text}"
    );
}
