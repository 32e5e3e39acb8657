//! Media with real CEA-608 closed captions inside the video bitstream, made at test time.
//!
//! Broadcast recordings carry their captions inside the video (ATSC A/53), not as a separate
//! stream. This module writes known caption text into freshly encoded video so tests can check
//! that captions survive (or are extracted) exactly.
//!
//! # Layers, from the inside out
//!
//! **CEA-608 byte pairs.** Field 1 of the picture carries one pair of bytes per frame. Each byte
//! has 7 data bits and bit 7 set so that the byte has *odd* parity ([`odd_parity`]); `0x80 0x80`
//! is padding ("nothing to say"). A pair is either two characters of the 608 basic set (mostly
//! ASCII), or a control code (first byte `0x10..=0x1F`). [`encode_608`] writes **pop-on**
//! captions on channel 1, as most pre-recorded broadcast captions are:
//!
//! | pair        | name | effect                                                        |
//! |-------------|------|---------------------------------------------------------------|
//! | `0x14 0x20` | RCL  | resume caption loading: pop-on mode, write off screen         |
//! | `0x14 0x2E` | ENM  | erase non-displayed memory                                    |
//! | `0x14 0x40` | PAC  | preamble address code: row 14, column 0, white                |
//! | `0x14 0x60` | PAC  | preamble address code: row 15, column 0, white                |
//! | characters  |      | two per pair; an odd one is followed by `0x00` (sent `0x80`)  |
//! | `0x14 0x2F` | EOC  | end of caption: swap memories, the caption appears            |
//! | `0x14 0x2C` | EDM  | erase displayed memory: the caption disappears                |
//!
//! Control codes are sent twice in consecutive frames, as broadcasters do because a pair may be
//! lost; a decoder ignores a control code identical to the one just before it (FFmpeg's
//! `ccaption_dec` remembers the last pair; padding does not reset that memory, a character pair
//! does). RCL, ENM, the PACs and the characters go into the frames *before* the cue's
//! `start_frame`, EOC is sent *at* `start_frame` (and repeated at `start_frame + 1`), and EDM at
//! `end_frame` (repeated at `end_frame + 1`).
//!
//! **`cc_data`** ([`cc_data`]): `0x40 | cc_count` (process_cc_data_flag), `0xFF` (em_data), then
//! `cc_count` triples, then the marker `0xFF`. Each frame here has `cc_count` = 2: `0xFC b1 b2`
//! (marker bits, cc_valid = 1, cc_type = 0: field 1) and the field-2 padding `0xFD 0x80 0x80`.
//!
//! **ATSC A/53 user data** ([`a53_user_data`]): the user identifier `GA94`, the
//! user_data_type_code `0x03`, then `cc_data`.
//!
//! - **H.264** ([`h264_sei_nal`]): an SEI NAL unit (type 6) with one message of payload type 4
//!   (`user_data_registered_itu_t_t35`): itu_t_t35_country_code `0xB5`, itu_t_t35_provider_code
//!   `0x0031`, then the A/53 user data. The SEI's RBSP ends with the rbsp_trailing_bits `0x80`
//!   and gets emulation-prevention bytes ([`add_emulation_prevention`]). It goes before the
//!   first slice of each access unit, after any AUD, SPS, PPS or other SEI
//!   ([`inject_h264_captions`]).
//! - **MPEG-2** ([`mpeg2_user_data`]): a user data start code `0x000001B2` followed by the A/53
//!   user data, without the T.35 country and provider bytes, after each picture header and its
//!   extensions and before the picture's first slice ([`inject_mpeg2_captions`]).
//!
//! The videos are encoded without B-frames, so decode order equals display order and the n-th
//! coded picture is the n-th frame shown: the caption bytes of frame n go into the n-th picture.
//!
//! # What FFmpeg 5.1 does with them (observed)
//!
//! - Its 608 decoder (`cc_dec`, used by `movie=FILE[out0+subcc]`) emits a pop-on caption when
//!   the screen changes again: the cue starts at the timestamp of the frame carrying EOC and
//!   ends at the frame carrying EDM (or the next EOC). Times are counted from the first video
//!   frame, also in TS and WTV files whose timestamps start elsewhere; the SRT and VTT times
//!   match `frame / fps` to the millisecond.
//! - It drops a control code identical to the previous pair it processed, so doubled codes act
//!   once; character pairs are never dropped, so when frames carrying caption data are
//!   duplicated each character pair shows twice. `bwdif` in its default mode `send_field` does
//!   that: both output frames of an input frame carry its caption data, and libx264 writes it
//!   into both (`bwdif=mode=send_frame` keeps the captions intact).
//! - The SRT it writes wraps each cue in `<font face="Monospace">{\an7}...</font>`; the VTT is
//!   plain text. Both put the two rows of a two-line caption on two lines.
//! - `ffprobe -show_streams` prints `closed_captions=0` unless it decodes frames (see
//!   [`has_closed_captions`]); the stream summary of `ffprobe`/`ffmpeg -i` says "Closed
//!   Captions".
//!
//! # Fixtures
//!
//! [`captioned_h264_ts`], [`captioned_mpeg2_ts`], [`captioned_wtv`] and [`captioned_h264_mp4`]
//! make a [`DEFAULT_FRAMES`]-frame clip at [`FRAME_RATE`] carrying [`default_cues`], with a
//! `sine` tone as audio; [`captioned`] takes any cues. FFmpeg reports "Closed Captions" on the
//! video stream of each ([`has_closed_captions`]) and extracts the cues with
//! [`extract_with_ffmpeg`]; [`parse_srt`] and [`parse_vtt`] read the result back.
//!
//! [`captioned_with`] makes H.264 in MPEG-TS with captions on both fields: CC1 on field 1 and CC3
//! on field 2 (whose miscellaneous control codes start with `0x15`, [`encode_608_cc3`]),
//! optionally interlaced, with ATSC's 20 `cc_data` triples a frame, and with a stretch of frames
//! at twice the frame rate; [`field_cues`] extracts either field with FFmpeg
//! (`-data_field`). [`captioned_c608_mp4`] makes an MP4 whose captions are in a separate `c608`
//! track instead of the video.
//!
//! ```no_run
//! use h264_testkit::captions::{captioned_h264_ts, extract_with_ffmpeg, parse_srt};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fixture = captioned_h264_ts(dir.path(), "news.ts");
//! let srt = dir.path().join("news.srt");
//! extract_with_ffmpeg(&fixture.path, &srt);
//! let cues = parse_srt(&std::fs::read_to_string(&srt).unwrap());
//! assert_eq!(cues[0].2, fixture.cues[0].text);
//! ```

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::ffmpeg::{file_arg, require_ffmpeg, run_ffmpeg};

/// Frame rate of the captioned fixtures, as FFmpeg reads it: 29.97 frames/s.
pub const FRAME_RATE: &str = "30000/1001";

/// [`FRAME_RATE`] as a number.
pub const FPS: f64 = 30000.0 / 1001.0;

/// Number of frames of the captioned fixtures: about 5 s.
pub const DEFAULT_FRAMES: u32 = 150;

/// Picture size of the captioned fixtures.
pub const SIZE: &str = "320x240";

/// Width of a caption row, in characters.
pub const MAX_LINE_CHARS: usize = 32;

/// Resume caption loading (channel 1), without parity.
pub const RCL: [u8; 2] = [0x14, 0x20];
/// Erase non-displayed memory (channel 1), without parity.
pub const ENM: [u8; 2] = [0x14, 0x2E];
/// End of caption (channel 1), without parity.
pub const EOC: [u8; 2] = [0x14, 0x2F];
/// Erase displayed memory (channel 1), without parity.
pub const EDM: [u8; 2] = [0x14, 0x2C];
/// Preamble address code: row 14, column 0, white (channel 1), without parity.
pub const PAC_ROW_14: [u8; 2] = [0x14, 0x40];
/// Preamble address code: row 15, column 0, white (channel 1), without parity.
pub const PAC_ROW_15: [u8; 2] = [0x14, 0x60];
/// An idle field-1 pair: two nulls with odd parity.
pub const PADDING: [u8; 2] = [0x80, 0x80];

/// One pop-on caption to write into the video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    /// One line, or two separated by `\n`; each at most [`MAX_LINE_CHARS`] characters of plain
    /// ASCII that the 608 basic character set shares ([`is_608_ascii`]: not `' * \ ^ _ ` { | }
    /// ~`).
    pub text: String,
    /// The frame at which the caption appears (EOC is sent in this frame).
    pub start_frame: u32,
    /// The frame at which it disappears (EDM is sent in this frame).
    pub end_frame: u32,
}

/// A cue as a decoder should find it, in seconds from the first video frame.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedCue {
    /// The caption's lines joined by `\n`.
    pub text: String,
    /// `start_frame / fps`.
    pub start_secs: f64,
    /// `end_frame / fps`.
    pub end_secs: f64,
}

/// A file made by one of the `captioned_*` functions, and what is in it.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptionedFixture {
    /// The file.
    pub path: PathBuf,
    /// The captions written into its video, in order.
    pub cues: Vec<ExpectedCue>,
    /// Its frame rate in frames per second.
    pub fps: f64,
}

/// The kinds of captioned fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptionedKind {
    /// H.264 (captions in SEI) with AAC, in MPEG-TS.
    H264Ts,
    /// MPEG-2 video (captions in picture user data) with AC-3, in MPEG-TS.
    Mpeg2Ts,
    /// MPEG-2 video (captions in picture user data) with MP2, in WTV.
    Wtv,
    /// H.264 (captions in SEI) with AAC, in MP4.
    H264Mp4,
}

impl CaptionedKind {
    /// Every kind.
    pub const ALL: [CaptionedKind; 4] = [
        CaptionedKind::H264Ts,
        CaptionedKind::Mpeg2Ts,
        CaptionedKind::Wtv,
        CaptionedKind::H264Mp4,
    ];

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            CaptionedKind::H264Ts | CaptionedKind::Mpeg2Ts => "ts",
            CaptionedKind::Wtv => "wtv",
            CaptionedKind::H264Mp4 => "mp4",
        }
    }

    /// The video codec as ffprobe names it.
    pub fn video_codec(self) -> &'static str {
        match self {
            CaptionedKind::H264Ts | CaptionedKind::H264Mp4 => "h264",
            CaptionedKind::Mpeg2Ts | CaptionedKind::Wtv => "mpeg2video",
        }
    }

    /// Makes this kind of fixture with [`default_cues`] and [`DEFAULT_FRAMES`].
    pub fn make(self, dir: &Path, name: &str) -> CaptionedFixture {
        captioned(self, dir, name, &default_cues(), DEFAULT_FRAMES)
    }
}

/// The cues of the captioned fixtures: three distinct captions, in order, each shown 1.2 s
/// (36 frames); the third has two lines.
pub fn default_cues() -> Vec<Cue> {
    let cue = |text: &str, start_frame, end_frame| Cue {
        text: text.to_owned(),
        start_frame,
        end_frame,
    };
    vec![
        cue("HELLO FROM H264CREATE", 24, 60),
        cue("SECOND CAPTION LINE", 66, 102),
        cue("THIRD CUE, TWO LINES\nSTILL IN ORDER", 108, 144),
    ]
}

/// H.264 with captions in SEI, and AAC audio, muxed as MPEG-TS.
pub fn captioned_h264_ts(dir: &Path, name: &str) -> CaptionedFixture {
    CaptionedKind::H264Ts.make(dir, name)
}

/// MPEG-2 video with captions in picture user data, and AC-3 audio, muxed as MPEG-TS (as ATSC
/// broadcasts are).
pub fn captioned_mpeg2_ts(dir: &Path, name: &str) -> CaptionedFixture {
    CaptionedKind::Mpeg2Ts.make(dir, name)
}

/// MPEG-2 video with captions in picture user data, and MP2 audio, muxed by FFmpeg's `wtv`
/// muxer.
///
/// The captions are only in the video bitstream: there is no separate caption stream as in a
/// Windows Media Center recording. FFmpeg decodes them; CCExtractor has been seen to find none
/// in such a file.
pub fn captioned_wtv(dir: &Path, name: &str) -> CaptionedFixture {
    CaptionedKind::Wtv.make(dir, name)
}

/// H.264 with captions in SEI, and AAC audio, in MP4.
pub fn captioned_h264_mp4(dir: &Path, name: &str) -> CaptionedFixture {
    CaptionedKind::H264Mp4.make(dir, name)
}

/// Makes `dir/name`: a `frames`-frame `testsrc2` clip of `kind` at [`FRAME_RATE`] whose video
/// carries `cues`, with a 440 Hz tone.
///
/// The video is encoded to a raw elementary stream, the caption data is written into every
/// picture (padding when no caption is being sent), and FFmpeg muxes the result (`-c:v copy`)
/// with the audio. Intermediate files are hidden names in `dir`, removed afterwards; the result
/// is written under a hidden name and renamed when complete. Panics if FFmpeg fails or the cues
/// do not fit (see [`encode_608`]).
pub fn captioned(
    kind: CaptionedKind,
    dir: &Path,
    name: &str,
    cues: &[Cue],
    frames: u32,
) -> CaptionedFixture {
    require_ffmpeg();
    check_name(name);
    fs::create_dir_all(dir)
        .unwrap_or_else(|err| panic!("cannot create folder {}: {err}", dir.display()));
    let pairs = encode_608(cues, frames);
    let h264 = kind.video_codec() == "h264";
    let raw = dir.join(format!(".{name}.testkit-raw"));
    let with_cc = dir.join(format!(".{name}.testkit-cc"));
    let part = dir.join(format!(".{name}.testkit-part"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_video(h264, frames, &raw);
        let es = read(&raw);
        let es = if h264 {
            inject_h264_captions(&es, &pairs)
        } else {
            inject_mpeg2_captions(&es, &pairs)
        };
        fs::write(&with_cc, es)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", with_cc.display()));
        mux(kind, frames, &with_cc, &part);
    }));
    let _ = fs::remove_file(&raw);
    let _ = fs::remove_file(&with_cc);
    if let Err(panic) = result {
        let _ = fs::remove_file(&part);
        std::panic::resume_unwind(panic);
    }
    let path = dir.join(name);
    fs::rename(&part, &path).unwrap_or_else(|err| {
        panic!(
            "cannot rename {} to {}: {err}",
            part.display(),
            path.display()
        )
    });
    CaptionedFixture {
        path,
        cues: expected_cues(cues, FPS),
        fps: FPS,
    }
}

/// The cues a decoder should report for `cues` at `fps` frames per second.
pub fn expected_cues(cues: &[Cue], fps: f64) -> Vec<ExpectedCue> {
    cues.iter()
        .map(|cue| ExpectedCue {
            text: cue.text.clone(),
            start_secs: f64::from(cue.start_frame) / fps,
            end_secs: f64::from(cue.end_frame) / fps,
        })
        .collect()
}

/// `byte` with bit 7 set or cleared so that the byte has an odd number of 1 bits.
pub fn odd_parity(byte: u8) -> u8 {
    let data = byte & 0x7F;
    if data.count_ones().is_multiple_of(2) {
        data | 0x80
    } else {
        data
    }
}

/// Whether `c` is a character of the 608 basic set that decoders show as the same ASCII
/// character.
///
/// The basic set replaces ASCII's `* \ ^ _ ` { | } ~` with accented letters and symbols, and
/// FFmpeg shows the apostrophe (0x27) as a right single quotation mark (U+2019), so these are
/// refused too; there are no control characters.
pub fn is_608_ascii(c: char) -> bool {
    matches!(c, ' '..='~') && !"'*\\^_`{|}~".contains(c)
}

/// The field-1 byte pair of each of `frames` frames (with odd parity) that shows `cues` as
/// pop-on captions on channel 1; see the [module documentation](self) for the codes.
///
/// Each cue's loading codes (RCL, ENM, PACs, each twice, and the characters) take one frame
/// each, in the last free frames before its `start_frame` and after the previous cue's EOC.
/// Panics if a cue's text is not 1 or 2 lines of [`is_608_ascii`] characters of at most
/// [`MAX_LINE_CHARS`], if cues are out of order or closer than 2 frames (the end of one and
/// the start of the next), if `end_frame + 1` is not a frame of the clip, or if there are not
/// enough free frames to load a cue.
pub fn encode_608(cues: &[Cue], frames: u32) -> Vec<[u8; 2]> {
    let frames = frames as usize;
    let mut slots: Vec<Option<[u8; 2]>> = vec![None; frames];
    // The first frame a cue's loading codes may use: after the previous cue's EOC repeat.
    let mut floor = 0usize;
    let mut previous_end: Option<usize> = None;
    for (index, cue) in cues.iter().enumerate() {
        let start = cue.start_frame as usize;
        let end = cue.end_frame as usize;
        assert!(start < end, "cue {index} {cue:?} must end after it starts");
        assert!(
            end + 1 < frames,
            "cue {index} {cue:?} needs frames up to {} but the clip has {frames}",
            end + 1
        );
        if let Some(previous_end) = previous_end {
            assert!(
                start >= previous_end + 2,
                "cue {index} {cue:?} starts before the previous cue's EDM (frames {previous_end} \
                 and {}) is sent",
                previous_end + 1
            );
        }
        let loading = loading_codes(&cue.text);
        let free: Vec<usize> = (floor..start).filter(|&f| slots[f].is_none()).collect();
        assert!(
            free.len() >= loading.len(),
            "cue {index} {cue:?} needs {} free frames before frame {start} to load its text, \
             only {} are free after frame {floor}",
            loading.len(),
            free.len()
        );
        for (&frame, &pair) in free[free.len() - loading.len()..].iter().zip(&loading) {
            slots[frame] = Some(pair);
        }
        for (frame, pair) in [(start, EOC), (start + 1, EOC), (end, EDM), (end + 1, EDM)] {
            assert!(
                slots[frame].is_none(),
                "frame {frame} is already used (by {:02x?})",
                slots[frame]
            );
            slots[frame] = Some(pair);
        }
        floor = start + 2;
        previous_end = Some(end);
    }
    slots
        .into_iter()
        .map(|slot| slot.map_or(PADDING, |[a, b]| [odd_parity(a), odd_parity(b)]))
        .collect()
}

/// RCL, ENM, then for each line a PAC and the characters; control codes twice. No parity.
fn loading_codes(text: &str) -> Vec<[u8; 2]> {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "a cue has one or two lines, {text:?} has {}",
        lines.len()
    );
    let mut codes = vec![RCL, RCL, ENM, ENM];
    let pacs: &[[u8; 2]] = if lines.len() == 1 {
        &[PAC_ROW_15]
    } else {
        &[PAC_ROW_14, PAC_ROW_15]
    };
    for (line, &pac) in lines.iter().zip(pacs) {
        assert!(
            !line.is_empty() && line.len() <= MAX_LINE_CHARS,
            "caption line {line:?} must have 1 to {MAX_LINE_CHARS} characters"
        );
        if let Some(bad) = line.chars().find(|&c| !is_608_ascii(c)) {
            panic!("caption line {line:?}: {bad:?} is not in the 608 basic set as in ASCII");
        }
        codes.extend([pac, pac]);
        codes.extend(
            line.as_bytes()
                .chunks(2)
                .map(|chunk| [chunk[0], chunk.get(1).copied().unwrap_or(0)]),
        );
    }
    codes
}

/// ATSC A/53 `cc_data` for one frame: `cc_count` = 2, the field-1 `pair` (`0xFC`) and a
/// field-2 padding pair (`0xFD 0x80 0x80`), then the marker `0xFF`.
pub fn cc_data(pair: [u8; 2]) -> Vec<u8> {
    vec![
        0x40 | 2,
        0xFF,
        0xFC,
        pair[0],
        pair[1],
        0xFD,
        0x80,
        0x80,
        0xFF,
    ]
}

/// The A/53 user data structure: `GA94`, user_data_type_code `0x03`, then `cc_data`.
pub fn a53_user_data(cc_data: &[u8]) -> Vec<u8> {
    let mut data = b"GA94\x03".to_vec();
    data.extend_from_slice(cc_data);
    data
}

/// An H.264 SEI NAL unit (without start code) holding one `user_data_registered_itu_t_t35`
/// message (payload type 4): country `0xB5`, provider `0x0031`, then [`a53_user_data`].
pub fn h264_sei_nal(cc_data: &[u8]) -> Vec<u8> {
    let mut payload = vec![0xB5, 0x00, 0x31];
    payload.extend(a53_user_data(cc_data));
    let mut rbsp = vec![4];
    let mut size = payload.len();
    while size >= 255 {
        rbsp.push(0xFF);
        size -= 255;
    }
    rbsp.push(size as u8);
    rbsp.extend(payload);
    rbsp.push(0x80);
    let mut nal = vec![0x06];
    nal.extend(add_emulation_prevention(&rbsp));
    nal
}

/// MPEG-2 picture user data: start code `0x000001B2`, then [`a53_user_data`].
pub fn mpeg2_user_data(cc_data: &[u8]) -> Vec<u8> {
    let mut data = vec![0x00, 0x00, 0x01, 0xB2];
    data.extend(a53_user_data(cc_data));
    data
}

/// `rbsp` with an emulation-prevention byte `0x03` after every two zero bytes that are followed
/// by a byte `<= 0x03`, as in an H.264 NAL unit's payload.
pub fn add_emulation_prevention(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 2);
    let mut zeros = 0;
    for &byte in rbsp {
        if zeros >= 2 && byte <= 0x03 {
            out.push(0x03);
            zeros = 0;
        }
        out.push(byte);
        zeros = if byte == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// The NAL units of an Annex B byte stream, without start codes and trailing zero bytes.
pub fn split_annex_b(stream: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = start_code_positions(stream);
    starts
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            let begin = at + 3;
            let end = starts.get(i + 1).copied().unwrap_or(stream.len());
            let mut nal = &stream[begin..end];
            while let [rest @ .., 0] = nal {
                nal = rest;
            }
            nal
        })
        .collect()
}

/// Offsets of every `00 00 01` start code prefix.
fn start_code_positions(stream: &[u8]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            positions.push(i);
            i += 3;
        } else {
            i += 1;
        }
    }
    positions
}

/// Rewrites an H.264 Annex B stream with an SEI of [`h264_sei_nal`]`(`[`cc_data`]`(pair))`
/// before the first slice of each picture, `pairs[n]` for the n-th coded picture.
///
/// A picture begins at a slice (NAL type 1 or 5) whose `first_mb_in_slice` is 0. Every NAL unit
/// is written back with a 4-byte start code. Panics unless the stream has exactly
/// `pairs.len()` pictures. The pictures must be in display order (no B-frames).
pub fn inject_h264_captions(stream: &[u8], pairs: &[[u8; 2]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() + pairs.len() * 32);
    let mut pictures = 0usize;
    for nal in split_annex_b(stream) {
        let Some(&header) = nal.first() else {
            continue;
        };
        let nal_type = header & 0x1F;
        // first_mb_in_slice is ue(v): 0 is the single bit 1.
        let first_slice =
            matches!(nal_type, 1 | 5) && nal.get(1).is_some_and(|byte| byte & 0x80 != 0);
        if first_slice {
            let pair = pairs.get(pictures).copied().unwrap_or_else(|| {
                panic!(
                    "the H.264 stream has more than the {} pictures captioned",
                    pairs.len()
                )
            });
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend(h264_sei_nal(&cc_data(pair)));
            pictures += 1;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    assert_eq!(
        pictures,
        pairs.len(),
        "the H.264 stream has {pictures} pictures, captions were made for {}",
        pairs.len()
    );
    out
}

/// Rewrites an MPEG-2 video elementary stream with [`mpeg2_user_data`]`(`[`cc_data`]`(pair))`
/// after each picture header (start code `0x00`) and its extensions, before its first slice
/// (start codes `0x01..=0xAF`), `pairs[n]` for the n-th coded picture.
///
/// Panics unless the stream has exactly `pairs.len()` pictures. The pictures must be in display
/// order (no B-frames).
pub fn inject_mpeg2_captions(stream: &[u8], pairs: &[[u8; 2]]) -> Vec<u8> {
    let starts = start_code_positions(stream);
    let mut out = Vec::with_capacity(stream.len() + pairs.len() * 24);
    out.extend_from_slice(&stream[..starts.first().copied().unwrap_or(stream.len())]);
    let mut pictures = 0usize;
    let mut in_picture_header = false;
    for (i, &at) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(stream.len());
        let code = stream.get(at + 3).copied();
        match code {
            Some(0x00) => in_picture_header = true,
            Some(0x01..=0xAF) if in_picture_header => {
                let pair = pairs.get(pictures).copied().unwrap_or_else(|| {
                    panic!(
                        "the MPEG-2 stream has more than the {} pictures captioned",
                        pairs.len()
                    )
                });
                out.extend(mpeg2_user_data(&cc_data(pair)));
                pictures += 1;
                in_picture_header = false;
            }
            _ => {}
        }
        out.extend_from_slice(&stream[at..end]);
    }
    assert_eq!(
        pictures,
        pairs.len(),
        "the MPEG-2 stream has {pictures} pictures, captions were made for {}",
        pairs.len()
    );
    out
}

/// Encodes `frames` frames of `testsrc2` as a raw H.264 or MPEG-2 elementary stream without
/// B-frames.
///
/// H.264 is High profile (`ultrafast` alone gives Constrained Baseline; `8x8dct` makes it High),
/// like the fixtures in [`crate::fixtures`], so a converter may remux it instead of encoding.
fn encode_video(h264: bool, frames: u32, out: &Path) {
    encode_video_with(h264, frames, false, SIZE, out);
}

/// [`encode_video`] at `size`, interlaced (MBAFF, top field first) when asked (H.264 only).
fn encode_video_with(h264: bool, frames: u32, interlaced: bool, size: &str, out: &Path) {
    let mut args = os(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate={FRAME_RATE}"),
        "-frames:v",
        &frames.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "0",
    ]);
    if h264 {
        args.extend(os(&[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-x264-params",
            if interlaced {
                "bframes=0:8x8dct=1:interlaced=1:tff=1"
            } else {
                "bframes=0:8x8dct=1"
            },
            "-profile:v",
            "high",
            "-f",
            "h264",
        ]));
    } else {
        args.extend(os(&["-c:v", "mpeg2video", "-q:v", "4", "-f", "mpeg2video"]));
    }
    args.push(file_arg(out));
    run_ffmpeg(args);
}

/// Muxes the raw video `es` with a tone of the same length into `out`.
fn mux(kind: CaptionedKind, frames: u32, es: &Path, out: &Path) {
    let secs = f64::from(frames) / FPS;
    let (raw_format, audio_codec, format) = match kind {
        CaptionedKind::H264Ts => ("h264", "aac", "mpegts"),
        CaptionedKind::Mpeg2Ts => ("mpegvideo", "ac3", "mpegts"),
        CaptionedKind::Wtv => ("mpegvideo", "mp2", "wtv"),
        CaptionedKind::H264Mp4 => ("h264", "aac", "mp4"),
    };
    let mut args = os(&[
        "-fflags", "+genpts", "-r", FRAME_RATE, "-f", raw_format, "-i",
    ]);
    args.push(file_arg(es));
    args.extend(os(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={secs:.3}"),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "copy",
        "-c:a",
        audio_codec,
        "-ac",
        "2",
        "-f",
        format,
    ]));
    args.push(file_arg(out));
    run_ffmpeg(args);
}

/// Resume caption loading on CC3 (field 2, data channel 1), without parity: field 2's
/// miscellaneous control codes start with `0x15` where field 1's start with `0x14`.
pub const RCL_CC3: [u8; 2] = [0x15, 0x20];

/// The field-2 byte pairs that show `cues` as pop-on captions on CC3: [`encode_608`] with the
/// miscellaneous control codes (RCL, ENM, EOC, EDM) of field 2 (`0x15`); PACs are the same on
/// both fields.
pub fn encode_608_cc3(cues: &[Cue], frames: u32) -> Vec<[u8; 2]> {
    encode_608(cues, frames)
        .into_iter()
        .map(|[a, b]| {
            // 0x14 with odd parity is 0x94; its field-2 twin 0x15 is 0x15.
            if a == odd_parity(0x14) && (0x20..=0x2F).contains(&(b & 0x7F)) {
                [odd_parity(0x15), b]
            } else {
                [a, b]
            }
        })
        .collect()
}

/// ATSC A/53 `cc_data` for one frame with a field-1 pair (`0xFC`) and a field-2 pair (`0xFD`);
/// with `atsc` 18 DTVCC padding triples (`0xFA 0x00 0x00`) follow, for the `cc_count` of 20
/// that broadcasts send at 29.97 frames/s.
pub fn cc_data_fields(field1: [u8; 2], field2: [u8; 2], atsc: bool) -> Vec<u8> {
    let count: u8 = if atsc { 20 } else { 2 };
    let mut data = vec![0x40 | count, 0xFF, 0xFC, field1[0], field1[1], 0xFD];
    data.extend([field2[0], field2[1]]);
    for _ in 2..count {
        data.extend([0xFA, 0x00, 0x00]);
    }
    data.push(0xFF);
    data
}

/// What [`captioned_with`] makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captioning {
    /// Pop-on captions on CC1 (field 1).
    pub cc1: Vec<Cue>,
    /// Pop-on captions on CC3 (field 2); empty: field 2 carries padding.
    pub cc3: Vec<Cue>,
    /// Number of frames, at [`FRAME_RATE`] nominally.
    pub frames: u32,
    /// Interlaced coding (MBAFF, top field first): a converter deinterlaces and re-encodes it.
    pub interlaced: bool,
    /// `cc_count` 20 per frame, as ATSC broadcasts send (see [`cc_data_fields`]), instead of 2.
    pub atsc_cc_count: bool,
    /// Frames `a..b` come twice as fast (their timestamps half a frame apart), as a stretch of
    /// 59.94 frames/s inside a 29.97 recording: FFmpeg's default constant frame rate for MP4
    /// output drops frames there.
    pub fast_frames: Option<(u32, u32)>,
    /// Picture size, `WIDTHxHEIGHT`.
    pub size: String,
}

impl Default for Captioning {
    fn default() -> Self {
        Captioning {
            cc1: default_cues(),
            cc3: Vec::new(),
            frames: DEFAULT_FRAMES,
            interlaced: false,
            atsc_cc_count: false,
            fast_frames: None,
            size: SIZE.to_owned(),
        }
    }
}

/// A file made by [`captioned_with`], and the cues of both channels.
#[derive(Clone, Debug, PartialEq)]
pub struct TwoChannelFixture {
    /// The file.
    pub path: PathBuf,
    /// The CC1 cues, times in seconds from the first frame.
    pub cc1: Vec<ExpectedCue>,
    /// The CC3 cues, likewise.
    pub cc3: Vec<ExpectedCue>,
    /// The time of the first frame that carries CC1 caption bytes other than padding, in
    /// seconds from the first frame.
    pub first_cc1_data_secs: f64,
}

/// The CC3 cues of the two-channel fixtures: Spanish text, offset from CC1's so that both
/// fields carry characters in the same frames.
pub fn cc3_cues() -> Vec<Cue> {
    let cue = |text: &str, start_frame, end_frame| Cue {
        text: text.to_owned(),
        start_frame,
        end_frame,
    };
    vec![
        cue("TERCERA PISTA EN CC3", 30, 62),
        cue("SEGUNDA LINEA DE CC3", 72, 104),
        cue("OTRA VEZ\nDOS LINEAS", 114, 146),
    ]
}

/// The CC1 cues of the two-channel fixtures: the text issue 20 saw garbled.
pub fn question_period_cues() -> Vec<Cue> {
    let cue = |text: &str, start_frame, end_frame| Cue {
        text: text.to_owned(),
        start_frame,
        end_frame,
    };
    vec![
        cue("RT QUESTION PERIOD, FOLKS.", 24, 60),
        cue("WE ARE LOSING TIME FROM QUESTION", 80, 112),
        cue("THIRD CUE, TWO LINES\nSTILL IN ORDER", 122, 148),
    ]
}

/// H.264 (High profile, no B-frames) with AAC in MPEG-TS, carrying `spec`'s CC1 captions on
/// field 1 and CC3 captions on field 2 of every frame's `cc_data`.
pub fn captioned_with(dir: &Path, name: &str, spec: &Captioning) -> TwoChannelFixture {
    require_ffmpeg();
    check_name(name);
    fs::create_dir_all(dir)
        .unwrap_or_else(|err| panic!("cannot create folder {}: {err}", dir.display()));
    let field1 = encode_608(&spec.cc1, spec.frames);
    let field2 = if spec.cc3.is_empty() {
        vec![PADDING; spec.frames as usize]
    } else {
        encode_608_cc3(&spec.cc3, spec.frames)
    };
    let raw = dir.join(format!(".{name}.testkit-raw"));
    let with_cc = dir.join(format!(".{name}.testkit-cc"));
    let muxed = dir.join(format!(".{name}.testkit-mux"));
    let part = dir.join(format!(".{name}.testkit-part"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_video_with(true, spec.frames, spec.interlaced, &spec.size, &raw);
        let es = read(&raw);
        let cc: Vec<Vec<u8>> = field1
            .iter()
            .zip(&field2)
            .map(|(a, b)| cc_data_fields(*a, *b, spec.atsc_cc_count))
            .collect();
        fs::write(&with_cc, inject_h264_sei(&es, &cc))
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", with_cc.display()));
        match spec.fast_frames {
            None => mux(CaptionedKind::H264Ts, spec.frames, &with_cc, &part),
            Some((a, b)) => {
                mux(CaptionedKind::H264Ts, spec.frames, &with_cc, &muxed);
                // 90 kHz ticks: frames from `a` on come half a frame (1501.5 ticks) earlier
                // each, up to `b`.
                let expr = format!(
                    "setts=ts=if(lt(N\\,{a})\\,TS\\,if(lt(N\\,{b})\\,TS-(N-{a})*1501.5\\,TS-{}))",
                    f64::from(b - a) * 1501.5
                );
                let mut args = os(&["-i"]);
                args.push(file_arg(&muxed));
                args.extend(os(&[
                    "-map", "0", "-c", "copy", "-bsf:v", &expr, "-f", "mpegts",
                ]));
                args.push(file_arg(&part));
                run_ffmpeg(args);
            }
        }
    }));
    for f in [&raw, &with_cc, &muxed] {
        let _ = fs::remove_file(f);
    }
    if let Err(panic) = result {
        let _ = fs::remove_file(&part);
        std::panic::resume_unwind(panic);
    }
    let path = dir.join(name);
    fs::rename(&part, &path)
        .unwrap_or_else(|err| panic!("cannot rename to {}: {err}", path.display()));
    let time = |frame: u32| -> f64 {
        let f = f64::from(frame);
        match spec.fast_frames {
            Some((a, _)) if frame < a => f / FPS,
            Some((a, b)) if frame < b => f64::from(a) / FPS + (f - f64::from(a)) / (2.0 * FPS),
            Some((a, b)) => f / FPS - f64::from(b - a) / (2.0 * FPS),
            None => f / FPS,
        }
    };
    let expected = |cues: &[Cue]| -> Vec<ExpectedCue> {
        cues.iter()
            .map(|c| ExpectedCue {
                text: c.text.clone(),
                start_secs: time(c.start_frame),
                end_secs: time(c.end_frame),
            })
            .collect()
    };
    let first = field1.iter().position(|p| *p != PADDING).unwrap_or(0) as u32;
    TwoChannelFixture {
        path,
        cc1: expected(&spec.cc1),
        cc3: expected(&spec.cc3),
        first_cc1_data_secs: time(first),
    }
}

/// Rewrites an H.264 Annex B stream with an SEI of [`h264_sei_nal`]`(cc[n])` before the first
/// slice of the n-th picture (see [`inject_h264_captions`]).
pub fn inject_h264_sei(stream: &[u8], cc: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len() + cc.len() * 80);
    let mut pictures = 0usize;
    for nal in split_annex_b(stream) {
        let Some(&header) = nal.first() else {
            continue;
        };
        let nal_type = header & 0x1F;
        let first_slice =
            matches!(nal_type, 1 | 5) && nal.get(1).is_some_and(|byte| byte & 0x80 != 0);
        if first_slice {
            let data = cc.get(pictures).unwrap_or_else(|| {
                panic!(
                    "the H.264 stream has more than the {} pictures captioned",
                    cc.len()
                )
            });
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend(h264_sei_nal(data));
            pictures += 1;
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    assert_eq!(pictures, cc.len(), "pictures in the stream vs captioned");
    out
}

/// H.264 and AAC in an MP4 file whose CC1 captions ([`default_cues`]) are in a separate
/// `c608` caption track, not in the video, as Apple's tools and some fragmented-MP4 packagers
/// write them.
///
/// FFmpeg 5.1's `mp4` muxer cannot write such a track ("codec not currently supported in
/// container"); its QuickTime muxer can, and `-brand isom` gives the file an MP4 major brand.
/// The captions come from a captioned H.264 TS (`movie=TS[out0+subcc]`, packets copied into the
/// track), whose video is re-encoded without them (`-a53cc 0`).
pub fn captioned_c608_mp4(dir: &Path, name: &str) -> CaptionedFixture {
    check_name(name);
    let ts_name = format!(".{name}.testkit-ts");
    let ts = captioned_h264_ts(dir, &ts_name);
    let part = dir.join(format!(".{name}.testkit-part"));
    let mut args = os(&["-i"]);
    args.push(file_arg(&ts.path));
    args.extend(os(&["-f", "lavfi", "-i", &movie_subcc_graph(&ts.path)]));
    args.extend(os(&[
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-map",
        "1:1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-x264-params",
        "bframes=0:8x8dct=1",
        "-profile:v",
        "high",
        "-a53cc",
        "0",
        "-c:a",
        "copy",
        "-c:s",
        "copy",
        "-brand",
        "isom",
        "-f",
        "mov",
    ]));
    args.push(file_arg(&part));
    let result = std::panic::catch_unwind(|| run_ffmpeg(args));
    let _ = fs::remove_file(&ts.path);
    if let Err(panic) = result {
        let _ = fs::remove_file(&part);
        std::panic::resume_unwind(panic);
    }
    let path = dir.join(name);
    fs::rename(&part, &path)
        .unwrap_or_else(|err| panic!("cannot rename to {}: {err}", path.display()));
    CaptionedFixture {
        path,
        cues: ts.cues,
        fps: ts.fps,
    }
}

/// Extracts the captions of `field` (0: CC1, 1: CC3) of `video` with FFmpeg, as SubRip cues
/// ([`parse_srt`]): `ffmpeg -data_field N -f lavfi -i movie=FILE[out0+subcc]`.
pub fn field_cues(video: &Path, field: u8) -> Vec<(f64, f64, String)> {
    require_ffmpeg();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-data_field"])
        .arg(field.to_string())
        .args(["-f", "lavfi", "-i"])
        .arg(movie_subcc_graph(video))
        .args(["-map", "0:s:0", "-c:s", "srt", "-f", "srt", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("could not run ffmpeg: {err}"));
    assert!(
        output.status.success(),
        "ffmpeg could not extract field {field} of {}: {}",
        video.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_srt(&String::from_utf8_lossy(&output.stdout))
}

/// How many frames [`has_closed_captions`] decodes.
pub const CLOSED_CAPTION_PROBE_FRAMES: u32 = 30;

/// Whether ffprobe reports `closed_captions=1` on a video stream of `path`.
///
/// Runs `ffprobe -select_streams v -read_intervals %+#30 -count_frames -show_streams`. The
/// `closed_captions` field of `-show_streams` comes from ffprobe's own decoder, which sets it
/// only once it has decoded a frame carrying caption data: without `-count_frames` (or
/// `-show_frames`) FFmpeg 5.1's ffprobe prints `closed_captions=0` even for a captioned file,
/// while its stream summary says "Closed Captions". So the first
/// [`CLOSED_CAPTION_PROBE_FRAMES`] frames are decoded. Panics if ffprobe fails.
pub fn has_closed_captions(path: &Path) -> bool {
    let json = ffprobe_json(
        path,
        &[
            "-select_streams",
            "v",
            "-read_intervals",
            &format!("%+#{CLOSED_CAPTION_PROBE_FRAMES}"),
            "-count_frames",
            "-show_streams",
        ],
    );
    json["streams"].as_array().is_some_and(|streams| {
        streams
            .iter()
            .any(|s| s["closed_captions"].as_i64() == Some(1))
    })
}

/// Whether ffprobe's summary of `path` (the stream lines `ffmpeg -i` also prints) says
/// "Closed Captions" on a video stream.
///
/// The summary comes from the frames FFmpeg decodes while probing the file. Panics if ffprobe
/// fails.
pub fn summary_says_closed_captions(path: &Path) -> bool {
    let output = ffprobe(path, &["-v", "info", "-hide_banner"]);
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .any(|line| line.contains("Video:") && line.contains("Closed Captions"))
}

fn ffprobe_json(path: &Path, args: &[&str]) -> Value {
    let mut all = vec!["-v", "error", "-print_format", "json"];
    all.extend_from_slice(args);
    let output = ffprobe(path, &all);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("ffprobe printed invalid JSON for {}: {err}", path.display()))
}

/// Runs `ffprobe ARGS file:PATH`, panicking with its messages if it fails.
fn ffprobe(path: &Path, args: &[&str]) -> std::process::Output {
    require_ffmpeg();
    let output = Command::new("ffprobe")
        .args(args)
        .arg(file_arg(path))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("could not run ffprobe: {err}"));
    assert!(
        output.status.success(),
        "ffprobe {args:?} failed on {} ({}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim_end()
    );
    output
}

/// The `movie` source of lavfi reading `video` with its captions as a second output,
/// `movie=FILE[out0+subcc]`, with the file name escaped for both the filter's option parser
/// and the filter graph parser.
pub fn movie_subcc_graph(video: &Path) -> String {
    let file = file_arg(video);
    let file = file.to_str().unwrap_or_else(|| {
        panic!(
            "the movie filter needs a UTF-8 file name, not {}",
            video.display()
        )
    });
    format!("movie={}[out0+subcc]", quote_filter(&quote_filter(file)))
}

/// `value` in single quotes for FFmpeg's option and filter graph parsers (`av_get_token`):
/// everything inside quotes is literal, and a quote is written as `'\''`.
pub fn quote_filter(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Extracts the 608 captions of `video` with FFmpeg to `out`, as SubRip when `out` ends in
/// `.srt` and WebVTT when it ends in `.vtt`:
/// `ffmpeg -f lavfi -i "movie=FILE[out0+subcc]" -map 0:s -c:s srt|webvtt OUT`.
///
/// Panics if FFmpeg fails or `out` has another extension.
pub fn extract_with_ffmpeg(video: &Path, out: &Path) {
    let (codec, format) = match out.extension().and_then(|e| e.to_str()) {
        Some("srt") => ("srt", "srt"),
        Some("vtt") => ("webvtt", "webvtt"),
        other => panic!("extract_with_ffmpeg writes .srt or .vtt, not {other:?}"),
    };
    let mut args = os(&["-f", "lavfi", "-i", &movie_subcc_graph(video)]);
    args.extend(os(&["-map", "0:s", "-c:s", codec, "-f", format]));
    args.push(file_arg(out));
    run_ffmpeg(args);
}

/// The cues of a SubRip file: `(start_secs, end_secs, text)`, text lines joined by `\n`, with
/// formatting tags (`{\an7}`, `<i>`, ...) removed and each line trimmed.
pub fn parse_srt(text: &str) -> Vec<(f64, f64, String)> {
    parse_cues(text, false)
}

/// The cues of a WebVTT file, as [`parse_srt`]; the header, `NOTE`, `STYLE` and `REGION` blocks
/// are skipped, cue settings after the times ignored and `&amp;` `&lt;` `&gt;` `&nbsp;`
/// decoded.
pub fn parse_vtt(text: &str) -> Vec<(f64, f64, String)> {
    parse_cues(text, true)
}

fn parse_cues(text: &str, vtt: bool) -> Vec<(f64, f64, String)> {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let mut cues = Vec::new();
    for block in text.replace('\r', "\n").split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        let Some(timing_index) = lines.iter().position(|l| l.contains("-->")) else {
            continue;
        };
        if vtt
            && lines.first().is_some_and(|l| {
                l.starts_with("WEBVTT")
                    || l.starts_with("NOTE")
                    || l.starts_with("STYLE")
                    || l.starts_with("REGION")
            })
        {
            continue;
        }
        let Some((start, end)) = parse_timing(lines[timing_index]) else {
            continue;
        };
        let body: Vec<String> = lines[timing_index + 1..]
            .iter()
            .map(|line| {
                let line = strip_tags(line);
                let line = if vtt { decode_entities(&line) } else { line };
                line.replace("\\h", " ").trim().to_owned()
            })
            .filter(|line| !line.is_empty())
            .collect();
        cues.push((start, end, body.join("\n")));
    }
    cues
}

/// `START --> END [settings]`.
fn parse_timing(line: &str) -> Option<(f64, f64)> {
    let (start, rest) = line.split_once("-->")?;
    let end = rest.split_whitespace().next()?;
    Some((parse_time(start.trim())?, parse_time(end)?))
}

/// `HH:MM:SS,mmm`, `HH:MM:SS.mmm` or `MM:SS.mmm` in seconds.
pub fn parse_time(time: &str) -> Option<f64> {
    let time = time.replace(',', ".");
    let parts: Vec<&str> = time.split(':').collect();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m, s] => (h.parse::<f64>().ok()?, m.parse::<f64>().ok()?, *s),
        [m, s] => (0.0, m.parse::<f64>().ok()?, *s),
        _ => return None,
    };
    let seconds: f64 = seconds.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// `line` without `{...}` (ASS override) and `<...>` (HTML-like) tags.
fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut closing: Option<char> = None;
    for c in line.chars() {
        match closing {
            Some(end) if c == end => closing = None,
            Some(_) => {}
            None if c == '{' => closing = Some('}'),
            None if c == '<' => closing = Some('>'),
            None => out.push(c),
        }
    }
    out
}

fn decode_entities(line: &str) -> String {
    line.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn check_name(name: &str) {
    assert!(
        !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
        "{name:?} is not a single file name"
    );
}
