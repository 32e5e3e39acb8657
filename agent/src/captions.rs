//! The caption stage: sidecar caption files (`.srt`, `.vtt`, `.bin`) extracted from the verified
//! MP4, so that their times match the file they accompany.
//!
//! # Theory of operation
//! The tool is chosen once per job: CCExtractor when configured or found (`auto`), FFmpeg
//! otherwise; `.bin` always needs CCExtractor (start-up validation guarantees one). FFmpeg runs
//! once for all of its formats, reading the 608 captions through the lavfi `movie=...[out0+subcc]`
//! source; CCExtractor runs once per format. Every run is a supervised child (own process group,
//! stall timeout, killed and reaped on cancel), and each writes to a hidden temporary name that
//! the job publishes only when every requested output is complete. A failed run is retried with
//! exponential backoff and jitter; "no captions" (CCExtractor's exit code 10, or FFmpeg finding
//! none) is a result, not an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_config::agent::{CaptionTool, Captions};
use rand::Rng;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::child::{run_watched, WatchedError};
use crate::ffarg::input_arg;
use crate::publish::temp_path;
use crate::transcode::TranscodeError;

/// A sidecar file of a job: where it is written, and where it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// `srt`, `vtt` or `bin`.
    pub format: String,
    /// The hidden temporary file.
    pub temp: PathBuf,
    /// The final name beside the MP4.
    pub path: PathBuf,
}

/// The sidecars of `output` for the configured formats.
pub fn sidecars(output: &Path, formats: &[String]) -> Vec<Sidecar> {
    formats
        .iter()
        .map(|format| {
            let path = output.with_extension(format);
            Sidecar {
                format: format.clone(),
                temp: temp_path(&path),
                path,
            }
        })
        .collect()
}

/// What the caption stage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No sidecars were asked for.
    NotRequested,
    /// The recording has no captions; `sidecars` holds the empty ones written on request.
    NoCaptions {
        /// Empty sidecars to publish (only with `write_empty`).
        sidecars: Vec<Sidecar>,
    },
    /// Captions were extracted into every sidecar.
    Extracted {
        /// The program that extracted them.
        tool: &'static str,
        /// The sidecars to publish.
        sidecars: Vec<Sidecar>,
    },
}

impl Outcome {
    /// What the journal records: `not requested`, `none`, or the formats written.
    pub fn summary(&self) -> String {
        match self {
            Outcome::NotRequested => "not requested".into(),
            Outcome::NoCaptions { .. } => "none".into(),
            Outcome::Extracted { sidecars, tool } => {
                let formats: Vec<&str> = sidecars.iter().map(|s| s.format.as_str()).collect();
                format!("{} ({tool})", formats.join(","))
            }
        }
    }

    /// The sidecars to publish.
    pub fn to_publish(&self) -> &[Sidecar] {
        match self {
            Outcome::NotRequested => &[],
            Outcome::NoCaptions { sidecars } | Outcome::Extracted { sidecars, .. } => sidecars,
        }
    }
}

/// Why the caption stage failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    /// The job was cancelled.
    #[error("the caption stage was cancelled")]
    Cancelled,
    /// The extractor cannot work with these settings (not worth a retry).
    #[error("{0}")]
    Permanent(String),
    /// Every attempt failed.
    #[error("{message} (gave up after {attempts} caption attempt(s))")]
    Exhausted {
        /// The last failure.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// One attempt's failure.
enum Failed {
    Cancelled,
    Permanent(String),
    Transient(String),
}

/// Runs the caption stage on `mp4` (the source with FFmpeg, the verified MP4 with CCExtractor)
/// for the MP4 whose final name is `output`. The extractor always runs: FFmpeg's probe sees captions only in the frames it
/// decodes, and a recording may start captioning late, so an empty result means "no captions".
pub async fn extract(
    cfg: &Captions,
    ffmpeg: &Path,
    mp4: &Path,
    output: &Path,
    cancel: &CancellationToken,
) -> Result<Outcome, CaptionError> {
    if cfg.formats.is_empty() {
        return Ok(Outcome::NotRequested);
    }
    let sidecars = sidecars(output, &cfg.formats);
    let ccextractor = match cfg.tool {
        CaptionTool::Ffmpeg => None,
        CaptionTool::Auto | CaptionTool::Ccextractor => cfg.find_ccextractor(),
    };
    if ccextractor.is_none() && sidecars.iter().any(|s| s.format == "bin") {
        return Err(CaptionError::Permanent(
            "the .bin caption format needs CCExtractor, which is not found".into(),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        remove_temps(&sidecars);
        let result = match &ccextractor {
            Some(program) => with_ccextractor(cfg, program, mp4, &sidecars, cancel).await,
            None => with_ffmpeg(cfg, ffmpeg, mp4, &sidecars, cancel).await,
        };
        match result {
            Ok(true) => {
                let tool = if ccextractor.is_some() {
                    "ccextractor"
                } else {
                    "ffmpeg"
                };
                return Ok(Outcome::Extracted { tool, sidecars });
            }
            Ok(false) => {
                remove_temps(&sidecars);
                return Ok(no_captions(cfg, sidecars));
            }
            Err(Failed::Cancelled) => {
                remove_temps(&sidecars);
                return Err(CaptionError::Cancelled);
            }
            Err(Failed::Permanent(message)) => {
                remove_temps(&sidecars);
                return Err(CaptionError::Permanent(message));
            }
            Err(Failed::Transient(message)) if attempt < cfg.max_attempts => {
                remove_temps(&sidecars);
                let delay = backoff(cfg.retry_backoff.get(), attempt);
                tracing::warn!(mp4 = %output.display(), attempt, retry_in = ?delay, "caption extraction failed, will retry: {message}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return Err(CaptionError::Cancelled),
                }
            }
            Err(Failed::Transient(message)) => {
                remove_temps(&sidecars);
                return Err(CaptionError::Exhausted {
                    message,
                    attempts: attempt,
                });
            }
        }
    }
}

fn no_captions(cfg: &Captions, sidecars: Vec<Sidecar>) -> Outcome {
    if !cfg.write_empty {
        return Outcome::NoCaptions {
            sidecars: Vec::new(),
        };
    }
    let written = sidecars
        .into_iter()
        .filter(|s| {
            let empty: &[u8] = match s.format.as_str() {
                "vtt" => b"WEBVTT\n\n",
                "bin" => &[
                    0xCC, 0xCC, 0xED, 0xCC, 0x00, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00,
                ],
                _ => b"",
            };
            std::fs::write(&s.temp, empty).is_ok()
        })
        .collect();
    Outcome::NoCaptions { sidecars: written }
}

/// Removes the temporaries of `sidecars` (a failed or cancelled attempt).
pub fn remove_temps(sidecars: &[Sidecar]) {
    for s in sidecars {
        let _ = std::fs::remove_file(&s.temp);
    }
}

/// Whether the caption stage will use FFmpeg (sidecars requested and no CCExtractor in use).
pub fn uses_ffmpeg(cfg: &Captions) -> bool {
    !cfg.formats.is_empty()
        && match cfg.tool {
            CaptionTool::Ffmpeg => true,
            CaptionTool::Auto => cfg.find_ccextractor().is_none(),
            CaptionTool::Ccextractor => false,
        }
}

/// `ok(true)`: captions extracted; `ok(false)`: the recording has none.
async fn with_ffmpeg(
    cfg: &Captions,
    ffmpeg: &Path,
    mp4: &Path,
    sidecars: &[Sidecar],
    cancel: &CancellationToken,
) -> Result<bool, Failed> {
    let mut args: Vec<std::ffi::OsString> = ["-hide_banner", "-nostdin", "-y", "-v", "error"]
        .into_iter()
        .chain(["-nostats", "-progress", "pipe:1", "-f", "lavfi", "-i"])
        .map(Into::into)
        .collect();
    args.push(format!("movie={}[out0+subcc]", lavfi_escape(mp4)).into());
    for s in sidecars {
        let codec = if s.format == "vtt" { "webvtt" } else { "srt" };
        args.extend(["-map", "0:s:0", "-c:s", codec, "-f", codec].map(Into::into));
        args.push(input_arg(&s.temp));
    }
    let run = crate::transcode::run(ffmpeg, &args, cfg.stall_timeout.get(), cancel, |_| {});
    match run.await {
        Ok(()) => {}
        Err(TranscodeError::Cancelled) => return Err(Failed::Cancelled),
        Err(TranscodeError::Spawn { program, source }) => {
            return Err(Failed::Permanent(format!(
                "cannot start {program}: {source}"
            )))
        }
        Err(e @ TranscodeError::Failed { .. }) if e.to_string().contains("matches no streams") => {
            // No subtitle stream at all: the decoder found no captions.
            return Ok(false);
        }
        Err(e) => return Err(Failed::Transient(e.to_string())),
    }
    let any_cue = sidecars.iter().any(|s| has_cues(&s.temp));
    Ok(any_cue)
}

/// Whether a text sidecar holds at least one cue (a `-->` time line).
fn has_cues(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("-->"))
}

/// `ok(true)`: captions extracted; `ok(false)`: CCExtractor says there are none (exit 10).
async fn with_ccextractor(
    cfg: &Captions,
    program: &Path,
    mp4: &Path,
    sidecars: &[Sidecar],
    cancel: &CancellationToken,
) -> Result<bool, Failed> {
    for s in sidecars {
        let out_format = match s.format.as_str() {
            "vtt" => "webvtt",
            "bin" => "bin",
            _ => "srt",
        };
        let mut cmd = Command::new(program);
        cmd.arg(mp4)
            .arg("-o")
            .arg(&s.temp)
            .arg(format!("-out={out_format}"));
        let files = [s.temp.clone()];
        let finished = match run_watched(&mut cmd, &files, cfg.stall_timeout.get(), cancel).await {
            Ok(f) => f,
            Err(WatchedError::Cancelled { .. }) => return Err(Failed::Cancelled),
            Err(WatchedError::Spawn { program, source }) => {
                return Err(Failed::Permanent(format!(
                    "cannot start {program}: {source}"
                )))
            }
            Err(e @ WatchedError::Stalled { .. }) => return Err(Failed::Transient(e.to_string())),
        };
        match ccextractor_exit(finished.status) {
            Exit::Ok if s.temp.exists() => {}
            Exit::Ok => {
                return Err(Failed::Transient(format!(
                    "CCExtractor exited 0 but wrote no {} file",
                    s.format
                )))
            }
            Exit::NoCaptions => return Ok(false),
            Exit::Usage(what) => {
                return Err(Failed::Permanent(format!(
                    "CCExtractor: {what}: {}",
                    finished.tail
                )))
            }
            Exit::Failed(what) => {
                return Err(Failed::Transient(format!(
                    "CCExtractor: {what}: {}",
                    finished.tail
                )))
            }
        }
    }
    Ok(true)
}

/// CCExtractor's exit codes (`ccx_common_common.h`), as the agent treats them.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    Ok,
    NoCaptions,
    /// The command line or settings are wrong: retrying does not help.
    Usage(String),
    /// Anything else, including crashes: worth a retry.
    Failed(String),
}

fn ccextractor_exit(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    let Some(code) = status.code() else {
        return Exit::Failed(format!("killed by signal {}", status.signal().unwrap_or(0)));
    };
    // Exit codes above 255 reach the parent modulo 256 on Unix.
    match code {
        0 => Exit::Ok,
        10 => Exit::NoCaptions,
        2 => Exit::Usage("no input files (exit 2)".into()),
        3 => Exit::Usage("too many input files (exit 3)".into()),
        4 => Exit::Usage("incompatible parameters (exit 4)".into()),
        7 => Exit::Usage("malformed parameter (exit 7)".into()),
        11 => Exit::Usage("help shown: the command line was not understood (exit 11)".into()),
        6 => Exit::Failed("unable to determine the file size (exit 6)".into()),
        8 => Exit::Failed("read error (exit 8)".into()),
        44 => Exit::Failed("error not classified (exit 300)".into()),
        244 => Exit::Failed("not enough memory (exit 500)".into()),
        246 => Exit::Failed("buffer full (exit 502)".into()),
        other => Exit::Failed(format!("exit code {other}")),
    }
}

/// A file name as a value inside a lavfi filter graph: escaped for the filter's option parser
/// (`\ ' :`), then for the graph parser (`\ ' [ ] , ;`).
pub fn lavfi_escape(path: &Path) -> String {
    let escape = |s: &str, special: &[char]| -> String {
        s.chars()
            .flat_map(|c| {
                let prefix = special.contains(&c).then_some('\\');
                prefix.into_iter().chain(std::iter::once(c))
            })
            .collect()
    };
    let level1 = escape(&path.to_string_lossy(), &['\\', '\'', ':']);
    escape(&level1, &['\\', '\'', '[', ']', ',', ';'])
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    let raw = base.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(20) as i32);
    Duration::from_secs_f64(raw.min(300.0) * rand::thread_rng().gen_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn escapes_for_both_parsers() {
        assert_eq!(lavfi_escape(Path::new("/a b/c.mp4")), "/a b/c.mp4");
        assert_eq!(
            lavfi_escape(Path::new("/x/it's:[1],2;3")),
            r"/x/it\\\'s\\:\[1\]\,2\;3"
        );
    }

    #[test]
    fn exit_codes() {
        let code = |c: i32| std::process::ExitStatus::from_raw(c << 8);
        assert_eq!(ccextractor_exit(code(0)), Exit::Ok);
        assert_eq!(ccextractor_exit(code(10)), Exit::NoCaptions);
        assert!(matches!(ccextractor_exit(code(7)), Exit::Usage(_)));
        assert!(matches!(ccextractor_exit(code(244)), Exit::Failed(m) if m.contains("500")));
        assert!(matches!(
            ccextractor_exit(std::process::ExitStatus::from_raw(11)),
            Exit::Failed(m) if m.contains("signal 11")
        ));
    }

    #[test]
    fn sidecar_names_follow_the_mp4() {
        let s = sidecars(Path::new("/out/show.mp4"), &["srt".into(), "bin".into()]);
        assert_eq!(s[0].path, Path::new("/out/show.srt"));
        assert_eq!(s[1].temp, Path::new("/out/.show.bin.h264create-tmp"));
    }
}
