//! The transcode stage: FFmpeg's arguments for a source, and one supervised FFmpeg run with
//! progress, stall detection and cancellation.
//!
//! # Theory of operation
//! FFmpeg runs as a [`crate::child`] process (own process group, stdin closed) with
//! `-progress pipe:1`. One task reads its stdout, parses the `key=value` progress blocks and
//! reports each to the caller; every block resets the stall deadline. The stall deadline, the
//! cancel token and FFmpeg's exit race in one `select!`; whichever wins, the process group is
//! terminated and reaped before this module returns. Stderr is read concurrently into a bounded
//! tail that goes into error messages.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use h264_config::agent::{Deinterlace, Transcode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::child::{spawn, tail_lines};
use crate::ffarg::input_arg;
use crate::probe::MediaInfo;

/// How a source becomes H.264 MP4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Re-encode the video with libx264 (deinterlacing first when asked).
    Encode {
        /// Whether the video is deinterlaced.
        deinterlace: bool,
    },
    /// The video is already compliant H.264: copy it, and the audio too when it is AAC.
    Remux {
        /// Whether every audio stream is copied rather than encoded to AAC.
        copy_audio: bool,
    },
}

impl Plan {
    /// `encode` or `remux`, as the journal records it.
    pub fn mode(self) -> &'static str {
        match self {
            Plan::Encode { .. } => "encode",
            Plan::Remux { .. } => "remux",
        }
    }
}

const COMPLIANT_PROFILES: [&str; 4] = ["Constrained Baseline", "Baseline", "Main", "High"];

/// Chooses how to convert a source described by `info` under the profile `cfg`.
pub fn plan(info: &MediaInfo, cfg: &Transcode) -> Plan {
    let Some(video) = &info.video else {
        return Plan::Encode { deinterlace: false };
    };
    let interlaced = video.is_interlaced();
    let deinterlace = match cfg.deinterlace {
        Deinterlace::Auto => interlaced,
        Deinterlace::Always => true,
        Deinterlace::Never => false,
    };
    let compliant = video.codec == "h264"
        && video.pix_fmt == cfg.pix_fmt
        && COMPLIANT_PROFILES.contains(&video.profile.as_str())
        && !interlaced;
    if cfg.remux && compliant && !deinterlace && cfg.extra_args.is_empty() {
        let copy_audio = info.audio.iter().all(|a| a.codec == "aac");
        Plan::Remux { copy_audio }
    } else {
        Plan::Encode { deinterlace }
    }
}

/// FFmpeg's full argument list for converting `input` into `output` (an MP4 file).
pub fn arguments(input: &Path, output: &Path, plan: Plan, cfg: &Transcode) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&[
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
    ]);
    push(&["-i"]);
    a.push(input_arg(input));
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-map", "0:v:0", "-map", "0:a?"]);
    match plan {
        Plan::Encode { deinterlace } => {
            push(&[
                "-c:v",
                "libx264",
                "-preset",
                &cfg.preset,
                "-crf",
                &cfg.crf.to_string(),
            ]);
            push(&["-profile:v", &cfg.profile]);
            if let Some(level) = &cfg.level {
                push(&["-level:v", level]);
            }
            push(&["-pix_fmt", &cfg.pix_fmt]);
            if deinterlace {
                push(&["-vf", "bwdif=mode=send_frame:parity=auto:deint=all"]);
            }
            push(&["-c:a", "aac", "-b:a", &cfg.audio_bitrate]);
        }
        Plan::Remux { copy_audio } => {
            push(&["-c:v", "copy"]);
            if copy_audio {
                push(&["-c:a", "copy"]);
            } else {
                push(&["-c:a", "aac", "-b:a", &cfg.audio_bitrate]);
            }
        }
    }
    push(&["-max_muxing_queue_size", "4096", "-movflags", "+faststart"]);
    a.extend(cfg.extra_args.iter().map(OsString::from));
    a.extend(["-f", "mp4"].map(OsString::from));
    a.push(input_arg(output));
    a
}

/// One progress report from FFmpeg.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    /// Media time written so far.
    pub out_time: Duration,
    /// Frames per second.
    pub fps: f64,
    /// Speed relative to real time (`1.5` = 1.5x).
    pub speed: f64,
    /// Whether FFmpeg said this is the last report.
    pub end: bool,
}

/// Why an FFmpeg run did not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// FFmpeg could not be started.
    #[error("could not start {program}: {source}; check transcode.ffmpeg")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// FFmpeg reported no progress for the stall timeout and was killed.
    #[error("FFmpeg made no progress for {timeout:?} and was killed (transcode.stall_timeout); last output: {tail}")]
    Stalled {
        /// The stall timeout.
        timeout: Duration,
        /// The end of FFmpeg's stderr.
        tail: String,
    },
    /// The job was cancelled and FFmpeg was stopped.
    #[error("FFmpeg was stopped because the job was cancelled")]
    Cancelled,
    /// FFmpeg exited with an error.
    #[error("FFmpeg failed ({status}): {tail}")]
    Failed {
        /// The exit status.
        status: std::process::ExitStatus,
        /// The end of FFmpeg's stderr.
        tail: String,
        /// Whether FFmpeg blamed the input (not worth a retry).
        corrupt_input: bool,
    },
    /// Talking to FFmpeg failed.
    #[error("reading FFmpeg's output failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs FFmpeg with `args`, calling `on_progress` for each progress block.
pub async fn run(
    ffmpeg: &Path,
    args: &[OsString],
    stall_timeout: Duration,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(Progress),
) -> Result<(), TranscodeError> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).map_err(|source| TranscodeError::Spawn {
        program: ffmpeg.display().to_string(),
        source,
    })?;
    let stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let mut stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut buf).await;
        // Drain anything beyond the cap so FFmpeg never blocks on a full pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut block = Progress::default();
    let mut deadline = tokio::time::Instant::now() + stall_timeout;
    let outcome: Result<(), TranscodeError> = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if parse_line(&line, &mut block) {
                        on_progress(block);
                        deadline = tokio::time::Instant::now() + stall_timeout;
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(TranscodeError::Io(e)),
            },
            _ = tokio::time::sleep_until(deadline) => {
                break Err(TranscodeError::Stalled { timeout: stall_timeout, tail: String::new() });
            }
            _ = cancel.cancelled() => break Err(TranscodeError::Cancelled),
        }
    };
    let status = match outcome {
        Ok(()) => {
            // stdout closed: FFmpeg is exiting; still bound the wait by the stall timeout.
            match tokio::time::timeout(stall_timeout, child.wait()).await {
                Ok(status) => status?,
                Err(_) => child.terminate(Duration::from_secs(2)).await?,
            }
        }
        Err(e) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            let stderr = stderr_task.await.unwrap_or_default();
            return Err(match e {
                TranscodeError::Stalled { timeout, .. } => TranscodeError::Stalled {
                    timeout,
                    tail: tail_lines(&stderr, 5),
                },
                other => other,
            });
        }
    };
    let stderr = stderr_task.await.unwrap_or_default();
    if status.success() {
        return Ok(());
    }
    Err(TranscodeError::Failed {
        status,
        corrupt_input: blames_input(&stderr),
        tail: tail_lines(&stderr, 5),
    })
}

/// Folds one `-progress` line into `block`; true when the line ends a block.
fn parse_line(line: &str, block: &mut Progress) -> bool {
    let Some((key, value)) = line.split_once('=') else {
        return false;
    };
    let value = value.trim();
    match key.trim() {
        "out_time_us" | "out_time_ms" => {
            // Both are microseconds in FFmpeg (out_time_ms is misnamed).
            if let Ok(us) = value.parse::<u64>() {
                block.out_time = Duration::from_micros(us);
            }
        }
        "fps" => block.fps = value.parse().unwrap_or(0.0),
        "speed" => block.speed = value.trim_end_matches('x').trim().parse().unwrap_or(0.0),
        "progress" => {
            block.end = value == "end";
            return true;
        }
        _ => {}
    }
    false
}

fn blames_input(stderr: &str) -> bool {
    const INPUT_ERRORS: [&str; 5] = [
        "Invalid data found when processing input",
        "could not find codec parameters",
        "Output file #0 does not contain any stream",
        "does not contain any stream",
        "moov atom not found",
    ];
    INPUT_ERRORS.iter().any(|m| stderr.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AudioStream, VideoStream};

    fn info(codec: &str, field_order: &str, audio: &str) -> MediaInfo {
        MediaInfo {
            format_name: "mpegts".into(),
            duration: 10.0,
            video: Some(VideoStream {
                codec: codec.into(),
                profile: "High".into(),
                pix_fmt: "yuv420p".into(),
                field_order: field_order.into(),
                width: 1280,
                height: 720,
                closed_captions: false,
            }),
            audio: vec![AudioStream {
                codec: audio.into(),
            }],
        }
    }

    #[test]
    fn plans() {
        let cfg = Transcode::default();
        assert_eq!(
            plan(&info("h264", "progressive", "aac"), &cfg),
            Plan::Remux { copy_audio: true }
        );
        assert_eq!(
            plan(&info("h264", "progressive", "ac3"), &cfg),
            Plan::Remux { copy_audio: false }
        );
        assert_eq!(
            plan(&info("h264", "tt", "aac"), &cfg),
            Plan::Encode { deinterlace: true }
        );
        assert_eq!(
            plan(&info("mpeg2video", "progressive", "mp2"), &cfg),
            Plan::Encode { deinterlace: false }
        );
        let no_remux = Transcode {
            remux: false,
            ..Transcode::default()
        };
        assert_eq!(
            plan(&info("h264", "progressive", "aac"), &no_remux),
            Plan::Encode { deinterlace: false }
        );
    }

    #[test]
    fn odd_names_stay_file_names() {
        let args = arguments(
            Path::new("-rec 'x'.ts"),
            Path::new("out/.x.tmp"),
            Plan::Encode { deinterlace: false },
            &Transcode::default(),
        );
        assert!(args.contains(&OsString::from("file:-rec 'x'.ts")));
        assert_eq!(args.last().unwrap(), &OsString::from("file:out/.x.tmp"));
    }

    #[test]
    fn progress_blocks() {
        let mut p = Progress::default();
        assert!(!parse_line("out_time_us=1500000", &mut p));
        assert!(!parse_line("speed=2.5x", &mut p));
        assert!(parse_line("progress=continue", &mut p));
        assert_eq!(p.out_time, Duration::from_millis(1500));
        assert!((p.speed - 2.5).abs() < 1e-9);
        assert!(!p.end);
        assert!(parse_line("progress=end", &mut p));
        assert!(p.end);
    }
}
