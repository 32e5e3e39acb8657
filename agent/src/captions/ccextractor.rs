//! CCExtractor runs: what it is given to read, and what its exit codes mean.
//!
//! A real CCExtractor (0.96.5) reads CEA-608 captions from MPEG transport and program streams,
//! but finds nothing in the H.264 MP4 files the agent writes: it exits 10 ("No captions were
//! found in input"), or exits 0 after "Error: NULL file path provided to processmp4" and deletes
//! its empty output. It reads nothing from WTV files either. So it is given the source itself
//! when that is an MPEG-TS or MPEG-PS recording, and otherwise a temporary MPEG-TS made from
//! the verified MP4's video track by a stream copy (`-c copy`, cheap), removed afterwards.
//! Either way the captions' times count from the start of the recording, as the MP4's do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::plumbing::child::{run_watched, WatchedError};
use crate::plumbing::ffarg::input_arg;
use crate::publish::{sibling, TEMP_SUFFIX};
use crate::transcode::TranscodeError;

/// What CCExtractor reads for a job.
#[derive(Debug)]
pub enum Input {
    /// The source itself: an MPEG transport or program stream.
    Source(PathBuf),
    /// A temporary MPEG-TS of the verified MP4's video, removed when this is dropped.
    Remux(TempFile),
}

impl Input {
    /// The file to hand to CCExtractor.
    pub fn path(&self) -> &Path {
        match self {
            Input::Source(p) => p,
            Input::Remux(t) => &t.0,
        }
    }

    /// How the journal and errors name it.
    pub fn describe(&self) -> String {
        match self {
            Input::Source(p) => format!("the source {}", p.display()),
            Input::Remux(_) => "an MPEG-TS copy of the converted video".into(),
        }
    }
}

/// A file deleted when dropped.
#[derive(Debug)]
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether CCExtractor reads a source of this container (ffprobe's `format_name`) directly:
/// MPEG-TS (`mpegts`) and MPEG-PS (`mpeg`, `vob`).
pub fn reads_directly(format_name: &str) -> bool {
    format_name
        .split(',')
        .any(|f| matches!(f, "mpegts" | "mpeg" | "vob" | "mpegtsraw"))
}

/// The hidden temporary MPEG-TS beside `output` (removed at start-up if a crash leaves it).
pub fn remux_path(output: &Path) -> PathBuf {
    sibling(output, "", &format!(".ccextractor.ts{TEMP_SUFFIX}"))
}

/// Chooses CCExtractor's input: the source when it reads it directly, else a stream copy of
/// `mp4`'s video into a temporary MPEG-TS beside `output`.
pub async fn input(
    ffmpeg: &Path,
    source: &Path,
    format_name: &str,
    mp4: &Path,
    output: &Path,
    stall_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Input, TranscodeError> {
    if reads_directly(format_name) {
        return Ok(Input::Source(source.to_path_buf()));
    }
    let ts = TempFile(remux_path(output));
    let mut args: Vec<std::ffi::OsString> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-i",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    args.push(input_arg(mp4));
    args.extend(
        ["-map", "0:v:0", "-c", "copy", "-f", "mpegts"]
            .into_iter()
            .map(Into::into),
    );
    args.push(input_arg(&ts.0));
    crate::transcode::run(ffmpeg, &args, stall_timeout, cancel, |_| {}).await?;
    Ok(Input::Remux(ts))
}

/// How one CCExtractor run for one format ended.
#[derive(Debug)]
pub enum Run {
    /// It wrote the file, with captions in it.
    Wrote,
    /// It found no captions (exit 10, or exit 0 without a file, or a file without captions).
    Nothing(String),
}

/// One failed run.
#[derive(Debug)]
pub enum RunFailure {
    /// The job was cancelled.
    Cancelled,
    /// Retrying will not help (the command line or the program).
    Permanent(String),
    /// Worth another attempt.
    Transient(String),
}

/// Runs CCExtractor once: `PROGRAM INPUT -o OUT -out=FORMAT`.
pub async fn run(
    program: &Path,
    input: &Path,
    format: &str,
    out: &Path,
    stall_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Run, RunFailure> {
    let out_format = match format {
        "vtt" => "webvtt",
        "bin" => "bin",
        _ => "srt",
    };
    let mut cmd = crate::plumbing::priority::command(program);
    cmd.arg(input)
        .arg("-o")
        .arg(out)
        .arg(format!("-out={out_format}"));
    let files = [out.to_path_buf()];
    let finished = match run_watched(&mut cmd, &files, stall_timeout, cancel).await {
        Ok(f) => f,
        Err(WatchedError::Cancelled { .. }) => return Err(RunFailure::Cancelled),
        Err(WatchedError::Spawn { program, source }) => {
            return Err(RunFailure::Permanent(format!(
                "cannot start {program}: {source}"
            )))
        }
        Err(e @ WatchedError::Stalled { .. }) => return Err(RunFailure::Transient(e.to_string())),
    };
    let said = |what: &str| {
        if finished.tail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", finished.tail.replace('\n', " / "))
        }
    };
    match exit(finished.status) {
        Exit::Ok if !out.exists() => Ok(Run::Nothing(said("exit 0 without writing a file"))),
        Exit::Ok if !holds_captions(out, format) => Ok(Run::Nothing(said(
            "exit 0 with a file that holds no captions",
        ))),
        Exit::Ok => Ok(Run::Wrote),
        Exit::NoCaptions => Ok(Run::Nothing(said("exit 10"))),
        Exit::Usage(what) => Err(RunFailure::Permanent(format!(
            "CCExtractor: {}",
            said(&what)
        ))),
        Exit::Failed(what) => Err(RunFailure::Transient(format!(
            "CCExtractor: {}",
            said(&what)
        ))),
    }
}

/// Whether a sidecar holds at least one caption: a `-->` time line in `.srt`/`.vtt`, a data
/// block after the 11-byte RCWT header in `.bin`.
pub fn holds_captions(path: &Path, format: &str) -> bool {
    match format {
        "bin" => std::fs::metadata(path).is_ok_and(|m| m.len() >= RCWT_HEADER.len() as u64 + 13),
        _ => std::fs::read_to_string(path).is_ok_and(|t| t.contains("-->")),
    }
}

/// The 11-byte header of an RCWT (`.bin`) file: magic `CC CC ED`, creating program `CC`
/// (CCExtractor), program version `0x0050`, format version `0x0001`, three reserved bytes.
pub const RCWT_HEADER: [u8; 11] = [
    0xCC, 0xCC, 0xED, 0xCC, 0x00, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00,
];

/// CCExtractor's exit codes (`ccx_common_common.h`), as the agent treats them.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Ok,
    /// 10: no captions found.
    NoCaptions,
    /// The command line or settings are wrong: retrying does not help.
    Usage(String),
    /// Anything else, including crashes: worth a retry.
    Failed(String),
}

/// What CCExtractor's exit status means.
pub fn exit(status: std::process::ExitStatus) -> Exit {
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
        245 => Exit::Failed("error in the capitalization file (exit 501)".into()),
        246 => Exit::Failed("buffer full (exit 502)".into()),
        233 => Exit::Failed("missing ASF header (exit 1001)".into()),
        234 => Exit::Failed("missing RCWT header (exit 1002)".into()),
        other => Exit::Failed(format!("exit code {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_codes() {
        let code = |c: i32| std::process::ExitStatus::from_raw(c << 8);
        assert_eq!(exit(code(0)), Exit::Ok);
        assert_eq!(exit(code(10)), Exit::NoCaptions);
        assert!(matches!(exit(code(7)), Exit::Usage(_)));
        assert!(matches!(exit(code(244)), Exit::Failed(m) if m.contains("500")));
        assert!(matches!(exit(code(1002 % 256)), Exit::Failed(m) if m.contains("1002")));
        assert!(matches!(
            exit(std::process::ExitStatus::from_raw(11)),
            Exit::Failed(m) if m.contains("signal 11")
        ));
    }

    #[test]
    fn transport_and_program_streams_go_straight_in() {
        assert!(reads_directly("mpegts"));
        assert!(reads_directly("mpeg"));
        assert!(!reads_directly("wtv"));
        assert!(!reads_directly("mov,mp4,m4a,3gp,3g2,mj2"));
        assert_eq!(
            remux_path(Path::new("/o/show.mp4")),
            Path::new("/o/.show.mp4.ccextractor.ts.h264create-tmp")
        );
    }
}
