//! CEA-608 caption fixtures: the encoder's bytes, and what the real FFmpeg finds in the files.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use h264_testkit::captions::{
    self, add_emulation_prevention, captioned, captioned_h264_mp4, captioned_h264_ts,
    captioned_mpeg2_ts, captioned_wtv, cc_data, default_cues, encode_608, extract_with_ffmpeg,
    h264_sei_nal, has_closed_captions, inject_h264_captions, inject_mpeg2_captions,
    movie_subcc_graph, mpeg2_user_data, odd_parity, parse_srt, parse_vtt, split_annex_b,
    summary_says_closed_captions, CaptionedFixture, CaptionedKind, Cue, ExpectedCue,
    DEFAULT_FRAMES, EDM, EOC, FPS, PADDING,
};
use h264_testkit::ffmpeg::{file_arg, run_ffmpeg};
use h264_testkit::probe::probe;

// ---------------------------------------------------------------------------------------------
// Bytes, without FFmpeg.

#[test]
fn odd_parity_sets_bit_7_when_the_count_is_even() {
    assert_eq!(odd_parity(0x00), 0x80);
    assert_eq!(odd_parity(0x14), 0x94);
    assert_eq!(odd_parity(0x20), 0x20);
    assert_eq!(odd_parity(0x2F), 0x2F);
    assert_eq!(odd_parity(0x2C), 0x2C);
    assert_eq!(odd_parity(b'A'), 0xC1);
    assert_eq!(odd_parity(b'H'), 0xC8);
    assert_eq!(
        odd_parity(0xC1),
        0xC1,
        "parity is recomputed from the 7 data bits"
    );
    for byte in 0..=0xFFu8 {
        assert_eq!(odd_parity(byte).count_ones() % 2, 1, "{byte:#04x}");
    }
}

fn cue(text: &str, start_frame: u32, end_frame: u32) -> Cue {
    Cue {
        text: text.to_owned(),
        start_frame,
        end_frame,
    }
}

fn with_parity(pair: [u8; 2]) -> [u8; 2] {
    [odd_parity(pair[0]), odd_parity(pair[1])]
}

#[test]
fn pop_on_cue_is_loaded_before_and_shown_at_its_start_frame() {
    let pairs = encode_608(&[cue("HELLO", 20, 30)], 40);
    assert_eq!(pairs.len(), 40);
    let expected_loading: Vec<[u8; 2]> = [
        [0x14, 0x20], // RCL
        [0x14, 0x20],
        [0x14, 0x2E], // ENM
        [0x14, 0x2E],
        [0x14, 0x60], // PAC row 15, column 0
        [0x14, 0x60],
        [b'H', b'E'],
        [b'L', b'L'],
        [b'O', 0x00],
    ]
    .into_iter()
    .map(with_parity)
    .collect();
    assert_eq!(&pairs[11..20], expected_loading.as_slice());
    assert_eq!(
        pairs[19],
        [0x4F, 0x80],
        "an odd character is followed by a null"
    );
    assert_eq!(pairs[20], with_parity(EOC));
    assert_eq!(pairs[21], with_parity(EOC));
    assert_eq!(pairs[20], [0x94, 0x2F]);
    assert_eq!(pairs[30], with_parity(EDM));
    assert_eq!(pairs[31], with_parity(EDM));
    assert_eq!(pairs[30], [0x94, 0x2C]);
    for (frame, pair) in pairs.iter().enumerate() {
        if !(11..22).contains(&frame) && !(30..32).contains(&frame) {
            assert_eq!(*pair, PADDING, "frame {frame} should be idle");
        }
        for byte in pair {
            assert_eq!(byte.count_ones() % 2, 1, "frame {frame}: {byte:#04x}");
        }
    }
}

#[test]
fn two_line_cue_uses_rows_14_and_15() {
    let pairs = encode_608(&[cue("AB\nCD", 12, 20)], 30);
    let loading: Vec<[u8; 2]> = [
        [0x14, 0x20],
        [0x14, 0x20],
        [0x14, 0x2E],
        [0x14, 0x2E],
        [0x14, 0x40], // row 14
        [0x14, 0x40],
        [b'A', b'B'],
        [0x14, 0x60], // row 15
        [0x14, 0x60],
        [b'C', b'D'],
    ]
    .into_iter()
    .map(with_parity)
    .collect();
    assert_eq!(&pairs[2..12], loading.as_slice());
}

#[test]
fn a_second_cue_loads_while_the_first_is_shown() {
    let pairs = encode_608(&[cue("ONE", 10, 20), cue("TWO", 22, 30)], 40);
    // EOC of cue 1 at 10 and 11, EDM at 20 and 21. Cue 2 needs 8 loading frames (RCL, ENM and
    // PAC twice, "TW", "O"): the free frames between 12 and 21, that is 12..=19.
    assert_eq!(pairs[20], with_parity(EDM));
    assert_eq!(pairs[21], with_parity(EDM));
    assert_eq!(pairs[22], with_parity(EOC));
    assert_eq!(pairs[19], with_parity([b'O', 0]));
    assert_eq!(pairs[18], with_parity([b'T', b'W']));
    assert_eq!(pairs[12], with_parity([0x14, 0x20]));
}

#[test]
fn default_cues_fit_the_default_clip() {
    let cues = default_cues();
    assert!(cues.len() >= 2);
    let pairs = encode_608(&cues, DEFAULT_FRAMES);
    assert_eq!(pairs.len(), DEFAULT_FRAMES as usize);
    let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
    let mut sorted = texts.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), texts.len(), "cues are distinct");
}

#[test]
#[should_panic(expected = "is not in the 608 basic set")]
fn characters_outside_the_shared_set_are_refused() {
    encode_608(&[cue("50*2", 20, 30)], 40);
}

#[test]
#[should_panic(expected = "is not in the 608 basic set")]
fn apostrophes_are_refused() {
    encode_608(&[cue("IT'S", 20, 30)], 40);
}

#[test]
#[should_panic(expected = "free frames before frame 5")]
fn a_cue_without_room_to_load_is_refused() {
    encode_608(&[cue("HELLO FROM H264CREATE", 5, 30)], 40);
}

#[test]
#[should_panic(expected = "starts before the previous cue's EDM")]
fn overlapping_cues_are_refused() {
    encode_608(&[cue("ONE", 10, 20), cue("TWO", 21, 30)], 40);
}

#[test]
#[should_panic(expected = "one or two lines")]
fn three_lines_are_refused() {
    encode_608(&[cue("A\nB\nC", 20, 30)], 40);
}

#[test]
fn cc_data_has_a_field_1_pair_and_field_2_padding() {
    assert_eq!(
        cc_data([0x94, 0x2F]),
        [0x42, 0xFF, 0xFC, 0x94, 0x2F, 0xFD, 0x80, 0x80, 0xFF]
    );
}

#[test]
fn h264_sei_is_registered_t35_atsc_user_data() {
    let nal = h264_sei_nal(&cc_data([0x94, 0x2F]));
    let expected = [
        0x06, // SEI
        0x04, // user_data_registered_itu_t_t35
        17,   // payload size
        0xB5, 0x00, 0x31, b'G', b'A', b'9', b'4', 0x03, // t35 + A/53
        0x42, 0xFF, 0xFC, 0x94, 0x2F, 0xFD, 0x80, 0x80, 0xFF, // cc_data
        0x80, // rbsp_trailing_bits
    ];
    assert_eq!(nal, expected);
}

#[test]
fn emulation_prevention_breaks_every_start_code_pattern() {
    assert_eq!(
        add_emulation_prevention(&[0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 4, 0, 0]),
        [0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 3, 0, 0, 4, 0, 0]
    );
    assert_eq!(add_emulation_prevention(&[1, 2, 3]), [1, 2, 3]);
    // The provider code 0x0031 and a null character pair produce no start code pattern.
    let nal = h264_sei_nal(&cc_data([0x80, 0x80]));
    assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 3));
}

#[test]
fn mpeg2_user_data_has_no_t35_bytes() {
    assert_eq!(
        mpeg2_user_data(&cc_data([0x80, 0x80])),
        [
            0x00, 0x00, 0x01, 0xB2, b'G', b'A', b'9', b'4', 0x03, 0x42, 0xFF, 0xFC, 0x80, 0x80,
            0xFD, 0x80, 0x80, 0xFF
        ]
    );
}

#[test]
fn h264_sei_goes_before_the_first_slice_of_each_picture() {
    let sps = [0x67, 0x64, 0x00, 0x0D];
    let pps = [0x68, 0xEE, 0x3C];
    let x264_sei = [0x06, 0x05, 0x01, 0xAA, 0x80];
    let idr_first = [0x65, 0x88, 0x84];
    let idr_second = [0x65, 0x40, 0x11]; // first_mb_in_slice != 0
    let p_first = [0x41, 0x9A, 0x02];
    let mut stream = Vec::new();
    for (start_code, nal) in [
        (&[0u8, 0, 0, 1][..], &sps[..]),
        (&[0, 0, 1], &pps),
        (&[0, 0, 1], &x264_sei),
        (&[0, 0, 1], &idr_first),
        (&[0, 0, 1], &idr_second),
        (&[0, 0, 0, 1], &p_first),
    ] {
        stream.extend_from_slice(start_code);
        stream.extend_from_slice(nal);
    }
    stream.extend_from_slice(&[0, 0]); // trailing zero bytes
    let pairs = [PADDING, with_parity(EOC)];
    let out = inject_h264_captions(&stream, &pairs);
    let nals = split_annex_b(&out);
    let sei0 = h264_sei_nal(&cc_data(PADDING));
    let sei1 = h264_sei_nal(&cc_data(with_parity(EOC)));
    let expected: Vec<&[u8]> = vec![
        &sps,
        &pps,
        &x264_sei,
        &sei0,
        &idr_first,
        &idr_second,
        &sei1,
        &p_first,
    ];
    assert_eq!(nals, expected);
}

#[test]
#[should_panic(expected = "has 2 pictures, captions were made for 3")]
fn h264_picture_count_must_match() {
    let stream = [0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x41, 0x9A];
    inject_h264_captions(&stream, &[PADDING; 3]);
}

#[test]
fn mpeg2_user_data_goes_after_the_picture_extensions() {
    let sequence = [0, 0, 1, 0xB3, 0x14, 0x00, 0xF0];
    let gop = [0, 0, 1, 0xB8, 0x00, 0x08];
    let picture = [0, 0, 1, 0x00, 0x00, 0x0F];
    let extension = [0, 0, 1, 0xB5, 0x8F, 0xFF];
    let slice1 = [0, 0, 1, 0x01, 0x12, 0x34];
    let slice2 = [0, 0, 1, 0x02, 0x56];
    let mut stream = Vec::new();
    for part in [
        &sequence[..],
        &gop,
        &picture,
        &extension,
        &slice1,
        &slice2,
        &picture,
        &extension,
        &slice1,
    ] {
        stream.extend_from_slice(part);
    }
    let pairs = [PADDING, with_parity(EDM)];
    let out = inject_mpeg2_captions(&stream, &pairs);
    let mut expected = Vec::new();
    for part in [
        &sequence[..],
        &gop,
        &picture,
        &extension,
        &mpeg2_user_data(&cc_data(PADDING)),
        &slice1,
        &slice2,
        &picture,
        &extension,
        &mpeg2_user_data(&cc_data(with_parity(EDM))),
        &slice1,
    ] {
        expected.extend_from_slice(part);
    }
    assert_eq!(out, expected);
}

// ---------------------------------------------------------------------------------------------
// Subtitle files.

#[test]
fn srt_as_ffmpeg_writes_it_from_608() {
    let srt = "1\r\n00:00:00,801 --> 00:00:02,002\r\n<font face=\"Monospace\">{\\an7}HELLO FROM \
               H264CREATE</font>\r\n\r\n2\r\n00:00:03,604 --> 00:00:04,805\r\n<font \
               face=\"Monospace\">{\\an7}THIRD CUE, TWO LINES\r\nSTILL IN ORDER</font>\r\n\r\n";
    assert_eq!(
        parse_srt(srt),
        [
            (0.801, 2.002, "HELLO FROM H264CREATE".to_owned()),
            (
                3.604,
                4.805,
                "THIRD CUE, TWO LINES\nSTILL IN ORDER".to_owned()
            ),
        ]
    );
}

#[test]
fn srt_with_hours_and_italics() {
    let srt = "7\n01:02:03,450 --> 01:02:04,000\n<i>A</i> &amp; B\n";
    assert_eq!(parse_srt(srt), [(3723.45, 3724.0, "A &amp; B".to_owned())]);
}

#[test]
fn vtt_with_header_notes_identifiers_and_settings() {
    let vtt = "\u{feff}WEBVTT\n\nNOTE made by a test\n\nSTYLE\n::cue { color: white }\n\ncue-1\n00:00.801 --> \
               00:02.002 align:start position:10%\n<c.yellow>HELLO</c> &lt;3 &amp; more\n\n01:00:01.500 --> \
               01:00:02.000\nTWO\nLINES\n";
    assert_eq!(
        parse_vtt(vtt),
        [
            (0.801, 2.002, "HELLO <3 & more".to_owned()),
            (3601.5, 3602.0, "TWO\nLINES".to_owned()),
        ]
    );
}

#[test]
fn movie_graph_quotes_the_file_name_twice() {
    // Quoted for the filter's option parser ('file:/v/a.ts'), then for the graph parser.
    assert_eq!(
        movie_subcc_graph(Path::new("/v/a.ts")),
        r"movie=''\''file:/v/a.ts'\'''[out0+subcc]"
    );
    assert_eq!(captions::quote_filter("it's"), r"'it'\''s'");
}

// ---------------------------------------------------------------------------------------------
// The fixtures, checked with the real FFmpeg.

/// SRT and VTT times are whole milliseconds.
const MS: f64 = 0.0015;

/// Checks that `found` holds exactly the `expected` texts, in order, each starting (and ending)
/// within `frames` frames of its injected time.
fn assert_cues(found: &[(f64, f64, String)], expected: &[ExpectedCue], fps: f64, frames: f64) {
    let texts: Vec<&str> = found.iter().map(|c| c.2.as_str()).collect();
    let expected_texts: Vec<&str> = expected.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, expected_texts, "caption texts; found {found:?}");
    let tolerance = frames / fps + MS;
    for ((start, end, text), want) in found.iter().zip(expected) {
        assert!(
            (start - want.start_secs).abs() <= tolerance,
            "{text:?} starts at {start}, injected at {} (± {tolerance})",
            want.start_secs
        );
        assert!(
            (end - want.end_secs).abs() <= tolerance,
            "{text:?} ends at {end}, injected at {} (± {tolerance})",
            want.end_secs
        );
    }
}

/// Extracts `video`'s captions to SRT and VTT next to it and checks both.
fn assert_extracts(video: &Path, expected: &[ExpectedCue], fps: f64, frames: f64) {
    let dir = video.parent().unwrap();
    let stem = video.file_name().unwrap().to_string_lossy().into_owned();
    let srt = dir.join(format!("{stem}.srt"));
    extract_with_ffmpeg(video, &srt);
    let found = parse_srt(&fs::read_to_string(&srt).unwrap());
    assert_cues(&found, expected, fps, frames);
    let vtt = dir.join(format!("{stem}.vtt"));
    extract_with_ffmpeg(video, &vtt);
    let found = parse_vtt(&fs::read_to_string(&vtt).unwrap());
    assert_cues(&found, expected, fps, frames);
}

fn check_fixture(fixture: &CaptionedFixture, kind: CaptionedKind, format: &str) {
    assert!(fixture.path.is_file());
    assert_eq!(fixture.fps, FPS);
    assert_eq!(fixture.cues, captions::expected_cues(&default_cues(), FPS));
    let info = probe(&fixture.path);
    assert_eq!(info.format_name, format);
    let video = info.video.as_ref().expect("a video stream");
    assert_eq!(video.codec, kind.video_codec());
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(info.audio.len(), 1, "{info:?}");
    let secs = f64::from(DEFAULT_FRAMES) / FPS;
    assert!((info.duration - secs).abs() < 0.3, "{info:?}");
    assert!(
        has_closed_captions(&fixture.path),
        "ffprobe closed_captions for {}",
        fixture.path.display()
    );
    assert!(summary_says_closed_captions(&fixture.path));
    assert_extracts(&fixture.path, &fixture.cues, fixture.fps, 1.0);
}

#[test]
fn h264_ts_fixture_has_its_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "h264 cc.ts");
    check_fixture(&fixture, CaptionedKind::H264Ts, "mpegts");
    let info = probe(&fixture.path);
    assert_eq!(info.video.unwrap().profile.as_deref(), Some("High"));
    assert_eq!(info.audio[0].codec, "aac");
}

#[test]
fn mpeg2_ts_fixture_has_its_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_mpeg2_ts(dir.path(), "mpeg2 cc.ts");
    check_fixture(&fixture, CaptionedKind::Mpeg2Ts, "mpegts");
    assert_eq!(probe(&fixture.path).audio[0].codec, "ac3");
}

#[test]
fn wtv_fixture_has_its_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_wtv(dir.path(), "cc.wtv");
    check_fixture(&fixture, CaptionedKind::Wtv, "wtv");
    let info = probe(&fixture.path);
    assert_eq!(info.audio[0].codec, "mp2");
    assert_eq!(info.stream_count, 2, "no separate caption stream: {info:?}");
}

#[test]
fn h264_mp4_fixture_has_its_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_mp4(dir.path(), "cc.mp4");
    check_fixture(&fixture, CaptionedKind::H264Mp4, "mov,mp4,m4a,3gp,3g2,mj2");
}

#[test]
fn custom_cues_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let cues = [
        cue("A", 20, 25),
        cue("AT 5 O.CLOCK: \"NEWS\"!", 45, 70),
        cue("(1/2) #8 & $9 @ 100% = ?", 100, 118),
    ];
    let fixture = captioned(CaptionedKind::H264Ts, dir.path(), "custom.ts", &cues, 120);
    assert_eq!(fixture.cues.len(), 3);
    assert_extracts(&fixture.path, &fixture.cues, fixture.fps, 1.0);
}

#[test]
fn video_without_captions_reports_none() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.ts");
    run_ffmpeg(
        args(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30000/1001",
            "-frames:v",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "mpegts",
        ])
        .into_iter()
        .chain([file_arg(&plain)]),
    );
    assert!(!has_closed_captions(&plain));
    assert!(!summary_says_closed_captions(&plain));
}

#[test]
fn extraction_handles_awkward_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "h264.ts");
    let odd = dir.path().join("-it's: [a,b]; c=d \\ e.ts");
    fs::copy(&fixture.path, &odd).unwrap();
    assert!(has_closed_captions(&odd));
    assert_extracts(&odd, &fixture.cues, fixture.fps, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Converting a captioned file as the agent does.

fn args(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// `ffmpeg -i SRC -map 0:v:0 -map 0:a? VIDEO_ARGS -c:a aac -movflags +faststart -f mp4 OUT`.
fn convert(src: &Path, name: &str, video_args: &[&str]) -> PathBuf {
    let out = src.parent().unwrap().join(name);
    let mut all = args(&["-i"]);
    all.push(file_arg(src));
    all.extend(args(&["-map", "0:v:0", "-map", "0:a?"]));
    all.extend(args(video_args));
    all.extend(args(&["-c:a", "aac", "-b:a", "128k"]));
    all.extend(args(&["-movflags", "+faststart", "-f", "mp4"]));
    all.push(file_arg(&out));
    run_ffmpeg(all);
    out
}

const LIBX264: [&str; 10] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-crf",
    "23",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
];

/// The deinterlacer the agent uses: one frame out for each frame in.
const BWDIF_SEND_FRAME: [&str; 2] = ["-vf", "bwdif=mode=send_frame:parity=auto:deint=all"];

/// Re-encoding to MP4 shifts the video by one frame: the audio of the TS fixtures starts 21 ms
/// (H.264 with AAC) or 39 ms (MPEG-2 with AC-3) before the video, and FFmpeg fills the gap at
/// the start of the constant-rate MP4 video track by repeating the first frame (observed with
/// FFmpeg 5.1: every cue 33 ms late).
const REENCODE_SHIFT_FRAMES: f64 = 1.0;

#[test]
fn libx264_reencode_keeps_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "src.ts");
    let out = convert(&fixture.path, "out.mp4", &LIBX264);
    assert!(has_closed_captions(&out));
    assert_extracts(&out, &fixture.cues, fixture.fps, REENCODE_SHIFT_FRAMES);
}

#[test]
fn libx264_reencode_through_bwdif_keeps_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "src.ts");
    let mut video = LIBX264.to_vec();
    video.extend(BWDIF_SEND_FRAME);
    let out = convert(&fixture.path, "out.mp4", &video);
    assert!(has_closed_captions(&out));
    assert_extracts(&out, &fixture.cues, fixture.fps, REENCODE_SHIFT_FRAMES);
}

#[test]
fn mpeg2_reencode_through_bwdif_keeps_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_mpeg2_ts(dir.path(), "src.ts");
    let mut video = LIBX264.to_vec();
    video.extend(BWDIF_SEND_FRAME);
    let out = convert(&fixture.path, "out.mp4", &video);
    assert!(has_closed_captions(&out));
    assert_extracts(&out, &fixture.cues, fixture.fps, REENCODE_SHIFT_FRAMES);
}

#[test]
fn remux_to_mp4_keeps_captions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "src.ts");
    let out = convert(&fixture.path, "out.mp4", &["-c:v", "copy"]);
    assert!(has_closed_captions(&out));
    assert_extracts(&out, &fixture.cues, fixture.fps, 1.0);
}

/// `bwdif` in its default mode (`send_field`) outputs two frames per input frame, and each
/// carries the input frame's caption data: libx264 writes every 608 pair twice, and FFmpeg's
/// decoder, which drops only a repeated *control code*, then shows every character pair twice.
/// The agent uses `mode=send_frame`; this pins the reason.
#[test]
fn bwdif_send_field_doubles_caption_characters() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = captioned_h264_ts(dir.path(), "src.ts");
    let mut video = LIBX264.to_vec();
    video.extend(["-vf", "bwdif"]);
    let out = convert(&fixture.path, "out.mp4", &video);
    let srt = dir.path().join("out.srt");
    extract_with_ffmpeg(&out, &srt);
    let found = parse_srt(&fs::read_to_string(&srt).unwrap());
    assert_eq!(found.len(), fixture.cues.len(), "{found:?}");
    assert!(
        found[0].2.starts_with("HEHELLLLO"),
        "expected doubled character pairs, found {found:?}"
    );
}
