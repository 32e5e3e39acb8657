//! Shares that go away while the agent runs, or while it is stopped (security review M2): real
//! watch and output roots renamed away and back (what an unmounted share looks like to the
//! agent), the real binary, real FFmpeg, a real SMTP server on loopback for the alerts. No job
//! fails for good, no root is recreated on the local disk (not even after a restart), no source
//! is deleted or taken for deleted, the other roots go on, the outage shows in the stats and
//! raises one alert each way, and everything converts once the root is back.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Setup;
use h264_agent::journal::JobState;
use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::{StatsReply, StatsRequest};
use h264_testkit::fixtures::Fixture;
use h264_testkit::smtp::SmtpSink;
use h264_testkit::wait::{never_during, wait_for};
use nix::sys::signal::Signal;

/// `[alerts]` mailing to `sink`, without deduplication (so that a second alert would show).
fn alerts(sink: &SmtpSink) -> String {
    format!(
        "[alerts]\ndedup_window = \"0s\"\nretry_backoff = \"1s\"\nretry_backoff_max = \"2s\"\n\
         [alerts.email]\nsmtp = \"{}\"\nfrom = \"agent@example.org\"\nto = [\"ops@example.org\"]\n",
        sink.url()
    )
}

/// A transcode that runs in real time (as long as the clip), so a test can act during it.
const SLOW: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"
min_duration = "1s"

[transcode]
preset = "ultrafast"
remux = false
local_ffmpeg_args = ["-vf", "realtime"]
stall_timeout = "30s"
max_attempts = 2
retry_backoff = "1s"
retry_backoff_max = "2s"
"#;

fn stats(control: &str) -> StatsReply {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = AgentControlClient::connect(format!("http://{control}"))
            .await
            .unwrap();
        c.stats(StatsRequest {}).await.unwrap().into_inner()
    })
}

/// Waits until the agent's stats name `root` as held (kind `kind`).
fn wait_held(s: &Setup, root: &Path, kind: &str) -> StatsReply {
    let root = std::fs::canonicalize(root.parent().unwrap())
        .unwrap()
        .join(root.file_name().unwrap());
    wait_for(
        &format!("the stats to show {} held", root.display()),
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let st = stats(&s.control());
            st.held_roots
                .iter()
                .any(|h| Path::new(&h.path) == root && h.kind == kind && !h.reason.is_empty())
                .then_some(st)
        },
    )
    .unwrap()
}

fn wait_log(daemon: &common::Daemon, what: &str) {
    wait_for(
        what,
        Duration::from_secs(20),
        Duration::from_millis(20),
        || daemon.log().contains(what).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
}

/// The mails whose subject contains `text`.
fn mails(sink: &SmtpSink, text: &str) -> usize {
    sink.received()
        .iter()
        .filter(|m| m.subject.contains(text))
        .count()
}

#[test]
fn a_vanished_output_root_holds_its_jobs_until_it_is_back() {
    let sink = SmtpSink::started(None);
    let s = Setup::new(
        "on_success = \"delete\"\n",
        &format!("{}\n{}", common::BASE, alerts(&sink)),
    );
    let daemon = s.spawn();
    wait_log(&daemon, "start-up reconcile finished");
    assert!(s.output.is_dir(), "the root is created the first time");
    let away = s.dir.path().join("h264.unmounted");
    std::fs::rename(&s.output, &away).unwrap();
    Fixture::H264Ts.copy_to(&s.input, "during-outage.ts");
    // Longer than two attempts with their backoff (BASE: max_attempts 2, 1s-2s).
    never_during(
        Duration::from_secs(6),
        Duration::from_millis(100),
        || {
            let failed = s
                .record("during-outage.ts")
                .filter(|r| r.state == JobState::Failed);
            let recreated = s.output.exists();
            let deleted = !s.input.join("during-outage.ts").exists();
            (failed.is_some() || recreated || deleted).then_some((failed, recreated, deleted))
        },
        |(failed, recreated, deleted)| {
            format!("failed: {failed:?}, root recreated: {recreated}, source deleted: {deleted}")
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(
        daemon.log().matches("the output root is missing").count(),
        1,
        "{}",
        daemon.log()
    );
    let st = wait_held(&s, &s.output, "output");
    assert!(!st.paused, "the other roots go on: {st:?}");
    let mail = sink.mail_with_subject("output root missing or unreachable");
    assert!(mail.text().contains("not recreated"), "{}", mail.text());

    std::fs::rename(&away, &s.output).unwrap();
    s.wait_state(
        "during-outage.ts",
        JobState::Succeeded,
        Duration::from_secs(60),
    );
    assert!(s.output_of("during-outage.ts").exists());
    wait_for(
        "the source to be deleted after success",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (!s.input.join("during-outage.ts").exists()).then_some(()),
    )
    .unwrap();
    assert!(daemon.log().contains("the output root is back"));
    assert!(stats(&s.control()).held_roots.is_empty(), "no longer held");
    sink.mail_with_subject("output root back");
    assert_eq!(mails(&sink, "root missing or unreachable"), 1, "one alert");
    assert_eq!(mails(&sink, "root back"), 1, "one all-clear");
}

#[test]
fn an_output_root_removed_during_a_transcode_fails_nothing_and_converts_when_back() {
    let s = Setup::new("on_success = \"delete\"\n", SLOW);
    let source = Fixture::H264Ts.copy_to(&s.input, "live.ts");
    let daemon = s.spawn();
    daemon.wait_for_ffmpeg(Duration::from_secs(30));
    let away = s.dir.path().join("h264.unmounted");
    std::fs::rename(&s.output, &away).unwrap();
    let interrupted = wait_for(
        "the job to be interrupted, not failed",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let r = s.record("live.ts")?;
            assert_ne!(r.state, JobState::Failed, "{r:?}\n{}", daemon.log());
            (r.state == JobState::Interrupted).then_some(r)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert!(
        interrupted
            .error
            .unwrap_or_default()
            .contains("output root"),
        "{}",
        daemon.log()
    );
    never_during(
        Duration::from_secs(4),
        Duration::from_millis(100),
        || {
            let failed = s.record("live.ts").filter(|r| r.state == JobState::Failed);
            let recreated = s.output.exists();
            let deleted = !source.exists();
            (failed.is_some() || recreated || deleted).then_some((failed, recreated, deleted))
        },
        |(failed, recreated, deleted)| {
            format!("failed: {failed:?}, root recreated: {recreated}, source deleted: {deleted}")
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert!(
        !away.join("live.mp4").exists(),
        "nothing published: {}",
        daemon.log()
    );
    std::fs::rename(&away, &s.output).unwrap();
    s.wait_state("live.ts", JobState::Succeeded, Duration::from_secs(60));
    assert!(s.output_of("live.ts").exists());
    wait_for(
        "the source to be deleted after success",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (!source.exists()).then_some(()),
    )
    .unwrap();
}

#[test]
fn a_vanished_watch_root_holds_only_its_own_recordings_and_drops_nothing() {
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let (other_in, other_out) = (dir.path().join("incoming-b"), dir.path().join("h264-b"));
    std::fs::create_dir_all(&other_in).unwrap();
    let second = format!(
        "[[watch]]\nsource = '{}'\noutput = '{}'\n",
        other_in.display(),
        other_out.display()
    );
    let s = Setup::new(
        "",
        &format!("{second}\n{}\n{}", common::BASE, alerts(&sink)),
    );
    Fixture::H264Ts.copy_to(&s.input, "before.ts");
    let daemon = s.spawn();
    s.wait_state("before.ts", JobState::Succeeded, Duration::from_secs(60));
    let before = s.record("before.ts").unwrap();

    let away = s.dir.path().join("incoming.unmounted");
    std::fs::rename(&s.input, &away).unwrap();
    wait_held(&s, &s.input, "watch");
    // The other root goes on.
    Fixture::H264Ts.copy_to(&other_in, "b.ts");
    wait_for(
        "the other root's recording to convert",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            s.journal()
                .into_iter()
                .find(|r| r.rel == "b.ts" && r.state == JobState::Succeeded)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert!(other_out.join("b.mp4").exists());
    // A recording that lands on the share while it is away from this machine.
    Fixture::H264Ts.copy_to(&away, "during.ts");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        s.record("before.ts").as_ref(),
        Some(&before),
        "the journal keeps the held root's entries as they were"
    );
    assert!(s.record("during.ts").is_none());
    assert!(
        !s.input.exists(),
        "a watch root is not recreated either: {}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("was deleted"),
        "no source taken for deleted: {}",
        daemon.log()
    );
    sink.mail_with_subject("watch root missing or unreachable");

    std::fs::rename(&away, &s.input).unwrap();
    s.wait_state("during.ts", JobState::Succeeded, Duration::from_secs(60));
    assert_eq!(s.record("before.ts").unwrap().state, JobState::Succeeded);
    assert!(away.parent().unwrap().join("incoming").is_dir());
    sink.mail_with_subject("watch root back");
    assert_eq!(mails(&sink, "root missing or unreachable"), 1, "one alert");
    assert_eq!(mails(&sink, "root back"), 1, "one all-clear");
}

#[test]
fn a_root_that_vanished_while_the_agent_was_stopped_is_not_recreated_at_start() {
    let s = Setup::basic();
    let mut daemon = s.spawn();
    wait_log(&daemon, "start-up reconcile finished");
    daemon.signal(Signal::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
    assert!(s.output.is_dir(), "created the first time");
    let away: PathBuf = s.dir.path().join("h264.unmounted");
    std::fs::rename(&s.output, &away).unwrap();
    Fixture::H264Ts.copy_to(&s.input, "after-restart.ts");

    // `--once` has nothing to wait for: it stops, saying why, and creates nothing.
    let once = s.run_once();
    assert_eq!(once.status.code(), Some(3), "{once:?}");
    let stderr = String::from_utf8_lossy(&once.stderr);
    assert!(
        stderr.contains("is missing or unreachable") && stderr.contains("not recreated"),
        "{stderr}"
    );
    assert!(!s.output.exists(), "--once recreated the root");

    let daemon = s.spawn();
    wait_log(&daemon, "it existed before, so it is not recreated");
    wait_held(&s, &s.output, "output");
    never_during(
        Duration::from_secs(3),
        Duration::from_millis(100),
        || s.output.exists().then_some(()),
        |()| format!("the root was recreated at start:\n{}", daemon.log()),
    )
    .unwrap();
    assert!(s.record("after-restart.ts").is_none());
    std::fs::rename(&away, &s.output).unwrap();
    s.wait_state(
        "after-restart.ts",
        JobState::Succeeded,
        Duration::from_secs(60),
    );
    assert!(s.output_of("after-restart.ts").exists());
}
