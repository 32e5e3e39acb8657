//! Retries, and what becomes of sources after success and failure.

use crate::common;

use common::Setup;
use h264_agent::journal::{JobState, Journal};
use h264_testkit::fixtures::Fixture;

/// FFmpeg rejects an unknown option: a real failure that does not blame the input, so it is
/// retried with backoff until the attempts run out.
const FAILING_FFMPEG: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"

[transcode]
preset = "ultrafast"
local_ffmpeg_args = ["-no_such_option", "1"]
max_attempts = 3
retry_backoff = "200ms"
retry_backoff_max = "1s"
"#;

#[test]
fn a_failing_ffmpeg_is_retried_with_backoff_then_fails_for_good() {
    let s = Setup::new("", FAILING_FFMPEG);
    Fixture::H264Ts.copy_to(&s.input, "rec.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = s.record("rec.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.stage.as_deref(), Some("transcode"));
    let error = r.error.unwrap();
    assert!(
        error.contains("no_such_option") && error.contains("gave up after 3"),
        "{error}"
    );
    let events = Journal::open(&s.state).unwrap().recent_events(10).unwrap();
    let kinds: Vec<&str> = events.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["retrying", "retrying", "failed"]);
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
}

#[test]
fn sources_are_moved_after_success_and_quarantined_after_failure() {
    let s = Setup::new(
        "on_success = \"move\"\ndone_dir = 'DONE'\non_failure = \"quarantine\"\nquarantine_dir = 'QUAR'\n",
        common::BASE,
    );
    // The paths are placeholders until the installation's folder is known.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text = text
        .replace(
            "'DONE'",
            &format!("'{}'", s.dir.path().join("done").display()),
        )
        .replace(
            "'QUAR'",
            &format!("'{}'", s.dir.path().join("quarantine").display()),
        );
    std::fs::write(&s.config, text).unwrap();
    std::fs::create_dir_all(s.input.join("day 1")).unwrap();
    Fixture::H264Mp4.copy_to(&s.input.join("day 1"), "good.mp4");
    Fixture::TextAsVideo.copy_to(&s.input, "bad.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        s.output.join("day 1/good.mp4").exists(),
        "the folder structure is mirrored"
    );
    assert!(!s.input.join("day 1/good.mp4").exists());
    assert!(s.dir.path().join("done/day 1/good.mp4").exists());
    assert!(!s.input.join("bad.ts").exists());
    assert!(s.dir.path().join("quarantine/bad.ts").exists());
    let note = std::fs::read_to_string(s.dir.path().join("quarantine/bad.ts.error.txt")).unwrap();
    assert!(note.contains("not a readable video recording"), "{note}");
}

#[test]
fn delete_after_success_removes_only_converted_sources() {
    let s = Setup::new("on_success = \"delete\"\n", common::BASE);
    Fixture::H264Mp4.copy_to(&s.input, "good.mp4");
    Fixture::ZeroByte.copy_to(&s.input, "empty.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert!(!s.input.join("good.mp4").exists());
    assert!(
        s.input.join("empty.ts").exists(),
        "a failed source is left where it was"
    );
    assert!(s.output_of("good.mp4").exists());
}
