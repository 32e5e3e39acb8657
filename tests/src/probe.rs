//! What `ffprobe` says about a file, and the order of an MP4's top-level boxes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::ffmpeg::{file_arg, require_ffmpeg};

/// The parts of `ffprobe -show_format -show_streams` that tests check.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// `format.format_name`, e.g. `mpegts`, `wtv` or `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format_name: String,
    /// `format.duration` in seconds; the longest stream's duration if the format has none, and
    /// 0.0 if no duration is known at all.
    pub duration: f64,
    /// The first video stream, if any (attached pictures such as cover art are not counted).
    pub video: Option<VideoInfo>,
    /// Every audio stream, in file order.
    pub audio: Vec<AudioInfo>,
    /// The number of streams of any kind.
    pub stream_count: usize,
}

/// A video stream.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// `codec_name`, e.g. `h264` or `mpeg2video`.
    pub codec: String,
    /// `profile`, e.g. `High` or `Main`.
    pub profile: Option<String>,
    /// `pix_fmt`, e.g. `yuv420p`.
    pub pix_fmt: Option<String>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `field_order`: `progressive`, `tt`, `bb`, `tb` or `bt`, when ffprobe knows it.
    pub field_order: Option<String>,
    /// `avg_frame_rate` (or `r_frame_rate`) in frames per second, when known.
    pub frame_rate: Option<f64>,
}

impl VideoInfo {
    /// Whether `field_order` names an interlaced order (`tt`, `bb`, `tb`, `bt`).
    pub fn is_interlaced(&self) -> bool {
        matches!(self.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt"))
    }
}

/// An audio stream.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioInfo {
    /// `codec_name`, e.g. `aac`, `ac3` or `mp2`.
    pub codec: String,
    /// Number of channels.
    pub channels: u32,
    /// Sample rate in Hz, when known.
    pub sample_rate: Option<u32>,
}

/// Probes `path` with `ffprobe -v error -print_format json -show_format -show_streams`.
///
/// Panics with ffprobe's message if it fails (as it does for a zero-byte or text file); use
/// [`try_probe`] to check that a file is *not* media.
pub fn probe(path: &Path) -> MediaInfo {
    try_probe(path).unwrap_or_else(|message| panic!("{message}"))
}

/// Like [`probe`], but returns ffprobe's failure as an error.
pub fn try_probe(path: &Path) -> Result<MediaInfo, String> {
    require_ffmpeg();
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file_arg(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("could not run ffprobe: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "ffprobe failed on {} ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("ffprobe printed invalid JSON for {}: {err}", path.display()))?;
    Ok(parse(&json))
}

/// Builds a [`MediaInfo`] from ffprobe's JSON (`-show_format -show_streams`).
pub fn parse(json: &Value) -> MediaInfo {
    let format = &json["format"];
    let streams: &[Value] = json["streams"].as_array().map_or(&[], Vec::as_slice);

    let video = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .find(|s| s["disposition"]["attached_pic"].as_i64() != Some(1))
        .map(|s| VideoInfo {
            codec: string(&s["codec_name"]).unwrap_or_default(),
            profile: string(&s["profile"]),
            pix_fmt: string(&s["pix_fmt"]),
            width: number(&s["width"]).unwrap_or(0.0) as u32,
            height: number(&s["height"]).unwrap_or(0.0) as u32,
            field_order: string(&s["field_order"]),
            frame_rate: rate(&s["avg_frame_rate"]).or_else(|| rate(&s["r_frame_rate"])),
        });

    let audio = streams
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .map(|s| AudioInfo {
            codec: string(&s["codec_name"]).unwrap_or_default(),
            channels: number(&s["channels"]).unwrap_or(0.0) as u32,
            sample_rate: number(&s["sample_rate"]).map(|r| r as u32),
        })
        .collect();

    let duration = number(&format["duration"])
        .or_else(|| {
            streams
                .iter()
                .filter_map(|s| number(&s["duration"]))
                .reduce(f64::max)
        })
        .unwrap_or(0.0);

    MediaInfo {
        format_name: string(&format["format_name"]).unwrap_or_default(),
        duration,
        video,
        audio,
        stream_count: streams.len(),
    }
}

fn string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// A JSON number, or a string holding one (ffprobe prints durations and rates as strings).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `"30000/1001"` as 29.97; `None` for `0/0` and malformed rates.
fn rate(value: &Value) -> Option<f64> {
    let (num, den) = value.as_str()?.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

/// One top-level box of an ISO BMFF (MP4) file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mp4Box {
    /// The four-character type, e.g. `ftyp`, `moov`, `mdat` (non-ASCII bytes are replaced).
    pub kind: String,
    /// Offset of the box header in the file.
    pub offset: u64,
    /// Size of the whole box, header included.
    pub size: u64,
}

/// The top-level boxes of the MP4 at `path`, in file order.
///
/// Reads only the box headers: a 32-bit size and a type, followed by a 64-bit `largesize` when
/// the size is 1; a size of 0 means the box runs to the end of the file. Fails on a size
/// smaller than its header or a box that runs past the end of the file (a truncated MP4).
pub fn top_level_boxes(path: &Path) -> io::Result<Vec<Mp4Box>> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut boxes = Vec::new();
    let mut offset = 0u64;
    while offset < file_len {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if file_len - offset < 8 {
            return Err(invalid(format!(
                "{} bytes of garbage at offset {offset}, too short for a box header",
                file_len - offset
            )));
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let kind = String::from_utf8_lossy(&header[4..8]).into_owned();
        let (size, header_len) = match size32 {
            0 => (file_len - offset, 8),
            1 => {
                let mut large = [0u8; 8];
                file.read_exact(&mut large)?;
                (u64::from_be_bytes(large), 16)
            }
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return Err(invalid(format!(
                "box {kind:?} at offset {offset} has size {size}, smaller than its header"
            )));
        }
        if size > file_len - offset {
            return Err(invalid(format!(
                "box {kind:?} at offset {offset} has size {size} but only {} bytes remain",
                file_len - offset
            )));
        }
        boxes.push(Mp4Box { kind, offset, size });
        offset += size;
    }
    Ok(boxes)
}

/// Whether the MP4 at `path` has its `moov` box before its (first) `mdat` box, as
/// `-movflags +faststart` writes it.
///
/// False if either box is missing. Panics if the file cannot be read or its boxes are
/// malformed.
pub fn moov_before_mdat(path: &Path) -> bool {
    let boxes = top_level_boxes(path)
        .unwrap_or_else(|err| panic!("cannot read MP4 boxes of {}: {err}", path.display()));
    let position = |kind: &str| boxes.iter().position(|b| b.kind == kind);
    match (position("moov"), position("mdat")) {
        (Some(moov), Some(mdat)) => moov < mdat,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn large_boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = 1u32.to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        file
    }

    #[test]
    fn reads_64_bit_largesize_and_to_end_boxes() {
        let mut bytes = boxed(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(large_boxed(b"mdat", &[7; 100]));
        bytes.extend(boxed(b"moov", &[0; 20]));
        let file = write(&bytes);
        let boxes = top_level_boxes(file.path()).unwrap();
        let kinds: Vec<&str> = boxes.iter().map(|b| b.kind.as_str()).collect();
        assert_eq!(kinds, ["ftyp", "mdat", "moov"]);
        assert_eq!(boxes[1].size, 116);
        assert!(!moov_before_mdat(file.path()));

        let mut bytes = boxed(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(boxed(b"moov", &[0; 20]));
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(b"mdat");
        bytes.extend_from_slice(&[1; 50]);
        let file = write(&bytes);
        assert!(moov_before_mdat(file.path()));
    }

    #[test]
    fn rejects_truncated_and_missing_boxes() {
        let mut bytes = boxed(b"ftyp", b"isom\0\0\0\0");
        bytes.extend(boxed(b"mdat", &[7; 100]));
        bytes.truncate(bytes.len() - 10);
        let file = write(&bytes);
        assert!(top_level_boxes(file.path()).is_err());

        let file = write(&boxed(b"ftyp", b"isom\0\0\0\0"));
        assert!(!moov_before_mdat(file.path()));
    }

    #[test]
    fn parses_ffprobe_json() {
        let json: Value = serde_json::from_str(
            r#"{"streams": [
                {"codec_type": "video", "codec_name": "mpeg2video", "profile": "Main",
                 "width": 320, "height": 240, "pix_fmt": "yuv420p", "field_order": "tt",
                 "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001"},
                {"codec_type": "audio", "codec_name": "ac3", "channels": 2,
                 "sample_rate": "48000"}],
                "format": {"format_name": "mpegts", "duration": "3.008334"}}"#,
        )
        .unwrap();
        let info = parse(&json);
        assert_eq!(info.format_name, "mpegts");
        assert!((info.duration - 3.008334).abs() < 1e-9);
        let video = info.video.unwrap();
        assert_eq!(video.codec, "mpeg2video");
        assert!(video.is_interlaced());
        assert!((video.frame_rate.unwrap() - 29.97).abs() < 0.01);
        assert_eq!(info.audio[0].channels, 2);
        assert_eq!(info.audio[0].sample_rate, Some(48000));
    }
}
