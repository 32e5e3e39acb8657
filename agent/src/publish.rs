//! Atomic, verified publish: outputs are written under a hidden temporary name in the output
//! folder, verified, fsynced, then given their final name in one step (a job flushes its
//! temporaries first, renames each, then flushes the output folder once: [`rename_synced`]). A crash leaves only
//! temporaries, which [`remove_leftovers`] deletes at start-up.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use h264_config::agent::Transcode;
use tokio_util::sync::CancellationToken;

use crate::probe::{probe, MediaInfo};

/// The suffix of every temporary output, so that start-up can find and remove them.
pub const TEMP_SUFFIX: &str = ".h264create-tmp";

/// The suffix of a job's progress dot-file beside its output (see
/// [`crate::pipeline::progress`]), which start-up removes with the temporaries.
pub const PROGRESS_SUFFIX: &str = ".progress";

/// The hidden temporary name an output is written under: a short fixed-length name in the
/// output folder's private work folder ([`crate::fs_safe::work_temp`]).
pub fn temp_path(output: &Path) -> PathBuf {
    crate::fs_safe::work_temp(output)
}

/// `.<name><suffix>` beside `path`.
pub fn sibling(path: &Path, prefix_extra: &str, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{prefix_extra}{name}{suffix}"))
}

/// Why a finished FFmpeg output is not fit to publish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The output could not be probed or read.
    #[error("the output cannot be read back: {0}")]
    Unreadable(String),
    /// The output is not what the profile promises.
    #[error("the output is not as expected: {0}")]
    Mismatch(String),
    /// The output's video or audio does not last as long as the source's: a sign of timestamp
    /// trouble (the next attempt climbs the retry ladder).
    #[error("the output is not as expected: {0}")]
    Duration(String),
}

/// Checks a finished output, read back from its boxes ([`crate::mp4`]), against its source:
/// H.264 video, AAC audio when the source had
/// audio, progressive when deinterlaced, the source's closed captions kept (when asked),
/// `moov` before `mdat`, and durations compared like with like, each within the tolerance:
/// the output's video with the source's video, its first audio stream with the source's, each
/// measured from the stream's own timestamps and frames. The containers' durations are never
/// compared: a source's may come from a data stream, a fragment header's claim or stray
/// timestamps.
pub async fn verify(
    output: &Path,
    source: &MediaInfo,
    deinterlaced: bool,
    keep_captions: bool,
    cfg: &Transcode,
    probe_timeout: std::time::Duration,
    cancel: &CancellationToken,
) -> Result<MediaInfo, VerifyError> {
    let (mut out, moov_first) = read_back(output, cfg, probe_timeout, cancel).await?;
    let source_captions = source.video.as_ref().is_some_and(|v| v.closed_captions);
    if let Some(video) = out.video.as_mut() {
        // Probed only when it decides something: the output must keep the source's captions.
        // (A re-encode's captions are also compared cue for cue, see `crate::captions`.)
        if keep_captions && source_captions {
            video.closed_captions =
                closed_captions(output, &cfg.ffprobe, probe_timeout, cancel).await?;
        }
    }
    let video = out
        .video
        .as_ref()
        .ok_or_else(|| VerifyError::Mismatch("no video stream".into()))?;
    if video.codec != "h264" {
        return Err(VerifyError::Mismatch(format!(
            "video codec is {}, not h264",
            video.codec
        )));
    }
    if deinterlaced && video.is_interlaced() {
        return Err(VerifyError::Mismatch(
            "the video is still interlaced".into(),
        ));
    }
    if keep_captions && source_captions && !video.closed_captions {
        return Err(VerifyError::Mismatch(
            "the source has closed captions but the output lost them".into(),
        ));
    }
    if !source.audio.is_empty() && !out.audio.iter().any(|a| a.codec == "aac") {
        return Err(VerifyError::Mismatch(
            "the source has audio but the output has no AAC".into(),
        ));
    }
    let tolerance = cfg.duration_tolerance.get().as_secs_f64();
    let (out_video, src_video) = (out.video_secs(), source.video_secs());
    crate::floor::check_coverage(out_video, src_video).map_err(VerifyError::Duration)?;
    if src_video > 0.0 && (out_video - src_video).abs() > tolerance {
        return Err(VerifyError::Duration(format!(
            "the video lasts {out_video:.3}s, the source's video {src_video:.3}s: more than \
             {tolerance:.3}s apart (transcode.duration_tolerance)"
        )));
    }
    let out_audio = out
        .audio
        .iter()
        .find(|a| a.codec == "aac")
        .and_then(|a| a.duration);
    if let (Some(out_audio), Some(src_audio)) = (out_audio, source.audio_secs()) {
        if (out_audio - src_audio).abs() > tolerance {
            return Err(VerifyError::Duration(format!(
                "the audio lasts {out_audio:.3}s, the source's audio {src_audio:.3}s: more than \
                 {tolerance:.3}s apart (transcode.duration_tolerance)"
            )));
        }
    }
    if moov_first {
        Ok(out)
    } else {
        Err(VerifyError::Mismatch(
            "the moov box is not before mdat".into(),
        ))
    }
}

/// Whether the output's first pictures carry closed captions: their SEI read in process
/// ([`crate::captions::from_mp4`]), or, when that reader refuses the file, ffprobe's decoder.
async fn closed_captions(
    output: &Path,
    ffprobe: &Path,
    probe_timeout: std::time::Duration,
    cancel: &CancellationToken,
) -> Result<bool, VerifyError> {
    let path = output.to_path_buf();
    let frames = crate::probe::CAPTION_PROBE_FRAMES as usize;
    let read =
        tokio::task::spawn_blocking(move || crate::captions::from_mp4::has_captions(&path, frames))
            .await;
    match read {
        Ok(Ok(found)) => return Ok(found),
        Ok(Err(refused)) => {
            tracing::debug!(output = %output.display(), "the output's captions are probed with ffprobe: {refused}")
        }
        Err(e) => {
            tracing::debug!(output = %output.display(), "the output's captions are probed with ffprobe: {e}")
        }
    }
    crate::probe::has_closed_captions(ffprobe, output, probe_timeout, cancel)
        .await
        .map_err(|e| VerifyError::Unreadable(e.to_string()))
}

/// The output's streams and durations, and whether its `moov` comes before `mdat`: read from
/// its boxes in process ([`crate::mp4`]), with no ffprobe to start. An MP4 whose boxes that
/// reader refuses (none of FFmpeg's should be) is probed with ffprobe instead, as before, and
/// the refusal logged: a reader's limit never fails a good conversion.
async fn read_back(
    output: &Path,
    cfg: &Transcode,
    probe_timeout: std::time::Duration,
    cancel: &CancellationToken,
) -> Result<(MediaInfo, bool), VerifyError> {
    let path = output.to_path_buf();
    let read = tokio::task::spawn_blocking(move || crate::mp4::read(&path))
        .await
        .map_err(|e| VerifyError::Unreadable(format!("the MP4 reader's task failed: {e}")))?;
    let why = match read {
        Ok(facts) if !facts.fragmented => return Ok((facts.media_info(), facts.moov_first)),
        Ok(_) => "a fragmented MP4 (its tables do not hold the whole movie)".to_owned(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(output = %output.display(), "the MP4's boxes were not read ({why}); probing it with ffprobe");
    let out = probe(&cfg.ffprobe, output, probe_timeout, cancel)
        .await
        .map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    let moov_first =
        moov_before_mdat(output).map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    Ok((out, moov_first))
}

/// Whether the MP4's `moov` box comes before its `mdat` box (fast start).
pub fn moov_before_mdat(path: &Path) -> io::Result<bool> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = 0u64;
    while pos + 8 <= len {
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8])?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&header[4..8]);
        let (size, header_len) = match size32 {
            1 => {
                file.read_exact(&mut header[8..16])?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&header[8..16]);
                (u64::from_be_bytes(b), 16)
            }
            0 => (len - pos, 8),
            s => (s, 8),
        };
        match &kind {
            b"moov" => return Ok(true),
            b"mdat" => return Ok(false),
            _ => {}
        }
        if size < header_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed MP4 box size",
            ));
        }
        pos += size;
        io::Seek::seek(&mut file, io::SeekFrom::Start(pos))?;
    }
    Ok(false)
}

/// Makes a verified temporary file durable and gives it its final name. With `replace` false,
/// an existing file at `output` is never overwritten (`AlreadyExists`).
pub fn commit(temp: &Path, output: &Path, replace: bool) -> io::Result<()> {
    std::fs::File::open(temp)?.sync_all()?;
    rename_synced(temp, output, replace)?;
    sync_dir(output.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// [`commit`] without its two flushes, for a caller that flushed `temp` already and flushes the
/// output folder once after several renames (a job's sidecars and MP4: one folder flush per
/// publication).
pub fn rename_synced(temp: &Path, output: &Path, replace: bool) -> io::Result<()> {
    if replace {
        std::fs::rename(temp, output)?;
    } else {
        // A hard link fails when the name exists: a rename that never replaces.
        match std::fs::hard_link(temp, output) {
            Ok(()) => std::fs::remove_file(temp)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) if !output.exists() => std::fs::rename(temp, output)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Flushes a directory's entries (new names) to disk; best effort where unsupported.
pub fn sync_dir(dir: &Path) {
    let _ = h264_support::sync_dir(dir);
}

/// Removes temporaries and progress files left by a crash under `dir` (recursively).
pub fn remove_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            } else if name.starts_with('.')
                && (name.ends_with(TEMP_SUFFIX) || name.ends_with(PROGRESS_SUFFIX))
                && std::fs::remove_file(&path).is_ok()
            {
                removed.push(path);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxes(kinds: &[&[u8; 4]]) -> Vec<u8> {
        let mut v = Vec::new();
        for k in kinds {
            v.extend_from_slice(&16u32.to_be_bytes());
            v.extend_from_slice(*k);
            v.extend_from_slice(&[0u8; 8]);
        }
        v
    }

    #[test]
    fn finds_box_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.mp4");
        std::fs::write(&p, boxes(&[b"ftyp", b"moov", b"mdat"])).unwrap();
        assert!(moov_before_mdat(&p).unwrap());
        std::fs::write(&p, boxes(&[b"ftyp", b"mdat", b"moov"])).unwrap();
        assert!(!moov_before_mdat(&p).unwrap());
    }

    #[test]
    fn commit_never_replaces_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("show.mp4");
        let tmp = temp_path(&out);
        assert!(tmp.starts_with(dir.path().join(".h264create-work")));
        crate::fs_safe::ensure_work_dir(dir.path()).unwrap();
        std::fs::write(&out, b"other").unwrap();
        std::fs::write(&tmp, b"new").unwrap();
        assert_eq!(
            commit(&tmp, &out, false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"other");
        commit(&tmp, &out, true).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        std::fs::write(&tmp, b"left by a crash").unwrap();
        assert_eq!(remove_leftovers(dir.path()), vec![tmp]);
    }
}
