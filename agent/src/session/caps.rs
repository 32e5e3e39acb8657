//! What this agent can do, as told to the controller in the hello (`encoder.libx264`,
//! `encoder.aac`, `captions.ffmpeg`, `captions.ccextractor`), and whether a configuration asks
//! for something it cannot do: an encoder this FFmpeg lacks, or CCExtractor where none is
//! installed. Detected at each connection, so installing a tool counts from the next one.
//!
//! FFmpeg lists every encoder it was built with, usable or not: an `h264_nvenc` on a host
//! without the GPU is listed too. So hardware H.264 encoders (every H.264 encoder but the
//! `lib*` software ones) count only when a one-frame test encode works; each is tried once per
//! process (the results are carried from one detection to the next).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use h264_config::agent::CaptionTool;
use h264_config::AgentConfig;
use tokio_util::sync::CancellationToken;

/// The video encoder the agent uses unless `extra_args` chooses another.
const VIDEO_ENCODER: &str = "libx264";
/// The audio encoder the agent uses unless `extra_args` chooses another.
const AUDIO_ENCODER: &str = "aac";

/// The tools and encoders found on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Every encoder FFmpeg lists, less the hardware H.264 encoders that failed their test
    /// encode; `None` when the list could not be read (then encoders are not checked: unknown is
    /// not missing).
    pub encoders: Option<BTreeSet<String>>,
    /// The usable H.264 encoders among them, reported in the hello.
    pub h264: BTreeSet<String>,
    /// Whether CCExtractor was found (configured path or `PATH`).
    pub ccextractor: bool,
    /// The hardware encoders tried, and whether each worked.
    pub tried: BTreeMap<String, bool>,
}

/// A configuration asks for what this host cannot do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The key that asks for it.
    pub field: String,
    /// What is missing.
    pub message: String,
}

impl Capabilities {
    /// Asks FFmpeg for its encoders and looks for CCExtractor; hardware encoders already tried
    /// in `earlier` are not tried again.
    pub async fn detect(config: &AgentConfig, earlier: &Capabilities) -> Self {
        let mut tried = earlier.tried.clone();
        let mut cmd = tokio::process::Command::new(&config.transcode.ffmpeg);
        cmd.args(["-hide_banner", "-encoders"]);
        let listed = crate::plumbing::child::run_captured(
            &mut cmd,
            Duration::from_secs(20),
            &CancellationToken::new(),
        )
        .await;
        let (encoders, h264) = match listed {
            Ok(out) if out.status.success() => {
                let (mut all, mut h264) = parse_encoders(&String::from_utf8_lossy(&out.stdout));
                let hardware: Vec<String> = h264
                    .iter()
                    .filter(|e| !e.starts_with("lib"))
                    .cloned()
                    .collect();
                for encoder in hardware {
                    let works = match tried.get(&encoder) {
                        Some(works) => *works,
                        None => encodes(config, &encoder).await,
                    };
                    tried.insert(encoder.clone(), works);
                    if !works {
                        tracing::debug!(
                            encoder,
                            "a hardware encoder FFmpeg lists does not work here"
                        );
                        all.remove(&encoder);
                        h264.remove(&encoder);
                    }
                }
                (Some(all), h264)
            }
            Ok(out) => {
                tracing::warn!(status = %out.status, "FFmpeg did not list its encoders; they are not checked");
                (None, BTreeSet::new())
            }
            Err(e) => {
                tracing::warn!(error = %e, "FFmpeg did not list its encoders; they are not checked");
                (None, BTreeSet::new())
            }
        };
        Self {
            encoders,
            h264,
            ccextractor: config.captions.find_ccextractor().is_some(),
            tried,
        }
    }

    /// The names reported in the hello.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.h264.iter().map(|e| format!("encoder.{e}")).collect();
        if let Some(all) = &self.encoders {
            if all.contains(AUDIO_ENCODER) {
                names.push(format!("encoder.{AUDIO_ENCODER}"));
            }
            names.push("captions.ffmpeg".into());
        }
        if self.ccextractor {
            names.push("captions.ccextractor".into());
        }
        names
    }

    /// What `config` needs that this host lacks; empty when it can run it.
    pub fn missing(&self, config: &AgentConfig) -> Vec<Missing> {
        let mut out = Vec::new();
        let t = &config.transcode;
        if let Some(all) = &self.encoders {
            let wanted = [
                (chosen(&t.extra_args, VIDEO), VIDEO_ENCODER),
                (chosen(&t.extra_args, AUDIO), AUDIO_ENCODER),
            ];
            for (from_args, default) in wanted {
                let (field, encoder) = match from_args {
                    Some(e) => ("transcode.extra_args", e),
                    None => ("transcode", default),
                };
                if encoder != "copy" && !all.contains(encoder) {
                    out.push(Missing {
                        field: field.into(),
                        message: format!("the encoder {encoder} is not in this host's FFmpeg"),
                    });
                }
            }
        }
        let c = &config.captions;
        let wants_bin = c.formats.iter().any(|f| f == "bin") && c.tool != CaptionTool::Ffmpeg;
        if wants_bin && !self.ccextractor {
            out.push(Missing {
                field: "captions.formats".into(),
                message: "\"bin\" sidecars need CCExtractor, which this host does not have".into(),
            });
        }
        if c.tool == CaptionTool::Ccextractor && !self.ccextractor {
            out.push(Missing {
                field: "captions.tool".into(),
                message: "\"ccextractor\" is not installed on this host".into(),
            });
        }
        out
    }
}

/// Whether `encoder` encodes one small frame.
async fn encodes(config: &AgentConfig, encoder: &str) -> bool {
    let mut cmd = tokio::process::Command::new(&config.transcode.ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
    ])
    .arg("color=size=256x144:rate=25")
    .args(["-frames:v", "1", "-c:v", encoder, "-f", "null", "-"]);
    let cancel = CancellationToken::new();
    let run = crate::plumbing::child::run_captured(&mut cmd, Duration::from_secs(10), &cancel);
    matches!(run.await, Ok(out) if out.status.success())
}

/// FFmpeg options that choose the video or the audio encoder.
const VIDEO: &[&str] = &["-c:v", "-codec:v", "-vcodec", "-c:v:0", "-codec:v:0"];
const AUDIO: &[&str] = &["-c:a", "-codec:a", "-acodec", "-c:a:0", "-codec:a:0"];

/// The encoder the last of `options` in `args` chooses (FFmpeg takes the last one).
fn chosen<'a>(args: &'a [String], options: &[&str]) -> Option<&'a str> {
    args.windows(2)
        .rev()
        .find(|pair| options.contains(&pair[0].as_str()))
        .map(|pair| pair[1].as_str())
}

/// Every encoder in `ffmpeg -encoders` output, and the H.264 ones.
fn parse_encoders(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all = BTreeSet::new();
    let mut h264 = BTreeSet::new();
    // The list follows a " ------" line; each entry is " FLAGS name description".
    let entries = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("---"))
        .skip(1);
    for line in entries {
        let mut parts = line.split_whitespace();
        let (Some(_flags), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let description: Vec<&str> = parts.collect();
        if description.join(" ").contains("(codec h264)") {
            h264.insert(name.to_owned());
        }
        all.insert(name.to_owned());
    }
    (all, h264)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "Encoders:
 V..... = Video
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V....D mpeg2video           MPEG-2 video
 A....D aac                  AAC (Advanced Audio Coding)
 S..... subrip               SubRip subtitle
";

    fn caps() -> Capabilities {
        let (all, h264) = parse_encoders(LIST);
        Capabilities {
            encoders: Some(all),
            h264,
            ..Capabilities::default()
        }
    }

    #[test]
    fn reads_ffmpeg_encoders() {
        assert_eq!(
            caps().names(),
            [
                "encoder.h264_nvenc",
                "encoder.libx264",
                "encoder.aac",
                "captions.ffmpeg"
            ]
        );
    }

    #[test]
    fn finds_what_a_config_lacks() {
        let mut config = AgentConfig::default();
        assert_eq!(caps().missing(&config), []);
        config.transcode.extra_args = ["-c:v", "h264_nvenc"].map(String::from).to_vec();
        assert_eq!(caps().missing(&config), []);
        config.transcode.extra_args = ["-c:v", "h264_qsv", "-c:a", "copy"]
            .map(String::from)
            .to_vec();
        let missing = caps().missing(&config);
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].field, "transcode.extra_args");
        assert!(missing[0].message.contains("h264_qsv"));

        let mut config = AgentConfig::default();
        config.captions.formats = vec!["srt".into(), "bin".into()];
        let fields: Vec<_> = caps()
            .missing(&config)
            .into_iter()
            .map(|m| m.field)
            .collect();
        assert_eq!(fields, ["captions.formats"]);
        config.captions.tool = CaptionTool::Ffmpeg;
        assert_eq!(caps().missing(&config), []);
        config.captions.tool = CaptionTool::Ccextractor;
        assert_eq!(caps().missing(&config).len(), 2, "formats and tool");
        let with = Capabilities {
            ccextractor: true,
            ..caps()
        };
        assert_eq!(with.missing(&config), []);
    }

    #[test]
    fn unknown_encoders_are_not_missing() {
        let mut config = AgentConfig::default();
        config.transcode.extra_args = ["-c:v", "h264_qsv"].map(String::from).to_vec();
        assert_eq!(Capabilities::default().missing(&config), []);
    }
}
