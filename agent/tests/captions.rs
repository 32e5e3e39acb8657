//! Captions end to end, FFmpeg path, for real: fixtures with CEA-608 captions injected into the
//! video bitstream (H.264 SEI, MPEG-2 user data), converted by the agent binary; the MP4 keeps
//! the captions, and the `.srt` / `.vtt` sidecars hold exactly the injected text, in order, each
//! cue within one frame of its injected time.

mod common;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::captions::{has_closed_captions, parse_srt, parse_vtt, CaptionedKind};
use h264_testkit::fixtures::Fixture;

const FFMPEG_CAPTIONS: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"

[transcode]
preset = "ultrafast"
max_attempts = 1

[captions]
formats = ["srt", "vtt"]
tool = "ffmpeg"
"#;

/// One frame: sidecars come from the source, whose caption times count from its first frame.
fn tolerance(fps: f64) -> f64 {
    1.0 / fps + 1e-3
}

#[test]
fn every_captioned_fixture_keeps_its_captions_and_gets_exact_sidecars() {
    let s = Setup::new("", FFMPEG_CAPTIONS);
    let fixtures: Vec<_> = CaptionedKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let name = format!("cc-{i}-{}.{}", kind.video_codec(), kind.extension());
            (name.clone(), kind.make(&s.input, &name))
        })
        .collect();
    let out = s.run_once();
    assert!(out.status.success());
    for (name, fixture) in &fixtures {
        let mp4 = s.output_of(name);
        assert!(
            has_closed_captions(&mp4),
            "{name}: the MP4 lost the captions"
        );
        let record = s.record(name).unwrap();
        assert_eq!(record.state, JobState::Succeeded);
        assert_eq!(
            record.captions.as_deref(),
            Some("srt,vtt (ffmpeg)"),
            "{name}"
        );
        for (ext, cues) in [
            (
                "srt",
                parse_srt(&std::fs::read_to_string(mp4.with_extension("srt")).unwrap()),
            ),
            (
                "vtt",
                parse_vtt(&std::fs::read_to_string(mp4.with_extension("vtt")).unwrap()),
            ),
        ] {
            let texts: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
            let expected: Vec<&str> = fixture.cues.iter().map(|c| c.text.as_str()).collect();
            assert_eq!(texts, expected, "{name}.{ext}: text and order");
            for (got, want) in cues.iter().zip(&fixture.cues) {
                let off = (got.0 - want.start_secs).abs();
                assert!(
                    off <= tolerance(fixture.fps),
                    "{name}.{ext}: cue {:?} starts {off:.3}s off",
                    want.text
                );
            }
        }
    }
}

#[test]
fn a_recording_without_captions_is_recorded_as_such_without_error() {
    let s = Setup::new("", FFMPEG_CAPTIONS);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "plain.ts");
    let out = s.run_once();
    assert!(out.status.success());
    let record = s.record("plain.ts").unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.captions.as_deref(), Some("none"));
    assert_eq!(
        s.output_files(),
        ["plain.mp4"],
        "no empty sidecars unless asked for"
    );
    let events = h264_agent::journal::Journal::open(&s.state)
        .unwrap()
        .recent_events(10)
        .unwrap();
    assert!(events.is_empty(), "no error: {events:?}");
}

#[test]
fn deinterlacing_an_interlaced_captioned_source_keeps_its_captions() {
    let s = Setup::new(
        "",
        &FFMPEG_CAPTIONS.replace(
            "max_attempts = 1",
            "max_attempts = 1\ndeinterlace = \"always\"",
        ),
    );
    let fixture = CaptionedKind::Mpeg2Ts.make(&s.input, "news.ts");
    assert!(s.run_once().status.success());
    let srt = std::fs::read_to_string(s.output.join("news.srt")).unwrap();
    let texts: Vec<String> = parse_srt(&srt).into_iter().map(|c| c.2).collect();
    let expected: Vec<String> = fixture.cues.iter().map(|c| c.text.clone()).collect();
    assert_eq!(texts, expected, "no doubled or lost characters after bwdif");
}
