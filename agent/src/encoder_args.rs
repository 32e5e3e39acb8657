//! FFmpeg arguments of the typed encoder settings (`tune`, `x264_params`, `keyframe_interval`,
//! `maxrate`/`bufsize`, `max_height`, `frame_rate`, `audio_channels`, `audio_sample_rate`),
//! validated by the config crate before they get here, and the guard that keeps FFmpeg and
//! ffprobe to local files and pipes.

use h264_config::agent::Transcode;

/// Input options that let FFmpeg and ffprobe open only local files, pipes and byte ranges of
/// local files (`subfile`): a source whose bytes name a URL (a playlist, a reference movie) is
/// never fetched. Placed before every `-i` (and every ffprobe input).
pub const LOCAL_ONLY: [&str; 2] = ["-protocol_whitelist", "file,pipe,subfile"];

/// The video filters the typed settings add (after deinterlacing, before retiming). The frame
/// rate is a filter, not `-r`: the MP4 is written with variable-rate timestamps
/// (`-fps_mode vfr`), under which `-r` would change nothing.
pub fn video_filters(cfg: &Transcode) -> Vec<String> {
    let mut filters = Vec::new();
    if let Some(rate) = &cfg.frame_rate {
        filters.push(format!("fps={rate}"));
    }
    if let Some(h) = cfg.max_height {
        filters.push(format!("scale=-2:'min(ih,{h})'"));
    }
    filters
}

/// libx264 options of the typed settings (after `-crf`).
pub fn video_options(cfg: &Transcode) -> Vec<String> {
    let mut a = Vec::new();
    let mut push = |k: &str, v: &str| a.extend([k.to_owned(), v.to_owned()]);
    if let Some(tune) = &cfg.tune {
        push("-tune", tune);
    }
    if let Some(params) = &cfg.x264_params {
        push("-x264-params", params);
    }
    if let Some(g) = cfg.keyframe_interval {
        push("-g", &g.to_string());
    }
    if let (Some(max), Some(buf)) = (&cfg.maxrate, &cfg.bufsize) {
        push("-maxrate", max);
        push("-bufsize", buf);
    }
    a
}

/// AAC options of the typed settings (after `-b:a`).
pub fn audio_options(cfg: &Transcode) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(n) = cfg.audio_channels {
        a.extend(["-ac".to_owned(), n.to_string()]);
    }
    if let Some(rate) = cfg.audio_sample_rate {
        a.extend(["-ar".to_owned(), rate.to_string()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_settings_become_arguments() {
        let cfg = Transcode {
            tune: Some("film".into()),
            x264_params: Some("ref=4".into()),
            keyframe_interval: Some(50),
            maxrate: Some("4M".into()),
            bufsize: Some("8M".into()),
            max_height: Some(720),
            frame_rate: Some("25".into()),
            audio_channels: Some(2),
            audio_sample_rate: Some(48000),
            ..Transcode::default()
        };
        assert_eq!(
            video_options(&cfg).join(" "),
            "-tune film -x264-params ref=4 -g 50 -maxrate 4M -bufsize 8M"
        );
        assert_eq!(video_filters(&cfg), ["fps=25", "scale=-2:'min(ih,720)'"]);
        assert_eq!(audio_options(&cfg).join(" "), "-ac 2 -ar 48000");
        assert!(video_options(&Transcode::default()).is_empty());
    }
}
