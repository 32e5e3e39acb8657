//! `transcode.extra_args`, the old free-form FFmpeg arguments. From a fleet manifest (or an
//! assignment) each option is refused with the typed setting that replaces it, or with
//! `transcode.local_ffmpeg_args` (an agent's own file) when none does. In an agent's own file it
//! is read as `local_ffmpeg_args`, with the same checks and a warning to rename it.

use crate::problem::Problem;

/// FFmpeg options of old `extra_args` and the typed key that replaces each.
const REPLACED_BY: &[(&str, &str)] = &[
    ("tune", "transcode.tune"),
    ("x264-params", "transcode.x264_params"),
    ("x264opts", "transcode.x264_params"),
    ("g", "transcode.keyframe_interval"),
    ("maxrate", "transcode.maxrate"),
    ("bufsize", "transcode.bufsize"),
    ("s", "transcode.max_height"),
    ("r", "transcode.frame_rate"),
    ("ac", "transcode.audio_channels"),
    ("ar", "transcode.audio_sample_rate"),
    ("crf", "transcode.crf"),
    ("preset", "transcode.preset"),
    ("profile", "transcode.profile"),
    ("level", "transcode.level"),
    ("pix_fmt", "transcode.pix_fmt"),
    (
        "b",
        "transcode.audio_bitrate (audio) or transcode.maxrate (video)",
    ),
    (
        "vf",
        "transcode.max_height (scaling) or transcode.frame_rate (fps)",
    ),
    (
        "filter",
        "transcode.max_height (scaling) or transcode.frame_rate (fps)",
    ),
    ("movflags", "remove it: the agent always writes +faststart"),
];

const WHY: &str = "free-form FFmpeg arguments are no longer accepted: they could make FFmpeg read, write or send any file on every agent";

/// In an agent's own file: a warning to rename it, and the checks of `local_ffmpeg_args`.
pub(super) fn check_local(args: &[String], out: &mut Vec<Problem>) {
    if args.is_empty() {
        return;
    }
    let message = "is deprecated: it is read as transcode.local_ffmpeg_args, and a fleet manifest can no longer set it";
    let hint = "rename it to local_ffmpeg_args, or use the typed transcode settings (tune, x264_params, keyframe_interval, maxrate, bufsize, max_height, frame_rate, audio_channels, audio_sample_rate)";
    out.push(Problem::warning("transcode.extra_args", message).with_hint(hint));
    super::check_local_args(args, "transcode.extra_args", out);
}

/// From a fleet: one error per option of a non-empty `extra_args`.
pub fn check_fleet(args: &[String], out: &mut Vec<Problem>) {
    let mut any = false;
    for (n, arg) in args.iter().enumerate() {
        let Some(name) = arg
            .strip_prefix('-')
            .map(|r| r.split(':').next().unwrap_or(r))
        else {
            continue;
        };
        any = true;
        let key = format!("transcode.extra_args[{n}]");
        let hint = match REPLACED_BY.iter().find(|(k, _)| *k == name) {
            Some((_, typed)) if typed.starts_with("transcode.") => {
                format!("use {typed} instead, and remove extra_args")
            }
            Some((_, what)) => (*what).to_owned(),
            None => "no typed setting replaces it: an operator may put it in transcode.local_ffmpeg_args of an agent's own agent.toml, where it is checked; remove extra_args".to_owned(),
        };
        out.push(Problem::error(key, format!("`{arg}`: {WHY}")).with_hint(hint));
    }
    if !any && !args.is_empty() {
        let hint = "use the typed transcode settings (tune, x264_params, keyframe_interval, maxrate, bufsize, max_height, frame_rate, audio_channels, audio_sample_rate); remove extra_args";
        out.push(Problem::error("transcode.extra_args", WHY).with_hint(hint));
    }
}
