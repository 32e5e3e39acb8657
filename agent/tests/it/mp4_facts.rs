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
