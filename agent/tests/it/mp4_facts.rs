//! The in-process MP4 reader ([`h264_agent::mp4`]) against ffprobe, on real outputs of the
//! agent's own FFmpeg runs: every figure verification takes from it (codecs, sizes, field
//! order, the video's and the audio's durations, the order of `moov` and `mdat`) must be the
//! one ffprobe gives for the same file, since verification no longer starts ffprobe for them.

use std::path::Path;
use std::time::Duration;

use crate::common;

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_testkit::captions::captioned_c608_mp4;
use h264_testkit::fixtures::Fixture;

/// How far the reader's durations may be from ffprobe's: none but float printing.
const SAME: f64 = 1e-5;

/// Asserts that the boxes read in process say what ffprobe says about `mp4`.
pub fn assert_agrees_with_ffprobe(mp4: &Path) {
    let facts = h264_agent::mp4::read(mp4).unwrap_or_else(|e| panic!("{}: {e}", mp4.display()));
    let ours = facts.media_info();
    let ffprobe = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(h264_agent::probe::probe(
            Path::new("ffprobe"),
            mp4,
            Duration::from_secs(30),
            &tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap_or_else(|e| panic!("ffprobe on {}: {e}", mp4.display()));
    let name = mp4.display();
    assert_eq!(ours.format_name, ffprobe.format_name, "{name}");
    assert!(
        (ours.duration - ffprobe.duration).abs() < SAME,
        "{name}: movie {} vs {}",
        ours.duration,
        ffprobe.duration
    );
    let (v, fv) = (ours.video.unwrap(), ffprobe.video.unwrap());
    assert_eq!(
        (&v.codec, &v.profile, v.width, v.height, v.index),
        (&fv.codec, &fv.profile, fv.width, fv.height, fv.index),
        "{name}"
    );
    assert_eq!(
        v.is_interlaced(),
        fv.is_interlaced(),
        "{name}: {v:?} {fv:?}"
    );
    let (d, fd) = (v.duration.unwrap(), fv.duration.unwrap());
    assert!((d - fd).abs() < SAME, "{name}: video {d} vs ffprobe {fd}");
    assert_eq!(ours.audio.len(), ffprobe.audio.len(), "{name}");
    for (a, fa) in ours.audio.iter().zip(&ffprobe.audio) {
        assert_eq!((&a.codec, a.index), (&fa.codec, fa.index), "{name}");
        let (d, fd) = (a.duration.unwrap(), fa.duration.unwrap());
        assert!((d - fd).abs() < SAME, "{name}: audio {d} vs ffprobe {fd}");
    }
    assert_eq!(ours.other_streams, ffprobe.other_streams, "{name}");
    assert_eq!(
        facts.moov_first,
        h264_testkit::probe::moov_before_mdat(mp4),
        "{name}"
    );
    let frames = facts.tracks.iter().find(|t| t.is_video()).unwrap().samples;
    assert!(frames > 0, "{name}: no video samples");
}

/// libx264 `veryfast` (B-frames: composition offsets and a video edit list), AAC (its priming
/// cut by an edit list), a deinterlaced MPEG-2, a remuxed H.264, and a QuickTime movie with a
/// `c608` caption track (`mov` muxer: a version 1 sound description, `esds` inside `wave`).
#[test]
fn the_boxes_say_what_ffprobe_says_of_the_agents_outputs() {
    let s = Setup::new(
        "",
        &format!(
            "{}\n[captions]\nformats = []\n",
            BASE.replace("\"ultrafast\"", "\"veryfast\"")
        ),
    );
    let names = ["news.ts", "sport.ts", "clip.mp4"];
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, names[0]);
    Fixture::H264Ts.copy_to(&s.input, names[1]);
    Fixture::H264Mp4.copy_to(&s.input, names[2]);
    captioned_c608_mp4(&s.input, "apple.mp4");
    let out = s.run_once();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("were not read"),
        "every output's boxes were read in process: {log}"
    );
    for name in names.iter().chain(&["apple.mp4"]) {
        let record = s.record(name).unwrap();
        assert_eq!(
            record.state,
            JobState::Succeeded,
            "{name}: {:?}",
            record.error
        );
        assert_agrees_with_ffprobe(&s.output_of(name));
    }
}

/// Asserts that the caption bytes read from `mp4` in process (`captions::from_mp4`) are what
/// FFmpeg's stream copy and ffprobe's packet list give (`captions::read::h264_frames`), frame
/// for frame, and that the first pictures' verdict is ffprobe's `closed_captions`. Returns how
/// many frames carry captions.
fn same_captions_as_ffmpeg(mp4: &Path) -> usize {
    use h264_agent::captions::{from_mp4, read};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (ffmpeg, ffprobe) = (Path::new("ffmpeg"), Path::new("ffprobe"));
    let limit = Duration::from_secs(60);
    let name = mp4.display();
    let (_, start) = rt
        .block_on(read::tracks(ffprobe, mp4, limit, &cancel))
        .unwrap();
    let want = rt
        .block_on(read::h264_frames(
            ffmpeg, ffprobe, mp4, start, limit, &cancel,
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = from_mp4::frames(mp4, &|| false).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got.len(), want.len(), "{name}: frames with captions");
    for (g, w) in got.iter().zip(&want) {
        // ffprobe prints six decimals.
        assert!(
            (g.time - w.time).abs() < 2e-6,
            "{name}: {g:?} against {w:?}"
        );
        assert_eq!(g.triples, w.triples, "{name}: at {}", w.time);
    }
    let probed = rt
        .block_on(h264_agent::probe::has_closed_captions(
            ffprobe, mp4, limit, &cancel,
        ))
        .unwrap();
    let frames = h264_agent::probe::CAPTION_PROBE_FRAMES as usize;
    assert_eq!(
        from_mp4::has_captions(mp4, frames).unwrap(),
        probed,
        "{name}: closed captions in the first pictures"
    );
    want.len()
}

/// Re-encoded with B-frames (composition offsets, edit lists), remuxed, interlaced (MBAFF) with
/// CC1 and CC3, without captions, and a QuickTime movie whose captions are in a `c608` track.
#[test]
fn the_captions_of_the_agents_outputs_read_in_process_are_ffmpegs() {
    use h264_testkit::captions::{captioned_with, CaptionedKind};
    let s = Setup::new(
        "",
        &format!(
            "{}\n[captions]\nformats = []\n",
            BASE.replace("\"ultrafast\"", "\"veryfast\"")
        ),
    );
    CaptionedKind::Mpeg2Ts.make(&s.input, "mpeg2.ts");
    CaptionedKind::H264Ts.make(&s.input, "h264.ts");
    captioned_with(&s.input, "two.ts", &crate::captions::two_channels());
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "plain.ts");
    captioned_c608_mp4(&s.input, "apple.mp4");
    let out = s.run_once();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    for (name, captioned) in [
        ("mpeg2.ts", true),
        ("h264.ts", true),
        ("two.ts", true),
        ("plain.ts", false),
        ("apple.mp4", false),
    ] {
        let record = s.record(name).unwrap();
        assert_eq!(
            record.state,
            JobState::Succeeded,
            "{name}: {:?}\n{log}",
            record.error
        );
        let frames = same_captions_as_ffmpeg(&s.output_of(name));
        assert_eq!(
            frames > 0,
            captioned,
            "{name}: {frames} frames with captions"
        );
    }
    hostile_mp4s_are_refused_with_a_reason(&s.output_of("mpeg2.ts"));
}

/// Damaged copies of a good MP4 (`moov` first): cut short, a NAL unit's length beyond its
/// sample, garbage. The reader refuses each with a reason (the agent then asks FFmpeg), never
/// panics or reads past the file.
fn hostile_mp4s_are_refused_with_a_reason(good: &Path) {
    use h264_agent::captions::from_mp4;
    let bytes = std::fs::read(good).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.mp4");
    let refused = |data: &[u8]| -> String {
        std::fs::write(&path, data).unwrap();
        let frames = from_mp4::frames(&path, &|| false);
        let first = from_mp4::has_captions(&path, 60);
        match (frames, first) {
            (Err(a), Err(_)) => a.0,
            other => panic!("not refused: {other:?}"),
        }
    };
    let why = refused(&bytes[..bytes.len() * 3 / 4]);
    assert!(why.contains("past the end"), "{why}");
    // The video track's first chunk moved to the last bytes of the file.
    let stco = bytes.windows(4).position(|w| w == b"stco").unwrap();
    let mut moved = bytes.clone();
    let near_end = (bytes.len() - 10) as u32;
    moved[stco + 12..stco + 16].copy_from_slice(&near_end.to_be_bytes());
    let why = refused(&moved);
    assert!(why.contains("past the file"), "{why}");
    let video = h264_agent::mp4::video_samples(good).unwrap();
    let first = video.samples[0].offset as usize;
    let mut long = bytes.clone();
    long[first..first + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let why = refused(&long);
    assert!(why.contains("does not fit its sample"), "{why}");
    let why = refused(b"not an mp4 at all, just text");
    assert!(!why.is_empty());
    let stopped = from_mp4::frames(good, &|| true).unwrap_err();
    assert_eq!(stopped.0, "stopped");
}
