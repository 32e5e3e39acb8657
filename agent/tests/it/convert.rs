//! End to end with the real binary and the real FFmpeg: good recordings become verified H.264
//! MP4; bad ones fail clearly, once, without stopping the others.

use crate::common;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;
use h264_testkit::probe::{moov_before_mdat, probe};

#[test]
fn every_good_fixture_converts_to_verified_h264_aac_mp4() {
    let s = Setup::basic();
    let cases = [
        (Fixture::Mpeg2InterlacedTs, "news.ts", "encode"),
        (Fixture::Wtv, "movie.wtv", "encode"),
        (Fixture::H264Mp4, "clip.mp4", "remux"),
        (Fixture::H264Ts, "sport.ts", "remux"),
    ];
    for (fixture, name, _) in cases {
        fixture.copy_to(&s.input, name);
    }
    let out = s.run_once();
    assert!(out.status.success(), "exit status {:?}", out.status);
    for (fixture, name, mode) in cases {
        let source = probe(fixture.path());
        let output = s.output_of(name);
        let info = probe(&output);
        let video = info.video.as_ref().expect("a video stream");
        assert_eq!(video.codec, "h264", "{name}");
        assert!(
            !info.audio.is_empty() && info.audio.iter().all(|a| a.codec == "aac"),
            "{name}"
        );
        assert!(
            moov_before_mdat(&output),
            "{name}: moov must come before mdat"
        );
        assert!(
            (info.duration - source.duration).abs() <= 0.5,
            "{name}: duration {} vs source {}",
            info.duration,
            source.duration
        );
        assert!(!video.is_interlaced(), "{name}: output must be progressive");
        crate::mp4_facts::assert_agrees_with_ffprobe(&output);
        let record = s.record(name).unwrap();
        assert_eq!(record.state, JobState::Succeeded);
        assert_eq!(record.mode.as_deref(), Some(mode), "{name}");
    }
    assert!(probe(Fixture::Mpeg2InterlacedTs.path())
        .video
        .unwrap()
        .is_interlaced());
    assert_eq!(
        s.output_files().len(),
        cases.len(),
        "no temporaries or progress files remain"
    );
}

#[test]
fn bad_inputs_fail_once_with_a_clear_error_and_the_rest_converts() {
    // A recording cut off mid-packet is refused only when asked (`partial_packet = "fail"`); by
    // default its whole packets convert (tests/recordings.rs).
    let s = Setup::new(
        "",
        &common::BASE.replacen(
            "[readiness]\n",
            "[readiness]\npartial_packet = \"fail\"\n",
            1,
        ),
    );
    Fixture::TruncatedTs.copy_to(&s.input, "cut.ts");
    Fixture::ZeroByte.copy_to(&s.input, "empty.ts");
    Fixture::TextAsVideo.copy_to(&s.input, "notes.ts");
    Fixture::H264Mp4.copy_to(&s.input, "good.mp4");
    let out = s.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed file makes --once exit 1"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, says) in [
        ("cut.ts", "truncated"),
        ("empty.ts", "empty"),
        ("notes.ts", "not a readable video recording"),
    ] {
        let r = s.record(name).unwrap();
        assert_eq!(r.state, JobState::Failed, "{name}");
        assert_eq!(r.stage.as_deref(), Some("validate"), "{name}");
        assert!(
            r.error.as_deref().unwrap().contains(says),
            "{name}: {:?}",
            r.error
        );
        assert_eq!(r.attempts, 1, "{name}: invalid input is not retried");
        assert!(stderr.contains(says), "the log names the problem of {name}");
        assert!(!s.output_of(name).exists(), "{name} has no output");
    }
    assert_eq!(s.record("good.mp4").unwrap().state, JobState::Succeeded);
    assert_eq!(s.output_files(), vec!["good.mp4".to_string()]);

    // A second pass leaves the failed files alone until they change.
    let again = s.run_once();
    assert!(again.status.success());
    for name in ["cut.ts", "empty.ts", "notes.ts"] {
        assert_eq!(
            s.record(name).unwrap().attempts,
            1,
            "{name} was not tried again"
        );
    }
}

#[test]
fn odd_file_names_convert() {
    let s = Setup::basic();
    let names = [
        "with space.ts",
        "quote's \"double\".ts",
        "ünïcødé 日本語.ts",
        "-leading-dash.ts",
        "a:colon.ts",
    ];
    for name in names {
        Fixture::H264Ts.copy_to(&s.input, name);
    }
    let out = s.run_once();
    assert!(out.status.success());
    for name in names {
        let output = s.output_of(name);
        assert_eq!(probe(&output).video.unwrap().codec, "h264", "{name}");
    }
}

#[test]
fn two_sources_for_one_output_are_reported_and_neither_overwrites() {
    let s = Setup::basic();
    Fixture::H264Ts.copy_to(&s.input, "show.ts");
    Fixture::Wtv.copy_to(&s.input, "show.wtv");
    let out = s.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a conflict needs an operator: exit 1"
    );
    let ts = s.record("show.ts").unwrap();
    let wtv = s.record("show.wtv").unwrap();
    assert_eq!(
        ts.state,
        JobState::Succeeded,
        "the first in name order wins"
    );
    assert_eq!(wtv.state, JobState::Conflict);
    assert!(wtv
        .error
        .as_deref()
        .unwrap()
        .contains("two sources map to the output"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two sources map to the output"));
    let published = std::fs::read(s.output_of("show.ts")).unwrap();

    // Later runs keep refusing, and the published file stays the first source's.
    let again = s.run_once();
    assert!(
        again.status.success(),
        "a known conflict is not reported as new"
    );
    assert_eq!(s.record("show.wtv").unwrap().state, JobState::Conflict);
    assert_eq!(std::fs::read(s.output_of("show.ts")).unwrap(), published);
    assert_eq!(s.output_files(), vec!["show.mp4".to_string()]);
}

#[test]
fn an_output_not_made_by_the_agent_is_never_overwritten() {
    let s = Setup::basic();
    std::fs::create_dir_all(&s.output).unwrap();
    std::fs::write(s.output_of("show.ts"), b"somebody else's file").unwrap();
    Fixture::H264Ts.copy_to(&s.input, "show.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(s.record("show.ts").unwrap().state, JobState::Conflict);
    assert_eq!(
        std::fs::read(s.output_of("show.ts")).unwrap(),
        b"somebody else's file"
    );
}

#[test]
fn finished_files_are_not_converted_twice() {
    let s = Setup::basic();
    Fixture::H264Mp4.copy_to(&s.input, "a.mp4");
    assert!(s.run_once().status.success());
    let first = std::fs::metadata(s.output_of("a.mp4"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(s.run_once().status.success());
    assert_eq!(
        std::fs::metadata(s.output_of("a.mp4"))
            .unwrap()
            .modified()
            .unwrap(),
        first
    );
    assert_eq!(s.record("a.mp4").unwrap().attempts, 1);
}

#[test]
fn an_invalid_config_lists_every_problem_and_starts_nothing() {
    let s = Setup::basic();
    let bad = s.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[agent]\nstate_dir = '{}'\nworkers = 0\n\n[[watch]]\nsource = '{}'\noutput = '{}'\n\
             extensionz = [\"ts\"]\n\n[transcode]\ncrf = 99\npreset = \"veryfastt\"\n",
            s.state.display(),
            s.dir.path().join("missing").display(),
            s.output.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--config")
        .arg(&bad)
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "agent.workers",
        "extensionz",
        "extensions",
        "transcode.crf",
        "veryfast",
        "missing",
    ] {
        assert!(stderr.contains(needle), "stderr names {needle}:\n{stderr}");
    }
    assert!(!s.state.exists(), "nothing was started");
    assert!(!s.output.exists(), "nothing was started");
}
