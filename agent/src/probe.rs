//! What a media file holds, according to `ffprobe`, and whether its packets are intact.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::child::{run_captured, tail_lines, RunError};
use crate::ffarg::input_arg;

/// The facts about a media file the pipeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// The container format as ffprobe names it (`mpegts`, `mov,mp4,m4a,3gp,3g2,mj2`, `wtv`).
    pub format_name: String,
    /// Duration in seconds (0 when unknown).
    pub duration: f64,
    /// The first video stream.
    pub video: Option<VideoStream>,
    /// Every audio stream.
    pub audio: Vec<AudioStream>,
}

/// A video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    /// Codec name (`h264`, `mpeg2video`).
    pub codec: String,
    /// Codec profile (`High`, `Main`).
    pub profile: String,
    /// Pixel format (`yuv420p`).
    pub pix_fmt: String,
    /// `progressive`, `tt`, `bb`, `tb`, `bt` or empty when unknown.
    pub field_order: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether the decoder found CEA-608/708 closed captions in the video.
    pub closed_captions: bool,
}

impl VideoStream {
    /// Whether the stream is coded as interlaced fields.
    pub fn is_interlaced(&self) -> bool {
        matches!(self.field_order.as_str(), "tt" | "bb" | "tb" | "bt")
    }
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    /// Codec name (`aac`, `mp2`, `ac3`).
    pub codec: String,
}

/// Why a probe gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ffprobe could not run, timed out or was cancelled.
    #[error(transparent)]
    Run(#[from] RunError),
    /// ffprobe ran and said the file is not media it can read.
    #[error("ffprobe cannot read it as media: {0}")]
    Unreadable(String),
}

#[derive(Deserialize)]
struct Json {
    #[serde(default)]
    streams: Vec<JsonStream>,
    #[serde(default)]
    format: Option<JsonFormat>,
}

#[derive(Deserialize)]
struct JsonFormat {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    pix_fmt: String,
    #[serde(default)]
    field_order: String,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    #[serde(default)]
    closed_captions: u8,
    #[serde(default)]
    disposition: Option<serde_json::Value>,
}

/// Runs `ffprobe` on `path`.
pub async fn probe(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<MediaInfo, ProbeError> {
    let mut cmd = Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
    ]);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    if !out.status.success() {
        let why = tail_lines(&out.stderr, 3);
        return Err(ProbeError::Unreadable(if why.is_empty() {
            format!("ffprobe exited with {}", out.status)
        } else {
            why
        }));
    }
    parse(&out.stdout).map_err(ProbeError::Unreadable)
}

fn parse(json: &[u8]) -> Result<MediaInfo, String> {
    let parsed: Json =
        serde_json::from_slice(json).map_err(|e| format!("unexpected ffprobe output: {e}"))?;
    let format = parsed.format.ok_or("ffprobe found no container format")?;
    let duration = format
        .duration
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    let is_attached_pic = |s: &JsonStream| {
        s.disposition
            .as_ref()
            .and_then(|d| d.get("attached_pic"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            == 1
    };
    let video = parsed
        .streams
        .iter()
        .find(|s| s.codec_type == "video" && !is_attached_pic(s))
        .map(|s| VideoStream {
            codec: s.codec_name.clone(),
            profile: s.profile.clone(),
            pix_fmt: s.pix_fmt.clone(),
            field_order: s.field_order.clone(),
            width: s.width,
            height: s.height,
            closed_captions: s.closed_captions == 1,
        });
    let audio = parsed
        .streams
        .iter()
        .filter(|s| s.codec_type == "audio")
        .map(|s| AudioStream {
            codec: s.codec_name.clone(),
        })
        .collect();
    Ok(MediaInfo {
        format_name: format.format_name,
        duration,
        video,
        audio,
    })
}

/// How many frames [`has_closed_captions`] decodes: FFmpeg reports captions only once it has
/// decoded pictures that carry them, and decoding a whole recording to ask would be too slow.
pub const CAPTION_PROBE_FRAMES: u32 = 60;

/// Whether the first video frames of `path` carry CEA-608/708 closed captions.
pub async fn has_closed_captions(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<bool, RunError> {
    let mut cmd = Command::new(ffprobe);
    cmd.args(["-v", "error", "-select_streams", "v:0", "-count_frames"]);
    cmd.arg("-read_intervals")
        .arg(format!("%+#{CAPTION_PROBE_FRAMES}"));
    cmd.args([
        "-show_entries",
        "stream=closed_captions",
        "-print_format",
        "json",
    ]);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    let parsed: Result<Json, _> = serde_json::from_slice(&out.stdout);
    Ok(parsed.is_ok_and(|j| j.streams.iter().any(|s| s.closed_captions == 1)))
}

/// Damage found by reading every packet of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Integrity {
    /// How many damage reports the demuxer made (corrupt packets, size mismatches, errors).
    pub errors: u32,
    /// A few of those reports, for the error message.
    pub sample: String,
    /// Whether an MPEG transport stream ends in the middle of a packet (a cut-off recording).
    pub truncated_ts: bool,
}

/// Reads every packet of `path` (no decoding: fast, bounded by disk speed) and counts damage.
pub async fn check_integrity(
    ffmpeg: &Path,
    path: &Path,
    info: &MediaInfo,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Integrity, RunError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-v", "warning"]);
    cmd.arg("-i").arg(input_arg(path));
    cmd.args(["-map", "0", "-c", "copy", "-f", "null", "-"]);
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    let damage: Vec<&str> = out.stderr.lines().filter(|l| is_damage_report(l)).collect();
    let truncated_ts = info.format_name.split(',').any(|f| f == "mpegts")
        && std::fs::metadata(path)
            .map(|m| ts_ends_mid_packet(m.len()))
            .unwrap_or(false);
    Ok(Integrity {
        errors: u32::try_from(damage.len()).unwrap_or(u32::MAX),
        sample: damage
            .iter()
            .take(3)
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
        truncated_ts,
    })
}

fn is_damage_report(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "corrupt", "mismatch", "invalid", "error", "truncat", "damaged",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// A transport stream is a sequence of 188-byte packets (192 with the M2TS time code).
fn ts_ends_mid_packet(len: u64) -> bool {
    len % 188 != 0 && len % 192 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_json() {
        let json =
            br#"{"streams":[{"codec_type":"video","codec_name":"mpeg2video","profile":"Main",
            "pix_fmt":"yuv420p","field_order":"tt","width":320,"height":240},
            {"codec_type":"audio","codec_name":"mp2"}],
            "format":{"format_name":"mpegts","duration":"3.013"}}"#;
        let info = parse(json).unwrap();
        assert_eq!(info.format_name, "mpegts");
        assert!((info.duration - 3.013).abs() < 1e-9);
        assert!(info.video.as_ref().unwrap().is_interlaced());
        assert_eq!(info.audio.len(), 1);
    }

    #[test]
    fn transport_stream_alignment() {
        assert!(!ts_ends_mid_packet(188 * 1000));
        assert!(!ts_ends_mid_packet(192 * 1000));
        assert!(ts_ends_mid_packet(188 * 1000 + 103));
    }
}
