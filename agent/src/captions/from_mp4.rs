//! The caption bytes of an H.264 MP4 (the agent's own output) read in process, without starting
//! FFmpeg: each sample of the video track is one access unit, a run of NAL units each behind
//! its length ([`crate::mp4::video_samples`] says where the samples lie and when they are
//! shown). The SEI units before a sample's first slice carry its A/53 `cc_data`, which FFmpeg's
//! decoder attaches to that picture; only the length fields, the NAL headers and the SEI units
//! are read, never a slice. This gives what [`super::read::h264_frames`] (an FFmpeg stream copy
//! and an ffprobe packet list) gives, which stays as the fallback for an MP4 this reader
//! refuses.
//!
//! Bounded: at most [`MAX_SEI`] bytes of one SEI unit are read (a larger one is refused), the
//! file's tables as [`crate::mp4`] bounds them, and `stop` is asked every
//! [`CHECK_EVERY`] samples.

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::cc608::CcFrame;
use super::read::{a53_t35_cc_data, carries_608, sei_messages, unescape};

/// The largest SEI NAL unit read (A/53 caption data is at most a few hundred bytes).
pub const MAX_SEI: u32 = 64 * 1024;
/// How many samples are read between two looks at `stop`.
const CHECK_EVERY: usize = 256;

/// Why the reader refused the file (the caller reads it through FFmpeg instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Every picture of the MP4 at `path` that carries CEA-608 caption bytes (valid field 1 or 2
/// pairs other than padding), with its time from the file's start, in presentation order.
pub fn frames(path: &Path, stop: &dyn Fn() -> bool) -> Result<Vec<CcFrame>, Refused> {
    let mut frames = Vec::new();
    read(path, None, stop, |time, triples| {
        let triples: Vec<[u8; 3]> = triples.into_iter().filter(carries_608).collect();
        if !triples.is_empty() {
            frames.push(CcFrame { time, triples });
        }
        true
    })?;
    frames.sort_by(|a, b| a.time.total_cmp(&b.time));
    Ok(frames)
}

/// Whether any of the first `pictures` pictures (in decode order) of the MP4 at `path` carries
/// A/53 caption data, padding included: what ffprobe's `closed_captions` says after decoding
/// them.
pub fn has_captions(path: &Path, pictures: usize) -> Result<bool, Refused> {
    let mut found = false;
    read(path, Some(pictures), &|| false, |_, triples| {
        found = !triples.is_empty();
        !found
    })?;
    Ok(found)
}

/// Hands `each` every sample's time (seconds from the file's start) and its A/53 triples, in
/// decode order, up to `limit` samples, while `each` returns true.
fn read(
    path: &Path,
    limit: Option<usize>,
    stop: &dyn Fn() -> bool,
    mut each: impl FnMut(f64, Vec<[u8; 3]>) -> bool,
) -> Result<(), Refused> {
    let video = crate::mp4::video_samples(path).map_err(|e| Refused(e.to_string()))?;
    let Some(length_size) = video.nal_length_size else {
        return Err(Refused(
            "the video track is not H.264 with an avcC box".into(),
        ));
    };
    let file = std::fs::File::open(path)
        .map_err(|e| Refused(format!("cannot open {}: {e}", path.display())))?;
    let timescale = f64::from(video.timescale);
    let count = limit.map_or(video.samples.len(), |l| l.min(video.samples.len()));
    for (i, sample) in video.samples.iter().take(count).enumerate() {
        if i % CHECK_EVERY == 0 && stop() {
            return Err(Refused("stopped".into()));
        }
        let triples = sample_triples(&file, sample, length_size)
            .map_err(|why| Refused(format!("sample {i} at byte {}: {why}", sample.offset)))?;
        if !each(sample.pts as f64 / timescale - video.start, triples) {
            break;
        }
    }
    Ok(())
}

/// The A/53 triples of the SEI units before the first slice of one sample.
fn sample_triples(
    file: &std::fs::File,
    sample: &crate::mp4::Sample,
    length_size: u8,
) -> Result<Vec<[u8; 3]>, String> {
    let io = |e: std::io::Error| format!("cannot read: {e}");
    let length_size = u64::from(length_size);
    let end = sample.offset + u64::from(sample.size);
    let mut at = sample.offset;
    let mut triples = Vec::new();
    while at + length_size < end {
        let mut head = [0u8; 5];
        let head = &mut head[..length_size as usize + 1];
        file.read_exact_at(head, at).map_err(io)?;
        let len = head[..length_size as usize]
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b));
        let body = at + length_size;
        if len == 0 || body + len > end {
            return Err(format!(
                "a NAL unit of {len} bytes at byte {at} does not fit its sample"
            ));
        }
        match head[length_size as usize] & 0x1F {
            // A slice: the SEI of this picture came before it.
            1..=5 => break,
            6 => {
                if len > u64::from(MAX_SEI) {
                    return Err(format!("an SEI unit of {len} bytes, more than {MAX_SEI}"));
                }
                let mut nal = vec![0u8; len as usize];
                file.read_exact_at(&mut nal, body).map_err(io)?;
                sei_messages(&unescape(&nal[1..]), |kind, payload| {
                    if kind == 4 {
                        a53_t35_cc_data(payload, &mut triples);
                    }
                });
            }
            _ => {}
        }
        at = body + len;
    }
    Ok(triples)
}
