//! The transcode stage: FFmpeg's arguments for a source, and one supervised FFmpeg run with
//! progress, stall detection and cancellation.
//!
//! # Theory of operation
//! FFmpeg runs as a [`crate::plumbing::child`] process (own process group, stdin closed) with
//! `-progress pipe:1`. One task reads its stdout, parses the `key=value` progress blocks and
//! reports each to the caller; every block resets the stall deadline. The stall deadline, the
//! cancel token and FFmpeg's exit race in one `select!`; whichever wins, the process group is
//! terminated and reaped before this module returns; when FFmpeg closes its stdout (it is
//! exiting), its CPU time is read from `/proc` before it is reaped ([`Ran::cpu`]: shadow
//! comparisons weigh encode costs by it). Stderr (`-v warning`) is read concurrently,
//! line by line: every line goes through the damage [`Tally`] (what the demuxer and decoders
//! report about the recording, see [`crate::damage`]), and a bounded tail goes into error
//! messages.
//!
//! # The retry ladder
//! An attempt that fails on decode or timestamp errors is tried again one [`Rung`] up before the
//! job gives up: `standard` (FFmpeg's defaults), `tolerant` (input options that regenerate
//! missing timestamps, ignore broken DTS and drop corrupt packets: `-fflags
//! +genpts+discardcorrupt+igndts -err_detect ignore_err`), `retimed` (the tolerant input,
//! always re-encoded, with video and audio timestamps rebuilt from the frame and sample counts:
//! `setpts=N/FRAME_RATE/TB`, `asetpts=N/SR/TB`).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use h264_config::agent::{Deinterlace, Transcode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::damage::Tally;
use crate::plumbing::child::{spawn, tail_lines};
use crate::plumbing::ffarg::{input_arg, input_arg_until};
use crate::probe::MediaInfo;

/// A rung of the retry ladder: how tolerantly FFmpeg reads the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Rung {
    /// FFmpeg's defaults.
    #[default]
    Standard,
    /// Missing timestamps generated, broken DTS ignored, corrupt packets dropped, decode errors
    /// ignored.
    Tolerant,
    /// The tolerant input, re-encoded with timestamps rebuilt from frame and sample counts.
    Retimed,
}

impl Rung {
    /// Every rung, from the first.
    pub const ALL: [Rung; 3] = [Rung::Standard, Rung::Tolerant, Rung::Retimed];

    /// Its name, as the journal, the trace and `fleetctl agent errors` give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rung::Standard => "standard",
            Rung::Tolerant => "tolerant",
            Rung::Retimed => "retimed",
        }
    }

    /// Its place on the ladder, from 0.
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The rung at `index` (the last one past the top).
    pub fn at(index: u32) -> Rung {
        Rung::ALL[(index as usize).min(Rung::ALL.len() - 1)]
    }

    /// The next rung up, if any.
    pub fn next(self) -> Option<Rung> {
        Rung::ALL.get(self.index() as usize + 1).copied()
    }

    /// FFmpeg input options of this rung (before `-i`).
    pub fn input_options(self) -> &'static [&'static str] {
        match self {
            Rung::Standard => &[],
            Rung::Tolerant | Rung::Retimed => &[
                "-fflags",
                "+genpts+discardcorrupt+igndts",
                "-err_detect",
                "ignore_err",
            ],
        }
    }

    /// Whether this rung rebuilds the timestamps (and so always re-encodes).
    pub fn retimes(self) -> bool {
        self == Rung::Retimed
    }
}

/// What FFmpeg reads: a source file, maybe only its first bytes (a transport stream trimmed to
/// its whole packets), maybe only one programme of a multiplex.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The source file.
    pub path: &'a Path,
    /// Read only this many bytes from the start.
    pub end: Option<u64>,
    /// Convert only this programme (its number).
    pub program: Option<u32>,
}

impl<'a> Input<'a> {
    /// The whole file, every stream as FFmpeg maps them by default.
    pub fn file(path: &'a Path) -> Input<'a> {
        Input {
            path,
            end: None,
            program: None,
        }
    }
}

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
    if cfg.remux && compliant && !deinterlace && !h264_config::encoder::reencodes_video(cfg) {
        let copy_audio = !h264_config::encoder::reencodes_audio(cfg)
            && info.audio.iter().all(|a| a.codec == "aac");
        Plan::Remux { copy_audio }
    } else {
        Plan::Encode { deinterlace }
    }
}

/// The plan of an attempt on `rung`: the retimed rung always re-encodes.
pub fn plan_on(info: &MediaInfo, cfg: &Transcode, rung: Rung) -> Plan {
    match plan(info, cfg) {
        Plan::Remux { .. } if rung.retimes() => Plan::Encode {
            deinterlace: cfg.deinterlace == Deinterlace::Always,
        },
        p => p,
    }
}

/// FFmpeg's full argument list for converting `input` (the whole file) into `output` (an MP4
/// file) on the standard rung.
pub fn arguments(input: &Path, output: &Path, plan: Plan, cfg: &Transcode) -> Vec<OsString> {
    arguments_for(&Input::file(input), output, plan, cfg, Rung::Standard)
}

/// FFmpeg's full argument list for converting `input` into `output` (an MP4 file) on `rung`.
pub fn arguments_for(
    input: &Input<'_>,
    output: &Path,
    plan: Plan,
    cfg: &Transcode,
    rung: Rung,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&[
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "warning",
        "-nostats",
        "-progress",
        "pipe:1",
    ]);
    push(rung.input_options());
    push(&crate::encoder_args::LOCAL_ONLY);
    push(&["-i"]);
    a.push(match input.end {
        Some(end) => input_arg_until(input.path, end),
        None => input_arg(input.path),
    });
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    match input.program {
        // That programme's video and audio only: never another programme's (or clock).
        Some(n) => push(&[
            "-map",
            &format!("0:p:{n}:v:0"),
            "-map",
            &format!("0:p:{n}:a?"),
        ]),
        None => push(&["-map", "0:v:0", "-map", "0:a?"]),
    }
    const RETIME_VIDEO: &str = "setpts=N/FRAME_RATE/TB";
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
            a.extend(
                crate::encoder_args::video_options(cfg)
                    .into_iter()
                    .map(OsString::from),
            );
            let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
            push(&["-profile:v", &cfg.profile]);
            if let Some(level) = &cfg.level {
                push(&["-level:v", level]);
            }
            push(&["-pix_fmt", &cfg.pix_fmt]);
            let deinterlacer = "bwdif=mode=send_frame:parity=auto:deint=all";
            let mut filters: Vec<String> = Vec::new();
            if deinterlace {
                filters.push(deinterlacer.to_owned());
            }
            filters.extend(crate::encoder_args::video_filters(cfg));
            if rung.retimes() {
                filters.push(RETIME_VIDEO.to_owned());
            }
            if !filters.is_empty() {
                push(&["-vf", &filters.join(",")]);
            }
            push(&["-c:a", "aac", "-b:a", &cfg.audio_bitrate]);
            a.extend(
                crate::encoder_args::audio_options(cfg)
                    .into_iter()
                    .map(OsString::from),
            );
            let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
            if rung.retimes() {
                push(&["-af", "asetpts=N/SR/TB"]);
            }
        }
        Plan::Remux { copy_audio } => {
            push(&["-c:v", "copy"]);
            if copy_audio {
                push(&["-c:a", "copy"]);
            } else {
                push(&["-c:a", "aac", "-b:a", &cfg.audio_bitrate]);
                a.extend(
                    crate::encoder_args::audio_options(cfg)
                        .into_iter()
                        .map(OsString::from),
                );
            }
        }
    }
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-max_muxing_queue_size", "4096", "-movflags", "+faststart"]);
    a.extend(
        h264_config::encoder::free_form_args(cfg)
            .into_iter()
            .map(OsString::from),
    );
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
        /// Whether FFmpeg blamed the input, or reported decode or timestamp errors: the next
        /// attempt climbs the retry ladder.
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
    on_progress: impl FnMut(Progress),
) -> Result<(), TranscodeError> {
    run_counting(ffmpeg, args, stall_timeout, cancel, on_progress)
        .await
        .map(|_| ())
}

/// Lines of stderr kept for error messages.
const TAIL_LINES: usize = 40;

/// What FFmpeg's stderr said, read as it came.
#[derive(Debug, Default)]
struct Stderr {
    damage: Tally,
    tail: std::collections::VecDeque<String>,
    blames_input: bool,
    timestamps: bool,
}

impl Stderr {
    fn observe(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.damage.observe(line);
        self.blames_input |= blames_input(line);
        self.timestamps |= timestamp_trouble(line);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
    }

    fn tail(&self, n: usize) -> String {
        let text: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        tail_lines(&text.join("\n"), n)
    }
}

/// What a successful FFmpeg run reported.
#[derive(Debug, Default)]
pub struct Ran {
    /// The damage its log reported (see [`crate::damage`]).
    pub damage: Tally,
    /// The CPU time it used (user + system, all threads), read from `/proc` when FFmpeg
    /// closed its output, just before it was reaped; `None` where `/proc` cannot tell.
    pub cpu: Option<Duration>,
}

/// Runs FFmpeg with `args`, calling `on_progress` for each progress block; on success, the
/// damage its log reported and the CPU time it used. FFmpeg runs at the priority of the
/// caller's scope ([`crate::plumbing::priority`]).
pub async fn run_counting(
    ffmpeg: &Path,
    args: &[OsString],
    stall_timeout: Duration,
    cancel: &CancellationToken,
    mut on_progress: impl FnMut(Progress),
) -> Result<Ran, TranscodeError> {
    let mut cmd = crate::plumbing::priority::command(ffmpeg);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut cmd).map_err(|source| TranscodeError::Spawn {
        program: ffmpeg.display().to_string(),
        source,
    })?;
    let pid = child.id();
    // Until reaped (below, after the loop) the process's account stays readable.
    let cpu_now = || {
        pid.and_then(crate::plumbing::procstat::read)
            .map(|s| s.cpu())
    };
    let stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(async move {
        let mut seen = Stderr::default();
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        // Lines up to 64 KiB each; longer ones are cut (FFmpeg never writes such lines).
        loop {
            line.clear();
            match (&mut reader)
                .take(64 * 1024)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => seen.observe(String::from_utf8_lossy(&line).trim_end()),
            }
        }
        // Drain anything left so FFmpeg never blocks on a full pipe.
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        seen
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut block = Progress::default();
    let mut deadline = tokio::time::Instant::now() + stall_timeout;
    let outcome: Result<Option<Duration>, TranscodeError> = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if parse_line(&line, &mut block) {
                        on_progress(block);
                        deadline = tokio::time::Instant::now() + stall_timeout;
                    }
                }
                Ok(None) => break Ok(cpu_now()),
                Err(e) => break Err(TranscodeError::Io(e)),
            },
            _ = tokio::time::sleep_until(deadline) => {
                break Err(TranscodeError::Stalled { timeout: stall_timeout, tail: String::new() });
            }
            _ = cancel.cancelled() => break Err(TranscodeError::Cancelled),
        }
    };
    let (status, cpu) = match outcome {
        Ok(cpu) => {
            // stdout closed: FFmpeg is exiting; still bound the wait by the stall timeout.
            let status = match tokio::time::timeout(stall_timeout, child.wait()).await {
                Ok(status) => status?,
                Err(_) => child.terminate(Duration::from_secs(2)).await?,
            };
            (status, cpu)
        }
        Err(e) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            let stderr = stderr_task.await.unwrap_or_default();
            return Err(match e {
                TranscodeError::Stalled { timeout, .. } => TranscodeError::Stalled {
                    timeout,
                    tail: stderr.tail(5),
                },
                other => other,
            });
        }
    };
    let stderr = stderr_task.await.unwrap_or_default();
    if status.success() {
        return Ok(Ran {
            damage: stderr.damage,
            cpu,
        });
    }
    Err(TranscodeError::Failed {
        status,
        corrupt_input: stderr.blames_input || stderr.timestamps || stderr.damage.count() > 0,
        tail: stderr.tail(5),
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

/// Whether an FFmpeg log line reports a timestamp problem of the input or of what the muxer is
/// given (a reason to try the next rung).
fn timestamp_trouble(line: &str) -> bool {
    const TIMESTAMPS: [&str; 7] = [
        "non monotonically increasing dts",
        "non-monotonous dts",
        "invalid dts",
        "invalid pts",
        "pts has no value",
        "timestamps are unset",
        "out of order",
    ];
    let lower = line.to_ascii_lowercase();
    TIMESTAMPS.iter().any(|t| lower.contains(t))
        || (lower.contains("pts (") && lower.contains("< dts ("))
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
                ..VideoStream::default()
            }),
            audio: vec![AudioStream {
                codec: audio.into(),
                ..AudioStream::default()
            }],
            other_streams: 0,
            programs: Vec::new(),
            program: None,
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
    fn typed_settings_reach_the_command_line_and_force_encoding() {
        let cfg = Transcode {
            frame_rate: Some("10".into()),
            max_height: Some(720),
            audio_sample_rate: Some(48000),
            ..Transcode::default()
        };
        assert_eq!(
            plan(&info("h264", "progressive", "aac"), &cfg),
            Plan::Encode { deinterlace: false }
        );
        let args = arguments(
            Path::new("in.ts"),
            Path::new("out.mp4"),
            Plan::Encode { deinterlace: true },
            &cfg,
        );
        let line = args.join(std::ffi::OsStr::new(" "));
        let line = line.to_string_lossy();
        assert!(
            line.contains("-protocol_whitelist file,pipe,subfile -i file:in.ts"),
            "{line}"
        );
        assert!(
            line.contains(
                "-vf bwdif=mode=send_frame:parity=auto:deint=all,fps=10,scale=-2:'min(ih,720)'"
            ),
            "{line}"
        );
        assert!(line.contains(" -ar 48000 "), "{line}");
        let audio_only = Transcode {
            audio_channels: Some(2),
            ..Transcode::default()
        };
        assert_eq!(
            plan(&info("h264", "progressive", "aac"), &audio_only),
            Plan::Remux { copy_audio: false }
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
    fn rungs_and_inputs_shape_the_arguments() {
        let cfg = Transcode::default();
        let text = |args: Vec<OsString>| {
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let input = Input {
            path: Path::new("mux.ts"),
            end: Some(1880),
            program: Some(202),
        };
        let plain = text(arguments_for(
            &input,
            Path::new("o.mp4"),
            Plan::Encode { deinterlace: true },
            &cfg,
            Rung::Standard,
        ));
        assert!(
            plain.contains("-i subfile,,start,0,end,1880,,:file:mux.ts"),
            "{plain}"
        );
        assert!(
            plain.contains("-map 0:p:202:v:0 -map 0:p:202:a?"),
            "{plain}"
        );
        assert!(!plain.contains("-fflags"), "{plain}");
        let tolerant = text(arguments_for(
            &Input::file(Path::new("a.ts")),
            Path::new("o.mp4"),
            Plan::Remux { copy_audio: true },
            &cfg,
            Rung::Tolerant,
        ));
        assert!(
            tolerant.contains(
                "-fflags +genpts+discardcorrupt+igndts -err_detect ignore_err \
                 -protocol_whitelist file,pipe,subfile -i file:a.ts"
            ),
            "{tolerant}"
        );
        let retimed = text(arguments_for(
            &Input::file(Path::new("a.ts")),
            Path::new("o.mp4"),
            Plan::Encode { deinterlace: true },
            &cfg,
            Rung::Retimed,
        ));
        assert!(
            retimed
                .contains("-vf bwdif=mode=send_frame:parity=auto:deint=all,setpts=N/FRAME_RATE/TB"),
            "{retimed}"
        );
        assert!(retimed.contains("-af asetpts=N/SR/TB"), "{retimed}");
        let remuxable = info("h264", "progressive", "aac");
        assert_eq!(
            plan_on(&remuxable, &cfg, Rung::Tolerant),
            Plan::Remux { copy_audio: true }
        );
        assert_eq!(
            plan_on(&remuxable, &cfg, Rung::Retimed),
            Plan::Encode { deinterlace: false }
        );
        assert_eq!(Rung::Standard.next(), Some(Rung::Tolerant));
        assert_eq!(Rung::Retimed.next(), None);
        assert_eq!(Rung::at(7), Rung::Retimed);
    }

    #[test]
    fn timestamp_trouble_is_recognised() {
        assert!(timestamp_trouble(
            "[mp4 @ 0x1] Application provided invalid, non monotonically increasing dts to muxer in stream 1: 5 >= 5"
        ));
        assert!(timestamp_trouble(
            "[mp4 @ 0x1] pts (0) < dts (3000) in stream 0"
        ));
        assert!(!timestamp_trouble(
            "[libx264 @ 0x1] frame I:1 Avg QP:20.00 size: 1"
        ));
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
