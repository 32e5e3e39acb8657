//! The source's captions read from the transport stream without decoding (`captions::from_ts`)
//! against FFmpeg's decoder (`captions::read::frames`), on the test kit's captioned recordings
//! and on recordings made here with B-frames, at 25 frames/s, and starting mid-GOP; the `.srt`
//! and `.vtt` written by FFmpeg from an SCC file of those bytes (`captions::scc`) against the
//! ones it writes decoding the video; and hostile input (cut, corrupted, garbage): an answer or
//! a reason to give way, never a panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_agent::captions::cc608::{decode, CcFrame, Field};
use h264_agent::captions::from_ts::{read as read_ts, Found, GiveWay};
use h264_agent::captions::read::{frames as decoded_frames, tracks, Carrier};
use h264_agent::captions::scc;
use h264_testkit::captions::{
    captioned_with, cc3_cues, encode_608, extract_with_ffmpeg, inject_mpeg2_captions, parse_time,
    question_period_cues, CaptionedKind, Captioning, Cue,
};
use h264_testkit::ffmpeg::{file_arg, run_ffmpeg};
use tokio_util::sync::CancellationToken;

fn never() -> bool {
    false
}

/// The file's start time, and its frames as FFmpeg's decoder gives them.
fn decoder_reading(path: &Path) -> (f64, Vec<CcFrame>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let (_, start) = tracks(Path::new("ffprobe"), path, Duration::from_secs(30), &cancel)
            .await
            .unwrap();
        let frames = decoded_frames(
            Path::new("ffprobe"),
            path,
            &Carrier::Video,
            start,
            Duration::from_secs(60),
            &cancel,
        )
        .await
        .unwrap();
        (start, frames)
    })
}

/// The fast reading equals the decoder's, frame for frame (times to the microsecond), and so
/// do the cues of both fields.
fn same_as_decoder(what: &str, path: &Path) -> Found {
    let (start, want) = decoder_reading(path);
    let got = read_ts(path, start, &never).unwrap_or_else(|e| panic!("{what}: gave way: {e}"));
    assert_eq!(got.frames.len(), want.len(), "{what}: frames with captions");
    for (g, w) in got.frames.iter().zip(&want) {
        assert!(
            (g.time - w.time).abs() < 1e-6,
            "{what}: {g:?} against {w:?}"
        );
        assert_eq!(g.triples, w.triples, "{what}: at {}", w.time);
    }
    for field in [Field::One, Field::Two] {
        same_cues(what, &got.frames, &want, field);
    }
    assert!(!want.is_empty(), "{what}: the fixture has captions");
    got
}

/// The cues of `field` in both readings: the same texts, times within a microsecond (ffprobe
/// prints six decimals).
fn same_cues(what: &str, got: &[CcFrame], want: &[CcFrame], field: Field) {
    let (got, want) = (decode(got, field), decode(want, field));
    let texts = |c: &[h264_agent::captions::cc608::Cue]| -> Vec<String> {
        c.iter().map(|c| c.text.clone()).collect()
    };
    assert_eq!(texts(&got), texts(&want), "{what}: {field:?}");
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g.time - w.time).abs() < 1e-6,
            "{what}: {g:?} against {w:?}"
        );
    }
}

/// A TS of 150 MPEG-2 pictures at `rate` with `bframes` B-frames, the pairs of `cues` injected
/// picture by picture in decode order (with B-frames, the text comes out shuffled: what
/// matters is that both readings shuffle it alike).
fn mpeg2_ts(dir: &Path, name: &str, rate: &str, bframes: u32, cues: &[Cue]) -> PathBuf {
    let es = mpeg2_es(dir, name, rate, bframes, Some(cues));
    mux_ts(dir, name, rate, &[es])
}

/// An MPEG-2 elementary stream of 150 pictures at `rate`, with the pairs of `cues` injected
/// picture by picture in decode order, or no caption data at all (`None`).
fn mpeg2_es(dir: &Path, name: &str, rate: &str, bframes: u32, cues: Option<&[Cue]>) -> PathBuf {
    let frames = 150;
    let es = dir.join(format!("{name}.m2v"));
    let mut args: Vec<std::ffi::OsString> = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=320x240:rate={rate}"),
        "-frames:v",
        &frames.to_string(),
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "mpeg2video",
        "-bf",
        &bframes.to_string(),
        "-q:v",
        "4",
        "-g",
        "12",
        "-f",
        "mpeg2video",
    ]
    .map(Into::into)
    .to_vec();
    args.push(file_arg(&es));
    run_ffmpeg(args);
    if let Some(cues) = cues {
        let bytes = std::fs::read(&es).unwrap();
        std::fs::write(
            &es,
            inject_mpeg2_captions(&bytes, &encode_608(cues, frames)),
        )
        .unwrap();
    }
    es
}

/// The elementary streams `parts`, one after the other (each starts with a sequence header),
/// in a TS named `name.ts`.
fn mux_ts(dir: &Path, name: &str, rate: &str, parts: &[PathBuf]) -> PathBuf {
    let es = dir.join(format!("{name}.all.m2v"));
    let whole: Vec<u8> = parts
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    std::fs::write(&es, whole).unwrap();
    let out = dir.join(format!("{name}.ts"));
    let mut args: Vec<std::ffi::OsString> = ["-v", "error", "-fflags", "+genpts", "-r", rate]
        .into_iter()
        .chain(["-f", "mpegvideo", "-i"])
        .map(Into::into)
        .collect();
    args.push(file_arg(&es));
    args.extend(["-c:v", "copy", "-f", "mpegts"].map(Into::into));
    args.push(file_arg(&out));
    run_ffmpeg(args);
    out
}

/// `source` encoded by libx264 with two B-frames into a TS: the captions travel in SEI, in
/// presentation order as the source shows them, with an open GOP (recovery points) every 24
/// pictures, as a broadcast H.264 encoder sends them.
fn h264_ts(dir: &Path, name: &str, source: &Path) -> PathBuf {
    let out = dir.join(format!("{name}.ts"));
    let mut args: Vec<std::ffi::OsString> = vec!["-v".into(), "error".into(), "-i".into()];
    args.push(file_arg(source));
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-x264-params",
            "bframes=2:8x8dct=1:keyint=24:open_gop=1",
            "-f",
            "mpegts",
        ]
        .map(Into::into),
    );
    args.push(file_arg(&out));
    run_ffmpeg(args);
    out
}

/// The `.srt` and `.vtt` FFmpeg writes decoding `video`, and the ones it writes from an SCC file
/// of the fast reading: the same bytes.
fn same_sidecars(what: &str, dir: &Path, video: &Path, found: &Found) {
    let scc_file = dir.join(format!("{what}.scc"));
    let first = found.first_picture.expect("a first picture");
    assert!(scc::write(&scc_file, &found.frames, first).unwrap() > 0);
    for (ext, codec) in [("srt", "srt"), ("vtt", "webvtt")] {
        let decoded = dir.join(format!("{what}-decoded.{ext}"));
        extract_with_ffmpeg(video, &decoded);
        let from_scc = dir.join(format!("{what}-scc.{ext}"));
        let mut args: Vec<std::ffi::OsString> = [
            "-v",
            "error",
            "-copyts",
            "-data_field",
            "first",
            "-f",
            "scc",
            "-i",
        ]
        .map(Into::into)
        .to_vec();
        args.push(file_arg(&scc_file));
        args.extend(["-map", "0:s:0", "-c:s", codec, "-f", codec].map(Into::into));
        args.push(file_arg(&from_scc));
        run_ffmpeg(args);
        let (want, got) = (
            std::fs::read_to_string(&decoded).unwrap(),
            std::fs::read_to_string(&from_scc).unwrap(),
        );
        assert!(
            !want.trim().is_empty() && want.contains("-->"),
            "{what}.{ext}"
        );
        same_text_and_starts(&format!("{what}.{ext}"), &got, &want);
    }
}

/// `got` is `want` line for line, but for a cue's end, which may be a millisecond off: FFmpeg
/// ends a cue at its start plus its duration, each rounded to the millisecond on its own from
/// the decoded video's microsecond times, while the SCC times are whole milliseconds already
/// (the end then is the end's own time rounded, the nearer to the true end).
fn same_text_and_starts(what: &str, got: &str, want: &str) {
    let (got, want): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    assert_eq!(got.len(), want.len(), "{what}: lines\n{got:?}\n{want:?}");
    for (g, w) in got.iter().zip(&want) {
        let (Some((g_start, g_end)), Some((w_start, w_end))) =
            (g.split_once(" --> "), w.split_once(" --> "))
        else {
            assert_eq!(g, w, "{what}");
            continue;
        };
        assert_eq!(g_start, w_start, "{what}: a cue's start");
        let (g_end, w_end) = (parse_time(g_end).unwrap(), parse_time(w_end).unwrap());
        assert!((g_end - w_end).abs() < 0.0015, "{what}: {g} against {w}");
    }
}

#[test]
fn the_test_kits_recordings_read_without_decoding_as_the_decoder_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [CaptionedKind::Mpeg2Ts, CaptionedKind::H264Ts] {
        let name = format!("kit-{}", kind.video_codec());
        let fixture = kind.make(dir.path(), &format!("{name}.ts"));
        let found = same_as_decoder(&name, &fixture.path);
        same_sidecars(&name, dir.path(), &fixture.path, &found);
    }
    // Interlaced H.264, CC1 and CC3, 20 triples a frame, a stretch at twice the frame rate.
    let spec = Captioning {
        cc1: question_period_cues(),
        cc3: cc3_cues(),
        interlaced: true,
        atsc_cc_count: true,
        fast_frames: Some((40, 70)),
        ..Captioning::default()
    };
    let two = captioned_with(dir.path(), "two.ts", &spec);
    let found = same_as_decoder("two channels", &two.path);
    same_sidecars("two", dir.path(), &two.path, &found);
}

#[test]
fn b_frames_25_frames_a_second_and_a_recording_cut_mid_gop() {
    let dir = tempfile::tempdir().unwrap();
    let cues = h264_testkit::captions::default_cues();
    for (name, h264, rate) in [
        ("mpeg2-b", false, "30000/1001"),
        ("mpeg2-b-25", false, "25"),
        ("h264-b", true, "30000/1001"),
        ("h264-b-25", true, "25"),
    ] {
        let ts = if h264 {
            let source = mpeg2_ts(dir.path(), &format!("{name}-src"), rate, 0, &cues);
            h264_ts(dir.path(), name, &source)
        } else {
            mpeg2_ts(dir.path(), name, rate, 2, &cues)
        };
        let found = same_as_decoder(name, &ts);
        same_sidecars(name, dir.path(), &ts, &found);
        // The recording begins mid-stream: B- and P-pictures before the first I-picture.
        let bytes = std::fs::read(&ts).unwrap();
        let packets = bytes.len() / 188;
        let cut = dir.path().join(format!("{name}-cut.ts"));
        std::fs::write(&cut, &bytes[(packets / 5) * 188..]).unwrap();
        let what = format!("{name}-cut");
        let found = same_as_decoder(&what, &cut);
        same_sidecars(&what, dir.path(), &cut, &found);
    }
}

#[test]
fn hostile_input_gives_an_answer_or_a_reason_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = CaptionedKind::Mpeg2Ts.make(dir.path(), "news.ts");
    let bytes = std::fs::read(&fixture.path).unwrap();
    let path = dir.path().join("hostile.ts");
    let attempt = |data: &[u8]| -> Result<Found, GiveWay> {
        std::fs::write(&path, data).unwrap();
        read_ts(&path, 0.0, &never)
    };
    // Garbage, and text.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let garbage: Vec<u8> = (0..200_000).map(|_| next() as u8).collect();
    assert!(attempt(&garbage).is_err());
    assert!(attempt(b"not a recording\n").is_err());
    assert!(attempt(&[]).is_err());
    // Cut anywhere: an answer (the captions up to there) or a reason.
    for cut in [188 * 3, 188 * 40 + 17, bytes.len() / 2 + 5, bytes.len() - 1] {
        let _ = attempt(&bytes[..cut]);
    }
    // Every video PES header claiming a header longer than its packet.
    let mut long = bytes.clone();
    let mut changed = 0;
    for p in long.chunks_exact_mut(188) {
        if p[1] & 0x40 != 0 && p[3] & 0x30 == 0x10 && p[4..7] == [0, 0, 1] && p[7] >= 0xE0 {
            p[12] = 0xFF;
            changed += 1;
        }
    }
    assert!(changed > 0);
    let why = attempt(&long).unwrap_err().0;
    assert!(why.contains("longer than its packet"), "{why}");
    // Adaptation fields longer than their packet.
    let mut af = bytes.clone();
    for p in af.chunks_exact_mut(188).skip(10).step_by(7) {
        p[3] |= 0x20;
        p[4] = 0xF0;
    }
    assert!(attempt(&af).is_err());
    // Random bytes overwritten, many times over: never a panic.
    for _ in 0..150 {
        let mut bad = bytes.clone();
        for _ in 0..(next() % 40 + 1) {
            let at = (next() as usize) % bad.len();
            bad[at] = next() as u8;
        }
        let _ = attempt(&bad);
    }
    // A user data unit far beyond any caption's size: a reason, not a buffer that grows.
    let mut huge = bytes.clone();
    let user_data = huge
        .windows(4)
        .position(|w| w == [0, 0, 1, 0xB2])
        .expect("user data");
    let end = ((user_data / 188) + 1) * 188;
    for b in &mut huge[user_data + 4..end] {
        *b = 0x47;
    }
    let _ = attempt(&huge);
}

/// An agent set up with FFmpeg sidecars whose FFmpeg and ffprobe are themselves, each run's
/// arguments written down in the returned log.
fn logged_tools_setup() -> (crate::common::Setup, PathBuf) {
    let s = crate::common::Setup::new("", crate::captions::FFMPEG_CAPTIONS);
    let log = s.dir.path().join("runs.log");
    let mut config = std::fs::read_to_string(&s.config).unwrap();
    for tool in ["ffmpeg", "ffprobe"] {
        let wrapper = s.dir.path().join(format!("logged-{tool}"));
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec {tool} \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        config = config.replace(
            "preset = \"ultrafast\"",
            &format!("preset = \"ultrafast\"\n{tool} = '{}'", wrapper.display()),
        );
    }
    std::fs::write(&s.config, config).unwrap();
    (s, log)
}

/// The texts of an `.srt` sidecar.
fn srt_texts(path: &Path) -> Vec<String> {
    let srt = std::fs::read_to_string(path).unwrap();
    h264_testkit::captions::parse_srt(&srt)
        .into_iter()
        .map(|c| c.2)
        .collect()
}

/// Nothing left behind in the work folder of `s`.
fn work_folder_empty(s: &crate::common::Setup) {
    let work: Vec<_> = std::fs::read_dir(s.output.join(".h264create-work"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(work.is_empty(), "{work:?}");
}

#[test]
fn the_agent_decodes_a_captioned_transport_stream_once_for_the_mp4_the_check_and_the_sidecars() {
    let (s, log) = logged_tools_setup();
    let fixture = CaptionedKind::Mpeg2Ts.make(&s.input, "news.ts");
    assert!(s.run_once().status.success());
    let record = s.record("news.ts").unwrap();
    assert_eq!(record.captions.as_deref(), Some("srt,vtt (ffmpeg)"));
    let want: Vec<String> = fixture.cues.iter().map(|c| c.text.clone()).collect();
    assert_eq!(srt_texts(&s.output.join("news.srt")), want);
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !runs.contains("subcc]"),
        "no run decodes the whole recording for its captions:\n{runs}"
    );
    assert!(
        runs.contains("-f scc"),
        "the sidecars come from SCC:\n{runs}"
    );
    // The output's captions (the first pictures' verdict and the cue-for-cue check) are read
    // from its samples in process: no FFmpeg or ffprobe reads the MP4.
    let on_output: Vec<&str> = runs
        .lines()
        .filter(|l| {
            let reads_mp4 =
                |input: &str| input.contains(".h264create-work") && input.contains(".mp4");
            let reads_work = l
                .split(" -i ")
                .skip(1)
                .any(|input| reads_mp4(input.split(' ').next().unwrap_or("")));
            reads_work || (l.starts_with("ffprobe") && l.contains(".h264create-work"))
        })
        .collect();
    assert!(
        on_output.is_empty(),
        "no run reads the output:\n{}",
        on_output.join("\n")
    );
    work_folder_empty(&s);
}

#[test]
fn a_transport_stream_without_captions_gets_no_caption_run_of_ffmpeg() {
    let (s, log) = logged_tools_setup();
    let dir = tempfile::tempdir().unwrap();
    let es = mpeg2_es(dir.path(), "plain", "30000/1001", 2, None);
    let ts = mux_ts(dir.path(), "plain", "30000/1001", &[es]);
    std::fs::copy(&ts, s.input.join("plain.ts")).unwrap();
    assert!(s.run_once().status.success());
    let record = s.record("plain.ts").unwrap();
    assert_eq!(record.captions.as_deref(), Some("none"));
    assert_eq!(s.output_files(), ["plain.mp4"], "no sidecars");
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !runs.contains("subcc]") && !runs.contains("-f scc"),
        "the stream read to its end without decoding showed no caption bytes: no FFmpeg run \
         for sidecars:\n{runs}"
    );
    work_folder_empty(&s);
}

/// A TS of 150 pictures without caption data (more than the first-pictures scan looks at), then
/// 150 captioned with the kit's default cues (their second cue's characters in pictures 52-58
/// of that part).
fn late_captioned_ts(dir: &Path) -> PathBuf {
    let rate = "30000/1001";
    let plain = mpeg2_es(dir, "plain", rate, 0, None);
    let cues = h264_testkit::captions::default_cues();
    let captioned = mpeg2_es(dir, "captioned", rate, 0, Some(&cues));
    mux_ts(dir, "late", rate, &[plain, captioned])
}

#[test]
fn captions_that_start_after_the_first_pictures_reach_the_sidecars_without_a_second_decode() {
    let (s, log) = logged_tools_setup();
    let dir = tempfile::tempdir().unwrap();
    let ts = late_captioned_ts(dir.path());
    std::fs::copy(&ts, s.input.join("late.ts")).unwrap();
    assert!(s.run_once().status.success());
    let record = s.record("late.ts").unwrap();
    assert_eq!(record.captions.as_deref(), Some("srt,vtt (ffmpeg)"));
    let want: Vec<String> = decode(&decoder_reading(&ts).1, Field::One)
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(srt_texts(&s.output.join("late.srt")), want);
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !runs.contains("subcc]"),
        "the late captions were read without decoding:\n{runs}"
    );
    assert!(runs.contains("-f scc"), "from SCC:\n{runs}");
    work_folder_empty(&s);
}

#[test]
fn captions_that_start_after_the_first_pictures_are_checked_in_the_output() {
    // Pictures 202-208 (52-58 of the captioned part) carry characters of the second cue; the
    // filter drops them from the output.
    let sections = crate::captions::FFMPEG_CAPTIONS.replace(
        "max_attempts = 1",
        "max_attempts = 1\nlocal_ffmpeg_args = [\"-vf\", \"select='not(between(n,202,208))'\"]",
    );
    let s = crate::common::Setup::new("", &sections);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(late_captioned_ts(dir.path()), s.input.join("late.ts")).unwrap();
    assert_eq!(s.run_once().status.code(), Some(1));
    let record = s.record("late.ts").unwrap();
    assert_eq!(record.stage.as_deref(), Some("verify"), "{record:?}");
    let error = record.error.unwrap_or_default();
    assert!(
        error.contains("CC1 captions differ") && error.contains("the output says"),
        "{error}"
    );
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
}
