//! Checks every fixture with ffprobe, and the slow writer through `/proc/self`.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use h264_testkit::ffmpeg::{file_arg, require_ffmpeg, run_ffmpeg};
use h264_testkit::fixtures::{self, Fixture, Fixtures, DEFAULT_SECS};
use h264_testkit::probe::{moov_before_mdat, probe, top_level_boxes, try_probe};
use h264_testkit::process::{is_open_for_writing, own_open_files};
use h264_testkit::slow_writer::{SlowWriteOptions, SlowWriter};
use h264_testkit::wait::{wait_for, wait_until};

const POLL: Duration = Duration::from_millis(5);

fn assert_near(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: expected {expected} ± {tolerance}, got {actual}"
    );
}

#[test]
fn ffmpeg_is_installed() {
    require_ffmpeg();
}

#[test]
fn mpeg2_interlaced_ts_is_atsc_like() {
    let info = probe(Fixture::Mpeg2InterlacedTs.path());
    assert_eq!(info.format_name, "mpegts");
    assert_near(info.duration, DEFAULT_SECS, 0.3, "duration");
    let video = info.video.expect("a video stream");
    assert_eq!(video.codec, "mpeg2video");
    assert!(
        matches!(video.field_order.as_deref(), Some("tt" | "bb")),
        "field order {:?}",
        video.field_order
    );
    assert!(video.is_interlaced());
    assert_eq!((video.width, video.height), (320, 240));
    assert_near(
        video.frame_rate.unwrap(),
        30000.0 / 1001.0,
        0.01,
        "frame rate",
    );
    assert_eq!(info.audio.len(), 1);
    assert_eq!(info.audio[0].codec, "ac3");
    assert_eq!(info.audio[0].channels, 2);
}

#[test]
fn wtv_is_mpeg2_with_audio() {
    let info = probe(Fixture::Wtv.path());
    assert_eq!(info.format_name, "wtv");
    assert_near(info.duration, DEFAULT_SECS, 0.3, "duration");
    let video = info.video.expect("a video stream");
    assert_eq!(video.codec, "mpeg2video");
    assert!(video.is_interlaced(), "{video:?}");
    assert_eq!(info.audio.len(), 1);
    assert_eq!(info.audio[0].codec, "mp2");
}

#[test]
fn h264_mp4_is_high_profile_h264_with_aac_and_moov_last() {
    let path = Fixture::H264Mp4.path();
    let info = probe(path);
    assert!(info.format_name.contains("mp4"), "{}", info.format_name);
    assert_near(info.duration, DEFAULT_SECS, 0.3, "duration");
    let video = info.video.expect("a video stream");
    assert_eq!(video.codec, "h264");
    assert_eq!(video.profile.as_deref(), Some("High"));
    assert_eq!(video.pix_fmt.as_deref(), Some("yuv420p"));
    assert_eq!(video.field_order.as_deref(), Some("progressive"));
    assert_eq!(info.audio.len(), 1);
    assert_eq!(info.audio[0].codec, "aac");
    assert_eq!(info.audio[0].channels, 2);

    assert!(!moov_before_mdat(path), "{:?}", top_level_boxes(path));

    // The same streams with +faststart have moov first.
    let dir = tempfile::tempdir().unwrap();
    let fast = dir.path().join("fast.mp4");
    run_ffmpeg([
        "-i".into(),
        file_arg(path),
        "-c".into(),
        "copy".into(),
        "-movflags".into(),
        "+faststart".into(),
        file_arg(&fast),
    ]);
    assert!(moov_before_mdat(&fast), "{:?}", top_level_boxes(&fast));
}

#[test]
fn h264_ts_is_h264_with_aac() {
    let info = probe(Fixture::H264Ts.path());
    assert_eq!(info.format_name, "mpegts");
    let video = info.video.expect("a video stream");
    assert_eq!(video.codec, "h264");
    assert_eq!(video.profile.as_deref(), Some("High"));
    assert_eq!(info.audio[0].codec, "aac");
}

#[test]
fn truncated_ts_is_cut_mid_packet_and_shorter() {
    let full = Fixture::Mpeg2InterlacedTs.path();
    let cut = Fixture::TruncatedTs.path();
    let full_len = fs::metadata(full).unwrap().len();
    let cut_len = fs::metadata(cut).unwrap().len();
    assert_ne!(cut_len % 188, 0, "cut on a packet boundary");
    assert_near(
        cut_len as f64 / full_len as f64,
        0.55,
        0.01,
        "kept fraction",
    );

    let full_info = probe(full);
    let cut_info = probe(cut);
    assert!(
        cut_info.duration < full_info.duration - 0.5,
        "truncated {} s, full {} s",
        cut_info.duration,
        full_info.duration
    );
    assert_eq!(cut_info.video.unwrap().codec, "mpeg2video");

    // The generator makes its own full file and leaves only the cut one behind.
    let dir = tempfile::tempdir().unwrap();
    let made = fixtures::truncated_ts(dir.path(), "died.ts", 2.0);
    assert_ne!(fs::metadata(&made).unwrap().len() % 188, 0);
    assert!(probe(&made).duration < 1.8);
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn zero_byte_and_text_files_are_not_media() {
    let empty = Fixture::ZeroByte.path();
    assert_eq!(fs::metadata(empty).unwrap().len(), 0);
    assert!(try_probe(empty).is_err());

    let text = Fixture::TextAsVideo.path();
    assert!(text.to_str().unwrap().ends_with("notes.ts"));
    assert!(fs::read_to_string(text).unwrap().contains("not a video"));
    let err = try_probe(text).unwrap_err();
    assert!(err.contains("ffprobe failed"), "{err}");
}

#[test]
fn copies_fixtures_under_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "evening news.ts",
        "it's a \"quoted\" show.ts",
        "ünïcödé 日本語.ts",
        "-starts-with-dash.ts",
        "semi;colon $dollar.ts",
    ];
    let original = fs::read(Fixture::H264Ts.path()).unwrap();
    for name in names {
        let copy = Fixture::H264Ts.copy_to(dir.path(), name);
        assert_eq!(copy, dir.path().join(name));
        assert_eq!(fs::read(&copy).unwrap(), original, "{name}");
        assert_eq!(probe(&copy).video.unwrap().codec, "h264", "{name}");
    }
    // Only the copies are left: no temporary files.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), names.len());
}

#[test]
fn generators_take_any_name_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let ts = fixtures::mpeg2_interlaced_ts(dir.path(), "-dash 'n' space.ts", 2.0);
    assert_near(probe(&ts).duration, 2.0, 0.3, "mpeg2 duration");
    let mp4 = fixtures::h264_mp4(dir.path(), "clip ünï.mp4", 2.0);
    assert_near(probe(&mp4).duration, 2.0, 0.3, "mp4 duration");
    let wtv = fixtures::wtv(dir.path(), "show.wtv", 2.0);
    assert_eq!(probe(&wtv).format_name, "wtv");
    let h264_ts = fixtures::h264_ts(dir.path(), "h.ts", 2.0);
    assert_eq!(probe(&h264_ts).format_name, "mpegts");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[test]
fn the_cache_makes_each_fixture_once_across_threads() {
    let paths: Vec<_> = (0..4)
        .map(|_| thread::spawn(|| Fixture::Wtv.path().to_path_buf()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert!(paths[0].starts_with(Fixtures::shared().dir()));
    let modified = fs::metadata(&paths[0]).unwrap().modified().unwrap();
    assert_eq!(Fixture::Wtv.path(), paths[0]);
    assert_eq!(
        fs::metadata(&paths[0]).unwrap().modified().unwrap(),
        modified
    );
}

/// Whether this process has `path` open with write access, read straight from
/// `/proc/self/fd` and `/proc/self/fdinfo`.
fn open_for_writing_here(path: &Path) -> bool {
    let path = fs::canonicalize(path).unwrap();
    fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| {
        if fs::read_link(fd.path()).ok().as_deref() != Some(path.as_path()) {
            return false;
        }
        let info = fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name()))
            .unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|octal| u32::from_str_radix(octal.trim(), 8).ok())
            .is_some_and(|flags| flags & 0o3 != 0)
    })
}

#[test]
fn slow_writer_holds_the_file_open_until_done() {
    let src = Fixture::Mpeg2InterlacedTs.path();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("recording in progress.ts");
    let interval = Duration::from_millis(40);
    let started = Instant::now();
    let writer = SlowWriter::start(src, &dest, 6, interval);

    // From the start the file exists, is partly written and open for writing.
    assert!(dest.exists());
    assert!(writer.bytes_written() < writer.total_len());
    assert!(open_for_writing_here(&dest));
    assert!(is_open_for_writing(std::process::id(), &dest));
    assert!(own_open_files()
        .iter()
        .any(|f| f.is_writable() && f.target == fs::canonicalize(&dest).unwrap()));

    // It stays open while it grows.
    let mut sizes = vec![fs::metadata(&dest).unwrap().len()];
    while !writer.is_closed() {
        // Checked before the size: once closed, the file is complete.
        let open = open_for_writing_here(&dest);
        let size = fs::metadata(&dest).unwrap().len();
        assert!(open || size == writer.total_len(), "closed at {size} bytes");
        if size != *sizes.last().unwrap() {
            sizes.push(size);
        }
        thread::sleep(POLL);
    }
    assert!(sizes.len() >= 3, "saw sizes {sizes:?}");

    let closed_at = writer.closed_at().unwrap();
    assert_eq!(writer.wait(), closed_at);
    assert!(closed_at - started >= interval * 5);
    assert!(!open_for_writing_here(&dest));
    assert_eq!(fs::read(&dest).unwrap(), fs::read(src).unwrap());
}

#[test]
fn slow_writer_can_reopen_per_chunk_instead() {
    let src = Fixture::H264Ts.path();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("appended.ts");
    let writer = SlowWriter::start_reopening(src, &dest, 5, Duration::from_millis(60));

    // Between chunks the file is partly written but not open.
    wait_for(
        "a moment where the partial file is closed",
        Duration::from_secs(5),
        POLL,
        || {
            let size = fs::metadata(&dest).ok()?.len();
            (size > 0 && size < writer.total_len() && !open_for_writing_here(&dest)).then_some(())
        },
    )
    .unwrap();
    assert!(!writer.is_closed());

    writer.wait();
    assert_eq!(fs::read(&dest).unwrap(), fs::read(src).unwrap());
}

#[test]
fn slow_writer_lingers_then_closes_or_aborts_early() {
    let src = Fixture::H264Mp4.path();
    let dir = tempfile::tempdir().unwrap();

    // Complete but still open for `linger`.
    let dest = dir.path().join("lingering.mp4");
    let options = SlowWriteOptions {
        linger: Duration::from_millis(500),
        ..SlowWriteOptions::new(2, Duration::from_millis(10))
    };
    let writer = SlowWriter::start_with(src, &dest, options);
    let total = writer.total_len();
    let done_writing = wait_until(Duration::from_secs(5), POLL, || {
        (writer.bytes_written() == total).then(Instant::now)
    })
    .unwrap();
    assert!(open_for_writing_here(&dest));
    let closed_at = writer.wait();
    assert!(closed_at >= done_writing);
    assert!(!open_for_writing_here(&dest));

    // A writer that dies leaves a short, closed file.
    let dest = dir.path().join("crashed.mp4");
    let writer = SlowWriter::start(src, &dest, 4, Duration::from_secs(30));
    writer.abort();
    assert!(!open_for_writing_here(&dest));
    assert!(fs::metadata(&dest).unwrap().len() < total);
}
