//! Small media files made with the real `ffmpeg`, and a per-process cache of them.
//!
//! Every generator writes a 320x240 picture (`lavfi` `testsrc2` or `smptebars`) with a `sine`
//! tone, a few seconds long, so a fixture takes well under a second to make. Each generator
//! takes the folder, the file name and the length in seconds, and returns the path it wrote.
//! The file is written under a hidden temporary name in the same folder and renamed when
//! complete, so a folder watcher never sees a fixture half-written (use
//! [`SlowWriter`](crate::slow_writer::SlowWriter) for that).
//!
//! Tests that only need *a* file of some kind should take it from the cache, which makes each
//! fixture once per test process and copies it under any name:
//!
//! ```no_run
//! use h264_testkit::fixtures::Fixture;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let odd = Fixture::H264Mp4.copy_to(dir.path(), "-it's \"late\" ünïcode.mp4");
//! assert!(odd.exists());
//! ```

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::ffmpeg::{file_arg, require_ffmpeg, run_ffmpeg};
use crate::probe::probe;

/// Length of the cached fixtures, in seconds.
pub const DEFAULT_SECS: f64 = 3.0;

/// Picture size of every generated video.
pub const SIZE: &str = "320x240";

/// Fraction of the bytes [`truncated_ts`] keeps.
pub const TRUNCATED_FRACTION: f64 = 0.55;

const TS_PACKET: u64 = 188;

/// ATSC-like MPEG-2 video, 29.97 frames/s interlaced (top field first), with stereo AC-3
/// audio at 48 kHz, muxed as MPEG-TS.
///
/// 59.94p from `testsrc2` goes through the `interlace` filter, which weaves pairs of frames
/// into 29.97i, and MPEG-2 codes it with interlaced motion estimation and DCT. Panics if
/// FFmpeg fails or if `ffprobe` does not report the result as interlaced (`tt`).
pub fn mpeg2_interlaced_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    let dest = write_with_ffmpeg(dir, name, |tmp| {
        let mut args = lavfi_inputs("testsrc2", "60000/1001", 1000, secs);
        args.extend(os(&["-vf", "interlace=scan=tff"]));
        args.extend(mpeg2_interlaced_video());
        args.extend(os(&[
            "-c:a", "ac3", "-b:a", "192k", "-ac", "2", "-f", "mpegts",
        ]));
        args.push(file_arg(tmp));
        args
    });
    let info = probe(&dest);
    let field_order = info.video.as_ref().and_then(|v| v.field_order.clone());
    assert_eq!(
        field_order.as_deref(),
        Some("tt"),
        "{} should be interlaced top field first; ffprobe says {info:?}",
        dest.display()
    );
    dest
}

/// A Windows Media Center recording (`.wtv`, FFmpeg's `wtv` muxer): MPEG-2 video at 29.97i
/// from `smptebars`, with stereo MP2 audio at 48 kHz.
pub fn wtv(dir: &Path, name: &str, secs: f64) -> PathBuf {
    write_with_ffmpeg(dir, name, |tmp| {
        let mut args = lavfi_inputs("smptebars", "60000/1001", 440, secs);
        args.extend(os(&["-vf", "interlace=scan=tff"]));
        args.extend(mpeg2_interlaced_video());
        args.extend(os(&[
            "-c:a", "mp2", "-b:a", "192k", "-ac", "2", "-f", "wtv",
        ]));
        args.push(file_arg(tmp));
        args
    })
}

/// H.264 (High profile, yuv420p, progressive, 29.97 frames/s) with stereo AAC in MP4: a source
/// the agent can remux instead of encoding.
///
/// Written without `+faststart`, as most recorders and cameras write MP4: `moov` follows
/// `mdat`.
pub fn h264_mp4(dir: &Path, name: &str, secs: f64) -> PathBuf {
    write_with_ffmpeg(dir, name, |tmp| {
        let mut args = lavfi_inputs("testsrc2", "30000/1001", 440, secs);
        args.extend(h264_aac());
        args.extend(os(&["-f", "mp4"]));
        args.push(file_arg(tmp));
        args
    })
}

/// The same H.264 + AAC streams as [`h264_mp4`], muxed as MPEG-TS.
pub fn h264_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    write_with_ffmpeg(dir, name, |tmp| {
        let mut args = lavfi_inputs("testsrc2", "30000/1001", 440, secs);
        args.extend(h264_aac());
        args.extend(os(&["-f", "mpegts"]));
        args.push(file_arg(tmp));
        args
    })
}

/// An interlaced MPEG-2 TS of `secs` seconds (as [`mpeg2_interlaced_ts`]) cut off at about
/// 55% of its bytes, in the middle of a TS packet: a recording whose writer died.
pub fn truncated_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    check_name(name);
    let full_name = format!(".{name}.testkit-full");
    let full = mpeg2_interlaced_ts(dir, &full_name, secs);
    let dest = truncate_copy(&full, dir, name, TRUNCATED_FRACTION);
    remove(&full);
    dest
}

/// Copies the first `fraction` of `src`'s bytes to `dir/name`, moving the cut off a 188-byte TS
/// packet boundary (by a few bytes) if it falls on one.
pub fn truncate_copy(src: &Path, dir: &Path, name: &str, fraction: f64) -> PathBuf {
    assert!(
        fraction > 0.0 && fraction < 1.0,
        "fraction must be between 0 and 1, got {fraction}"
    );
    let bytes = read(src);
    let mut keep = (bytes.len() as f64 * fraction) as u64;
    if keep.is_multiple_of(TS_PACKET) {
        keep = keep.saturating_sub(TS_PACKET / 2);
    }
    let keep = usize::try_from(keep).expect("length fits in usize");
    write_atomically(dir, name, &bytes[..keep])
}

/// An empty file.
pub fn zero_byte(dir: &Path, name: &str) -> PathBuf {
    write_atomically(dir, name, b"")
}

/// A plain text file, to be given a video name such as `notes.ts`.
pub fn text_as_video(dir: &Path, name: &str) -> PathBuf {
    let text = "Recording notes\n\
                Channel 7, evening news, 18:00-18:30.\n\
                This is a text file, not a video.\n";
    write_atomically(dir, name, text.as_bytes())
}

/// The fixtures that [`Fixtures`] caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fixture {
    /// [`mpeg2_interlaced_ts`], [`DEFAULT_SECS`] long.
    Mpeg2InterlacedTs,
    /// [`wtv`], [`DEFAULT_SECS`] long.
    Wtv,
    /// [`h264_mp4`], [`DEFAULT_SECS`] long.
    H264Mp4,
    /// [`h264_ts`], [`DEFAULT_SECS`] long.
    H264Ts,
    /// [`truncated_ts`] cut from the cached [`Fixture::Mpeg2InterlacedTs`].
    TruncatedTs,
    /// [`zero_byte`], named `.ts`.
    ZeroByte,
    /// [`text_as_video`], named `.ts`.
    TextAsVideo,
}

impl Fixture {
    /// Every fixture.
    pub const ALL: [Fixture; 7] = [
        Fixture::Mpeg2InterlacedTs,
        Fixture::Wtv,
        Fixture::H264Mp4,
        Fixture::H264Ts,
        Fixture::TruncatedTs,
        Fixture::ZeroByte,
        Fixture::TextAsVideo,
    ];

    /// The file name of the cached copy, e.g. `mpeg2-interlaced.ts`.
    pub fn file_name(self) -> &'static str {
        match self {
            Fixture::Mpeg2InterlacedTs => "mpeg2-interlaced.ts",
            Fixture::Wtv => "recording.wtv",
            Fixture::H264Mp4 => "h264.mp4",
            Fixture::H264Ts => "h264.ts",
            Fixture::TruncatedTs => "truncated.ts",
            Fixture::ZeroByte => "zero-byte.ts",
            Fixture::TextAsVideo => "notes.ts",
        }
    }

    /// The extension of the cached copy, without the dot (`ts`, `wtv` or `mp4`).
    pub fn extension(self) -> &'static str {
        match self {
            Fixture::Wtv => "wtv",
            Fixture::H264Mp4 => "mp4",
            _ => "ts",
        }
    }

    /// The cached file in [`Fixtures::shared`], made on first use. Do not modify it.
    pub fn path(self) -> &'static Path {
        Fixtures::shared().path(self)
    }

    /// Copies the cached fixture to `dir/name`; see [`Fixtures::copy_to`].
    pub fn copy_to(self, dir: &Path, name: &str) -> PathBuf {
        Fixtures::shared().copy_to(self, dir, name)
    }
}

/// A folder of fixtures, each made once, on first use, and then copied as often as needed.
///
/// [`Fixtures::shared`] is the one per test process. Threads asking for the same fixture at
/// once wait for one generation; different fixtures can be made in parallel. Each process has
/// its own folder, so test binaries running at the same time never share half-written files.
#[derive(Debug)]
pub struct Fixtures {
    dir: PathBuf,
    slots: [OnceLock<PathBuf>; 7],
}

const SHARED_PREFIX: &str = "h264-testkit-fixtures-";

impl Fixtures {
    /// The process-wide cache, in a folder `h264-testkit-fixtures-PID` of the system's temporary
    /// folder.
    ///
    /// The folder outlives the process (statics are never dropped); folders left by processes
    /// that no longer exist are removed when the next test process creates its own.
    pub fn shared() -> &'static Fixtures {
        static SHARED: OnceLock<Fixtures> = OnceLock::new();
        SHARED.get_or_init(|| {
            let tmp = std::env::temp_dir();
            remove_stale_shared_dirs(&tmp);
            let dir = tmp.join(format!("{SHARED_PREFIX}{}", std::process::id()));
            // A folder with our PID is left from an earlier process that had the same PID.
            let _ = fs::remove_dir_all(&dir);
            Fixtures::new_in(dir)
        })
    }

    /// A cache in `dir` (created if missing). Files already there are not reused.
    pub fn new_in(dir: PathBuf) -> Fixtures {
        fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create fixture folder {}: {err}", dir.display()));
        Fixtures {
            dir,
            slots: Default::default(),
        }
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached file of `fixture`, made on first use. Do not modify it: copy it with
    /// [`Fixtures::copy_to`].
    pub fn path(&self, fixture: Fixture) -> &Path {
        let slot = &self.slots[fixture as usize];
        slot.get_or_init(|| self.generate(fixture))
    }

    /// Copies `fixture` to `dir/name` and returns that path.
    ///
    /// `name` may be any single file name: spaces, quotes, unicode and a leading `-` are fine.
    /// The copy is written under a hidden temporary name in `dir` and renamed, so it appears
    /// complete at once; an existing `dir/name` is replaced.
    pub fn copy_to(&self, fixture: Fixture, dir: &Path, name: &str) -> PathBuf {
        let src = self.path(fixture);
        check_name(name);
        let tmp = temp_path(dir, name);
        fs::copy(src, &tmp).unwrap_or_else(|err| {
            panic!("cannot copy {} to {}: {err}", src.display(), tmp.display())
        });
        rename(&tmp, &dir.join(name))
    }

    fn generate(&self, fixture: Fixture) -> PathBuf {
        let dir = &self.dir;
        let name = fixture.file_name();
        match fixture {
            Fixture::Mpeg2InterlacedTs => mpeg2_interlaced_ts(dir, name, DEFAULT_SECS),
            Fixture::Wtv => wtv(dir, name, DEFAULT_SECS),
            Fixture::H264Mp4 => h264_mp4(dir, name, DEFAULT_SECS),
            Fixture::H264Ts => h264_ts(dir, name, DEFAULT_SECS),
            Fixture::TruncatedTs => {
                let full = self.path(Fixture::Mpeg2InterlacedTs);
                truncate_copy(full, dir, name, TRUNCATED_FRACTION)
            }
            Fixture::ZeroByte => zero_byte(dir, name),
            Fixture::TextAsVideo => text_as_video(dir, name),
        }
    }
}

/// Removes `h264-testkit-fixtures-PID` folders whose process is gone (Linux only: elsewhere
/// nothing is removed).
fn remove_stale_shared_dirs(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SHARED_PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `-f lavfi` video and audio inputs, limited to `secs` seconds on output.
pub(crate) fn lavfi_inputs(video: &str, rate: &str, tone_hz: u32, secs: f64) -> Vec<OsString> {
    assert!(secs > 0.0, "a fixture must be longer than 0 s, got {secs}");
    os(&[
        "-f",
        "lavfi",
        "-i",
        &format!("{video}=size={SIZE}:rate={rate}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={tone_hz}:sample_rate=48000"),
        "-t",
        &format!("{secs}"),
        "-map",
        "0:v",
        "-map",
        "1:a",
    ])
}

pub(crate) fn mpeg2_interlaced_video() -> Vec<OsString> {
    os(&[
        "-c:v",
        "mpeg2video",
        "-flags",
        "+ilme+ildct",
        "-top",
        "1",
        "-b:v",
        "1500k",
        "-pix_fmt",
        "yuv420p",
    ])
}

/// H.264 High profile: `ultrafast` alone would give Constrained Baseline, `8x8dct` makes it
/// High.
pub(crate) fn h264_aac() -> Vec<OsString> {
    os(&[
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-x264-params",
        "8x8dct=1",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ac",
        "2",
    ])
}

pub(crate) fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Runs FFmpeg with the arguments `args(tmp)` writing to a temporary name in `dir`, then renames
/// the result to `dir/name`.
pub(crate) fn write_with_ffmpeg(
    dir: &Path,
    name: &str,
    args: impl FnOnce(&Path) -> Vec<OsString>,
) -> PathBuf {
    require_ffmpeg();
    check_name(name);
    create_dir(dir);
    let tmp = temp_path(dir, name);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_ffmpeg(args(&tmp))));
    if let Err(panic) = result {
        let _ = fs::remove_file(&tmp);
        std::panic::resume_unwind(panic);
    }
    rename(&tmp, &dir.join(name))
}

pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    check_name(name);
    create_dir(dir);
    let tmp = temp_path(dir, name);
    fs::write(&tmp, bytes).unwrap_or_else(|err| panic!("cannot write {}: {err}", tmp.display()));
    rename(&tmp, &dir.join(name))
}

/// A hidden name beside `dir/name` whose extension no watcher looks for.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.testkit-part"))
}

pub(crate) fn check_name(name: &str) {
    assert!(
        !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
        "{name:?} is not a single file name"
    );
}

fn create_dir(dir: &Path) {
    fs::create_dir_all(dir)
        .unwrap_or_else(|err| panic!("cannot create folder {}: {err}", dir.display()));
}

fn rename(from: &Path, to: &Path) -> PathBuf {
    fs::rename(from, to).unwrap_or_else(|err| {
        panic!(
            "cannot rename {} to {}: {err}",
            from.display(),
            to.display()
        )
    });
    to.to_path_buf()
}

pub(crate) fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

pub(crate) fn remove(path: &Path) {
    fs::remove_file(path).unwrap_or_else(|err| panic!("cannot remove {}: {err}", path.display()));
}
