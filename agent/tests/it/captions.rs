//! Captions end to end, FFmpeg path, for real: fixtures with CEA-608 captions injected into the
//! video bitstream (H.264 SEI, MPEG-2 user data) or carried in a separate `c608` track,
//! converted by the agent binary; the MP4 keeps the captions, and the `.srt` / `.vtt` sidecars
//! hold exactly the injected text, in order, each cue within one frame of its injected time.
//!
//! Issue 20's CC1 + CC3 capture is reproduced with interlaced H.264 carrying CC1 on field 1 and
//! CC3 on field 2 (20 `cc_data` triples a frame, as ATSC sends), with and without a stretch of
//! frames at twice the frame rate: FFmpeg's default constant frame rate for MP4 drops frames
//! there and garbles the captions, which the agent avoids, and its cue-for-cue check turns any
//! remaining difference into a failed verification.

use crate::common;

use common::Setup;
use h264_agent::journal::JobState;
use h264_agent::journal::Journal;
use h264_testkit::captions::{
    captioned_c608_mp4, captioned_h264_ts, captioned_with, cc3_cues, default_cues, encode_608,
    field_cues, has_closed_captions, parse_srt, parse_vtt, question_period_cues, CaptionedKind,
    Captioning, ExpectedCue, DEFAULT_FRAMES, FPS, PADDING,
};
use h264_testkit::ffmpeg::{file_arg, run_ffmpeg};
use h264_testkit::fixtures::Fixture;

/// Sidecars (srt, vtt) by FFmpeg, ultrafast, one attempt, no readiness delays.
pub(crate) const FFMPEG_CAPTIONS: &str = r#"
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

/// `got` (SubRip cues) holds `want`'s texts in order, each starting within one frame.
fn same_cues(what: &str, got: &[(f64, f64, String)], want: &[ExpectedCue]) {
    let texts: Vec<&str> = got.iter().map(|c| c.2.as_str()).collect();
    let expected: Vec<&str> = want.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, expected, "{what}: text and order");
    for (g, w) in got.iter().zip(want) {
        let off = (g.0 - w.start_secs).abs();
        assert!(
            off <= tolerance(FPS),
            "{what}: {:?} starts {off:.3}s off",
            w.text
        );
    }
}

/// CC1 and CC3 on both fields of interlaced H.264, ATSC cc_count: the two-channel fixture.
pub(crate) fn two_channels() -> Captioning {
    Captioning {
        cc1: question_period_cues(),
        cc3: cc3_cues(),
        interlaced: true,
        atsc_cc_count: true,
        ..Captioning::default()
    }
}

#[test]
fn cc1_and_cc3_on_both_fields_survive_the_reencode_cue_for_cue() {
    // `veryfast` (the default preset) uses B-frames: the output's pictures, and their caption
    // bytes, are stored out of display order.
    let s = Setup::new("", &FFMPEG_CAPTIONS.replace("ultrafast", "veryfast"));
    let plain = captioned_with(&s.input, "cpac.ts", &two_channels());
    let fast = captioned_with(
        &s.input,
        "cpac-fast.ts",
        &Captioning {
            fast_frames: Some((60, 120)),
            ..two_channels()
        },
    );
    let out = s.run_once();
    assert!(out.status.success());
    for (name, fixture) in [("cpac.ts", &plain), ("cpac-fast.ts", &fast)] {
        let record = s.record(name).unwrap();
        assert_eq!(
            record.state,
            JobState::Succeeded,
            "{name}: {:?}",
            record.error
        );
        assert_eq!(
            record.mode.as_deref(),
            Some("encode"),
            "interlaced: re-encoded"
        );
        assert_eq!(record.caption_warning, None);
        let mp4 = s.output_of(name);
        same_cues(&format!("{name} CC1"), &field_cues(&mp4, 0), &fixture.cc1);
        same_cues(&format!("{name} CC3"), &field_cues(&mp4, 1), &fixture.cc3);
        let srt = std::fs::read_to_string(mp4.with_extension("srt")).unwrap();
        same_cues(&format!("{name}.srt"), &parse_srt(&srt), &fixture.cc1);
    }
}

/// The cause of issue 20's garbled captions, kept as a regression guard of the explanation:
/// FFmpeg's MP4 output defaults to a constant frame rate at the rate it guesses for the source,
/// so where the source's frames come faster it drops frames, and their caption bytes with them.
#[test]
fn ffmpeg_constant_frame_rate_output_drops_the_caption_bytes_of_faster_frames() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Captioning {
        fast_frames: Some((60, 120)),
        ..two_channels()
    };
    let fixture = captioned_with(dir.path(), "fast.ts", &spec);
    let out = dir.path().join("cfr.mp4");
    let mut args: Vec<std::ffi::OsString> = vec!["-v".into(), "error".into(), "-i".into()];
    args.push(file_arg(&fixture.path));
    for a in [
        "-map",
        "0:v:0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-vf",
        "bwdif=mode=send_frame:parity=auto:deint=all",
        "-f",
        "mp4",
    ] {
        args.push(a.into());
    }
    args.push(file_arg(&out));
    run_ffmpeg(args);
    let got: Vec<String> = field_cues(&out, 0).into_iter().map(|c| c.2).collect();
    assert_eq!(
        got[0], fixture.cc1[0].text,
        "before the fast frames: intact"
    );
    assert_ne!(
        got.get(1),
        Some(&fixture.cc1[1].text),
        "loaded during the fast frames: characters lost"
    );
}

#[test]
fn an_output_whose_captions_differ_fails_verification_with_both_texts() {
    // Frames 52..58 carry characters of the second caption; the filter drops them.
    let sections = FFMPEG_CAPTIONS.replace(
        "max_attempts = 1",
        "max_attempts = 1\nlocal_ffmpeg_args = [\"-vf\", \"select='not(between(n,52,58))'\"]",
    );
    let s = Setup::new("", &sections);
    let fixture = captioned_h264_ts(&s.input, "news.ts");
    assert_eq!(s.run_once().status.code(), Some(1));
    let record = s.record("news.ts").unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.stage.as_deref(), Some("verify"));
    let error = record.error.unwrap();
    assert!(
        error.contains("CC1 captions differ")
            && error.contains(&format!("the source says {:?}", fixture.cues[1].text))
            && error.contains("the output says"),
        "{error}"
    );
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
}

#[test]
fn without_require_passthrough_a_garbled_output_is_published_with_a_warning() {
    let sections = FFMPEG_CAPTIONS
        .replace(
            "max_attempts = 1",
            "max_attempts = 1\nlocal_ffmpeg_args = [\"-vf\", \"select='not(between(n,52,58))'\"]",
        )
        .replace(
            "tool = \"ffmpeg\"",
            "tool = \"ffmpeg\"\nrequire_passthrough = false",
        );
    let s = Setup::new("", &sections);
    let fixture = captioned_h264_ts(&s.input, "news.ts");
    let out = s.run_once();
    assert!(out.status.success());
    let record = s.record("news.ts").unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    let warning = record.caption_warning.expect("a warning in the journal");
    assert!(
        warning.contains("captions not kept") && warning.contains(&fixture.cues[1].text),
        "{warning}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("captions not kept"));
    let totals = Journal::open(&s.state).unwrap().totals().unwrap();
    assert_eq!(totals.captions_lost, 1);
}

#[test]
fn an_extractor_that_finds_nothing_while_the_source_has_captions_fails_the_job() {
    // An FFmpeg whose caption extraction finds nothing; everything else is the real FFmpeg.
    let s = Setup::new("", FFMPEG_CAPTIONS);
    let wrapper = s.dir.path().join("ffmpeg-no-subcc");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *subcc*) exit 0 ;; esac; done\n\
         exec ffmpeg \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text = text.replace(
        "preset = \"ultrafast\"",
        &format!("preset = \"ultrafast\"\nffmpeg = '{}'", wrapper.display()),
    );
    text.push_str("max_attempts = 2\nretry_backoff = \"100ms\"\n");
    std::fs::write(&s.config, text).unwrap();
    let fixture = captioned_h264_ts(&s.input, "news.ts");
    assert_eq!(s.run_once().status.code(), Some(1));
    let record = s.record("news.ts").unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.stage.as_deref(), Some("captions"));
    let error = record.error.unwrap();
    assert!(
        error.contains("the source has CC1 captions")
            && error.contains(&fixture.cues[0].text)
            && error.contains("ffmpeg found none")
            && error.contains("2 caption attempt"),
        "{error}"
    );
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
}

#[test]
fn captions_in_a_c608_track_are_kept_in_the_output_and_extracted() {
    let s = Setup::new("", FFMPEG_CAPTIONS);
    let fixture = captioned_c608_mp4(&s.input, "apple.mp4");
    assert!(
        !has_closed_captions(&fixture.path),
        "the fixture's video itself carries no captions"
    );
    assert!(s.run_once().status.success());
    let record = s.record("apple.mp4").unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    assert_eq!(record.captions.as_deref(), Some("srt,vtt (c608 track)"));
    assert_eq!(record.caption_warning, None);
    let mp4 = s.output_of("apple.mp4");
    let streams = h264_testkit::probe::probe(&mp4);
    assert_eq!(streams.video.unwrap().codec, "h264");
    assert!(h264_testkit::moov_before_mdat(&mp4));
    // The caption track, read back from the output with FFmpeg.
    let track = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file_arg(&mp4))
        .args(["-map", "0:s:0", "-c:s", "srt", "-f", "srt", "-"])
        .output()
        .unwrap();
    assert!(track.status.success(), "the output has no caption track");
    let want: Vec<ExpectedCue> = fixture
        .cues
        .iter()
        .map(|c| ExpectedCue {
            text: c.text.clone(),
            start_secs: c.start_secs,
            end_secs: c.end_secs,
        })
        .collect();
    same_cues(
        "output track",
        &parse_srt(&String::from_utf8_lossy(&track.stdout)),
        &want,
    );
    let srt = std::fs::read_to_string(mp4.with_extension("srt")).unwrap();
    same_cues("apple.srt", &parse_srt(&srt), &want);
    let vtt = std::fs::read_to_string(mp4.with_extension("vtt")).unwrap();
    same_cues("apple.vtt", &parse_vtt(&vtt), &want);
}

#[test]
fn a_c608_track_with_ccextractor_configured_gets_text_from_ffmpeg_and_bin_from_the_agent() {
    let s = Setup::new("", common::BASE);
    let program = h264_testkit::ccextractor::standin(s.dir.path(), Default::default());
    let mut text = std::fs::read_to_string(&s.config).unwrap();
    text.push_str(&format!(
        "\n[captions]\nformats = [\"srt\", \"bin\"]\ntool = \"ccextractor\"\nccextractor = '{}'\n",
        program.display()
    ));
    std::fs::write(&s.config, text).unwrap();
    let fixture = captioned_c608_mp4(&s.input, "apple.mp4");
    assert!(s.run_once().status.success());
    let record = s.record("apple.mp4").unwrap();
    assert_eq!(record.captions.as_deref(), Some("srt,bin (c608 track)"));
    let mp4 = s.output_of("apple.mp4");
    let srt = std::fs::read_to_string(mp4.with_extension("srt")).unwrap();
    let texts: Vec<String> = parse_srt(&srt).into_iter().map(|c| c.2).collect();
    let want: Vec<String> = fixture.cues.iter().map(|c| c.text.clone()).collect();
    assert_eq!(texts, want);
    let groups = h264_testkit::ccextractor::read_rcwt(&mp4.with_extension("bin"));
    let pairs = encode_608(&default_cues(), DEFAULT_FRAMES);
    let first = pairs.iter().position(|p| *p != PADDING).unwrap() as f64 / FPS;
    let got = groups[0].ms as f64 / 1000.0;
    assert!((got - first).abs() <= tolerance(FPS), "{got} vs {first}");
}

#[test]
fn a_caption_track_ffmpeg_cannot_read_is_reported_not_silently_dropped() {
    let s = Setup::new("", FFMPEG_CAPTIONS);
    let fixture = captioned_c608_mp4(&s.input, "c708.mp4");
    // A c708 sample entry (one byte edit): FFmpeg 5.1 lists the track but cannot read it.
    let bytes = std::fs::read(&fixture.path).unwrap();
    let at = bytes.windows(4).position(|w| w == b"c608").unwrap();
    let mut edited = bytes.clone();
    edited[at + 1] = b'7';
    std::fs::write(&fixture.path, edited).unwrap();
    let out = s.run_once();
    assert!(out.status.success());
    let record = s.record("c708.mp4").unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    let warning = record.caption_warning.expect("a warning");
    assert!(
        warning.contains("c708") && warning.contains("cannot read"),
        "{warning}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("captions not kept"));
    assert_eq!(
        Journal::open(&s.state)
            .unwrap()
            .totals()
            .unwrap()
            .captions_lost,
        1
    );
}

/// The in-process scan of a transport stream's first pictures, on real FFmpeg streams: plain
/// MPEG-2 and H.264 (x264's own SEI included) are cleared without the caption probe; the same
/// codecs with injected CEA-608 are left to the probe, which finds their captions.
#[test]
fn the_first_pictures_scan_clears_plain_streams_and_leaves_captioned_ones_to_the_probe() {
    use h264_agent::captions::scan::{first_pictures, Codec, Scan};
    let dir = tempfile::tempdir().unwrap();
    let scan = |path: &std::path::Path| {
        let info = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(h264_agent::probe::probe(
                std::path::Path::new("ffprobe"),
                path,
                std::time::Duration::from_secs(30),
                &tokio_util::sync::CancellationToken::new(),
            ))
            .unwrap();
        let video = info.video.unwrap();
        let layout = h264_agent::ts::layout_of(path).unwrap().unwrap();
        let codec = Codec::from_name(&video.codec).unwrap();
        first_pictures(path, layout, video.pid.unwrap(), codec).unwrap()
    };
    for plain in [Fixture::Mpeg2InterlacedTs.path(), Fixture::H264Ts.path()] {
        assert_eq!(scan(plain), Scan::NoCaptions, "{}", plain.display());
        assert!(!has_closed_captions(plain));
    }
    for kind in [CaptionedKind::Mpeg2Ts, CaptionedKind::H264Ts] {
        let captioned = kind.make(dir.path(), &format!("cc.{}", kind.extension()));
        assert!(
            matches!(scan(&captioned.path), Scan::Maybe(_)),
            "{kind:?}: {:?}",
            scan(&captioned.path)
        );
        assert!(has_closed_captions(&captioned.path), "{kind:?}");
    }
}
