//! The comparison of one recording's two outputs (production's, published, and the
//! candidate's, in the shadow area): durations and stream layouts (ffprobe), caption cues cue
//! by cue (the A/53 captions each MP4 carries, read and decoded as verification reads them),
//! sizes, encode times (wall and CPU), and the quality of each against the decoded source
//! ([`quality`]).
//!
//! Everything here takes explicit inputs (paths, [`Tools`]) and reads files only.
//!
//! [`quality`]: super::quality

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::quality::{self, Quality, Sampling};
use super::report::Comparison;
use crate::captions::cc608::{self, Cue, Field};
use crate::probe::MediaInfo;

/// How far apart (seconds) two cues may be and still be the same cue.
pub const CUE_TOLERANCE: f64 = 0.5;

/// How the comparison runs FFmpeg and ffprobe: their paths and how long an ffprobe may take.
/// They run at the priority of the caller's scope: the shadow job's is the lowest
/// ([`crate::plumbing::priority`]).
#[derive(Debug, Clone)]
pub struct Tools {
    /// FFmpeg.
    pub ffmpeg: PathBuf,
    /// ffprobe.
    pub ffprobe: PathBuf,
    /// Longest ffprobe run.
    pub probe_timeout: Duration,
}

impl Tools {
    /// Runs FFmpeg with `args` to the end; its stderr, or why it failed.
    pub async fn ffmpeg(
        &self,
        args: &[OsString],
        cancel: &CancellationToken,
    ) -> Result<String, CompareError> {
        let mut cmd = crate::plumbing::priority::command(&self.ffmpeg);
        cmd.args(args);
        let out =
            crate::plumbing::child::run_captured(&mut cmd, quality::RUN_LIMIT, cancel).await?;
        if !out.status.success() {
            return Err(CompareError::Failed {
                status: out.status.to_string(),
                tail: crate::plumbing::child::tail_lines(&out.stderr, 8),
            });
        }
        Ok(out.stderr)
    }
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A child could not run, timed out or was cancelled.
    #[error(transparent)]
    Run(#[from] crate::plumbing::child::RunError),
    /// FFmpeg failed.
    #[error("FFmpeg failed ({status}): {tail}")]
    Failed {
        /// Its exit status.
        status: String,
        /// The end of its log.
        tail: String,
    },
    /// ffprobe could not read an output.
    #[error("cannot probe {}: {why}", path.display())]
    Probe {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The quality filters said nothing usable.
    #[error("cannot measure the quality of {}: {why}", output.display())]
    Quality {
        /// The output.
        output: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The captions of an output could not be read.
    #[error("cannot read the captions of {}: {why}", path.display())]
    Captions {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// What ffprobe says of one output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// Seconds of video (else the container's duration).
    pub duration: f64,
    /// `h264 640x360 yuv420p; aac; aac`.
    pub text: String,
    /// Width and height of the video.
    pub size: (u32, u32),
    /// Bytes.
    pub bytes: u64,
}

/// The layout of `path`.
pub async fn layout(
    tools: &Tools,
    path: &Path,
    cancel: &CancellationToken,
) -> Result<Layout, CompareError> {
    let info = crate::probe::probe(&tools.ffprobe, path, tools.probe_timeout, cancel)
        .await
        .map_err(|e| CompareError::Probe {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(describe(&info, bytes))
}

fn describe(info: &MediaInfo, bytes: u64) -> Layout {
    let mut parts = Vec::new();
    let mut size = (0, 0);
    if let Some(v) = &info.video {
        parts.push(format!(
            "{} {}x{} {}",
            v.codec, v.width, v.height, v.pix_fmt
        ));
        size = (v.width, v.height);
    }
    parts.extend(info.audio.iter().map(|a| a.codec.clone()));
    Layout {
        duration: info.video_secs(),
        text: parts.join("; "),
        size,
        bytes,
    }
}

/// The CC1 and CC3 cues an output carries (none when it has no caption data).
pub async fn cues(
    tools: &Tools,
    path: &Path,
    cancel: &CancellationToken,
) -> Result<(Vec<Cue>, Vec<Cue>), CompareError> {
    let failed = |why: String| CompareError::Captions {
        path: path.to_path_buf(),
        why,
    };
    let plan = crate::captions::plan(&tools.ffprobe, path, tools.probe_timeout, cancel)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let read = crate::captions::read_source(
        &tools.ffprobe,
        path,
        &plan,
        tools.probe_timeout,
        quality::RUN_LIMIT,
        cancel,
    )
    .await
    .map_err(|e| failed(e.to_string()))?;
    Ok((
        read.cues(Field::One).to_vec(),
        read.cues(Field::Two).to_vec(),
    ))
}

/// Whether the candidate's cues are production's, cue by cue; the first difference when not.
pub fn same_cues(
    production: &(Vec<Cue>, Vec<Cue>),
    candidate: &(Vec<Cue>, Vec<Cue>),
) -> Result<(), String> {
    cc608::compare("CC1", &production.0, &candidate.0, CUE_TOLERANCE)
        .and_then(|()| cc608::compare("CC3", &production.1, &candidate.1, CUE_TOLERANCE))
        .map_err(|m| {
            m.0.replace("the source", "production")
                .replace("the output", "the candidate")
        })
}

/// The inputs of one comparison.
#[derive(Debug, Clone)]
pub struct Pair<'a> {
    /// The source (or the shadow area's link to it).
    pub source: &'a Path,
    /// Production's published output.
    pub production: &'a Path,
    /// The candidate's output.
    pub candidate: &'a Path,
    /// Production's and the candidate's encode wall times, seconds.
    pub encode_secs: (f64, f64),
    /// Production's and the candidate's encode CPU times, seconds (0: unknown).
    pub cpu_secs: (f64, f64),
}

/// Compares the two outputs of one recording (fills every measured field of a
/// [`Comparison`] but the sidecars' ([`super::sidecars`]); the caller fills in who and what).
pub async fn compare(
    tools: &Tools,
    pair: &Pair<'_>,
    sampling: Sampling,
    cancel: &CancellationToken,
) -> Result<Comparison, CompareError> {
    let production = layout(tools, pair.production, cancel).await?;
    let candidate = layout(tools, pair.candidate, cancel).await?;
    let production_cues = cues(tools, pair.production, cancel).await?;
    let candidate_cues = cues(tools, pair.candidate, cancel).await?;
    let difference = same_cues(&production_cues, &candidate_cues).err();
    let media = production.duration;
    let measure =
        |output, size| quality::measure(tools, pair.source, output, media, size, sampling, cancel);
    let p: Quality = measure(pair.production, production.size).await?;
    let c: Quality = measure(pair.candidate, candidate.size).await?;
    let count = |c: &(Vec<Cue>, Vec<Cue>)| (c.0.len() + c.1.len()) as u32;
    Ok(Comparison {
        candidate_ok: true,
        // `file` and the sidecars' fields are the caller's.
        production_secs: production.duration,
        candidate_secs: candidate.duration,
        production_layout: production.text,
        candidate_layout: candidate.text,
        production_cues: count(&production_cues),
        candidate_cues: count(&candidate_cues),
        cues_identical: difference.is_none(),
        caption_difference: difference.unwrap_or_default(),
        production_bytes: production.bytes,
        candidate_bytes: candidate.bytes,
        production_encode_secs: pair.encode_secs.0,
        candidate_encode_secs: pair.encode_secs.1,
        production_cpu_secs: pair.cpu_secs.0,
        candidate_cpu_secs: pair.cpu_secs.1,
        production_ssim: p.ssim,
        candidate_ssim: c.ssim,
        production_psnr: p.psnr,
        candidate_psnr: c.psnr,
        media_secs: media,
        ..Comparison::default()
    })
}
