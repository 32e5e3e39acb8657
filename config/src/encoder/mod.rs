//! Typed encoder settings: what a fleet manifest or an agent's file may ask of FFmpeg, each
//! value checked, so that no setting can make FFmpeg read, write or send a file.
//!
//! A fleet sets only typed keys (`tune`, `x264_params`, `keyframe_interval`, `maxrate` and
//! `bufsize`, `max_height`, `frame_rate`, `audio_channels`, `audio_sample_rate`, plus the older
//! `preset`, `crf`, …); the agent turns them into FFmpeg arguments. Free-form arguments exist only
//! as `transcode.local_ffmpeg_args` in an agent's own file, checked by [`local_args`]. The old
//! `extra_args` is refused wherever it appears, naming the typed key that replaces each option
//! ([`legacy`]).

pub mod legacy;
pub mod local_args;
pub mod x264;

use std::time::Duration;

use crate::agent::Transcode;
use crate::problem::Problem;

pub use local_args::check_local_args;
pub use x264::X264_PARAMS;

/// The largest `transcode.duration_tolerance`: an output may be at most this much shorter or
/// longer than its source. A wider tolerance would let outputs that lost part of the recording
/// pass verification, and the source be deleted.
pub const MAX_DURATION_TOLERANCE: Duration = Duration::from_secs(2);

/// x264's tunings.
pub const TUNES: [&str; 8] = [
    "film",
    "animation",
    "grain",
    "stillimage",
    "fastdecode",
    "zerolatency",
    "psnr",
    "ssim",
];

/// Audio sample rates AAC encodes.
pub const SAMPLE_RATES: [u32; 12] = [
    8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000,
];

/// Whether the settings change the video, so that a compliant H.264 source cannot be copied.
pub fn reencodes_video(t: &Transcode) -> bool {
    t.tune.is_some()
        || t.x264_params.is_some()
        || t.keyframe_interval.is_some()
        || t.maxrate.is_some()
        || t.max_height.is_some()
        || t.frame_rate.is_some()
        || local_args::reencodes_any(&free_form_args(t))
}

/// The free-form FFmpeg output arguments of an agent's own file: the deprecated `extra_args`,
/// then `local_ffmpeg_args`.
pub fn free_form_args(t: &Transcode) -> Vec<String> {
    t.extra_args
        .iter()
        .chain(&t.local_ffmpeg_args)
        .cloned()
        .collect()
}

/// Whether the settings change the audio, so that AAC cannot be copied.
pub fn reencodes_audio(t: &Transcode) -> bool {
    t.audio_channels.is_some() || t.audio_sample_rate.is_some()
}

/// Every problem with the encoder settings of `t`.
pub(crate) fn check(t: &Transcode, out: &mut Vec<Problem>) {
    if t.duration_tolerance.get() > MAX_DURATION_TOLERANCE {
        let message = format!(
            "{} is longer than the largest allowed, 2s: an output that lost part of the recording would pass verification and its source could be deleted",
            t.duration_tolerance
        );
        let hint = "500ms is usual; 2s at most";
        out.push(Problem::error("transcode.duration_tolerance", message).with_hint(hint));
    }
    if let Some(tune) = &t.tune {
        super::validate::one_of(out, "transcode.tune", tune, &TUNES);
    }
    if let Some(params) = &t.x264_params {
        x264::check(params, out);
    }
    if let Some(n) = t.keyframe_interval {
        if !(1..=1000).contains(&n) {
            let message = format!("{n} is out of range 1-1000");
            let hint = "frames between keyframes; twice the frame rate (2 s) is usual";
            out.push(Problem::error("transcode.keyframe_interval", message).with_hint(hint));
        }
    }
    for (key, value) in [
        ("transcode.maxrate", &t.maxrate),
        ("transcode.bufsize", &t.bufsize),
    ] {
        if let Some(v) = value {
            if !is_bitrate(v) {
                let hint = r#"bits per second with an optional k or M, like "4M" or "4000k""#;
                out.push(Problem::error(key, format!("`{v}` is not a bitrate")).with_hint(hint));
            }
        }
    }
    match (&t.maxrate, &t.bufsize) {
        (Some(_), None) => out.push(
            Problem::error("transcode.maxrate", "is set without transcode.bufsize")
                .with_hint("x264 needs both; bufsize is often twice maxrate"),
        ),
        (None, Some(_)) => out.push(
            Problem::error("transcode.bufsize", "is set without transcode.maxrate")
                .with_hint("x264 needs both; bufsize is often twice maxrate"),
        ),
        _ => {}
    }
    if let Some(h) = t.max_height {
        if !(16..=4320).contains(&h) || h % 2 != 0 {
            let message = format!("{h} is not an even height between 16 and 4320");
            let hint = "like 720 or 1080";
            out.push(Problem::error("transcode.max_height", message).with_hint(hint));
        }
    }
    if let Some(rate) = &t.frame_rate {
        if frame_rate(rate).is_none_or(|fps| !(1.0..=240.0).contains(&fps)) {
            let message = format!("`{rate}` is not a frame rate between 1 and 240");
            let hint = r#"like "25", "30000/1001" or "29.97""#;
            out.push(Problem::error("transcode.frame_rate", message).with_hint(hint));
        }
    }
    if let Some(n) = t.audio_channels {
        if !(1..=8).contains(&n) {
            let message = format!("{n} is out of range 1-8");
            out.push(Problem::error("transcode.audio_channels", message).with_hint("2 is stereo"));
        }
    }
    if let Some(rate) = t.audio_sample_rate {
        if !SAMPLE_RATES.contains(&rate) {
            let list: Vec<String> = SAMPLE_RATES.iter().map(u32::to_string).collect();
            let message = format!("{rate} Hz is not a sample rate AAC encodes");
            let hint = format!("one of: {}", list.join(", "));
            out.push(Problem::error("transcode.audio_sample_rate", message).with_hint(hint));
        }
    }
    legacy::check_local(&t.extra_args, out);
    check_local_args(&t.local_ffmpeg_args, "transcode.local_ffmpeg_args", out);
}

/// `4M`, `4000k`, `4000000`.
fn is_bitrate(text: &str) -> bool {
    let digits = text.strip_suffix(['k', 'K', 'M']).unwrap_or(text);
    !digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `25`, `29.97`, `30000/1001` as frames per second.
pub fn frame_rate(text: &str) -> Option<f64> {
    let number = |s: &str| -> Option<f64> {
        let ok = !s.is_empty()
            && s.len() <= 12
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|b| *b == b'.').count() <= 1;
        ok.then(|| s.parse().ok()).flatten()
    };
    match text.split_once('/') {
        Some((n, d)) => {
            let (n, d) = (number(n)?, number(d)?);
            (d > 0.0).then(|| n / d)
        }
        None => number(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_and_bitrates() {
        assert_eq!(frame_rate("25"), Some(25.0));
        assert!(frame_rate("30000/1001").is_some_and(|f| (f - 29.97).abs() < 0.01));
        for bad in ["", "x", "1/0", "-5", "25;", "1.2.3"] {
            assert!(frame_rate(bad).is_none_or(|f| f <= 0.0), "{bad}");
        }
        assert!(is_bitrate("4M") && is_bitrate("4000k") && is_bitrate("4000000"));
        assert!(!is_bitrate("4 M") && !is_bitrate("M") && !is_bitrate("file:/x"));
    }
}
