//! Quality of an output against its decoded source: FFmpeg's `ssim` and `psnr` filters on a
//! few sampled segments (the whole recording when it is short).
//!
//! One FFmpeg run per segment decodes the same stretch of both files (`-ss`/`-t` on each
//! input, timestamps restarted at zero), brings the source to the output's size and pixel
//! format, and feeds both filters through `split`; their summary lines ("SSIM ... All:0.98",
//! "PSNR ... average:41.2") are read from FFmpeg's log. Segments are weighted by length. A
//! PSNR of identical pictures ("inf") counts as [`MAX_PSNR`].

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::compare::{CompareError, Tools};
use crate::plumbing::ffarg::input_arg;

/// The PSNR given to identical pictures (FFmpeg says `inf`), in dB.
pub const MAX_PSNR: f64 = 100.0;

/// Where and how much to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Segments at most.
    pub segments: u32,
    /// Seconds per segment.
    pub secs: f64,
}

impl Default for Sampling {
    /// Three segments of four seconds: about 12 s of decoding per output, whatever the length.
    fn default() -> Self {
        Self {
            segments: 3,
            secs: 4.0,
        }
    }
}

/// SSIM (0-1, all planes) and PSNR (dB, average) of an output against its source.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quality {
    /// FFmpeg's `All:` SSIM.
    pub ssim: f64,
    /// FFmpeg's `average:` PSNR, at most [`MAX_PSNR`].
    pub psnr: f64,
}

/// The segments (start, length in seconds) sampled from a recording of `duration` seconds:
/// the whole of it when the samples would cover most of it anyway, else evenly spread.
pub fn segments(duration: f64, s: Sampling) -> Vec<(f64, f64)> {
    let n = s.segments.max(1);
    if !duration.is_finite() || duration <= 0.0 {
        return vec![(0.0, 0.0)];
    }
    if duration <= f64::from(n) * s.secs * 1.5 {
        return vec![(0.0, duration)];
    }
    (0..n)
        .map(|i| {
            let middle = duration * (f64::from(i) + 0.5) / f64::from(n);
            ((middle - s.secs / 2.0).max(0.0), s.secs)
        })
        .collect()
}

/// Measures `output` against `source` (`duration`: the recording's length, `size`: the
/// output's width and height).
pub async fn measure(
    tools: &Tools,
    source: &Path,
    output: &Path,
    duration: f64,
    size: (u32, u32),
    sampling: Sampling,
    cancel: &CancellationToken,
) -> Result<Quality, CompareError> {
    let mut total = Quality::default();
    let mut weight = 0.0;
    for (start, len) in segments(duration, sampling) {
        let q = segment(tools, source, output, start, len, size, cancel).await?;
        let w = if len > 0.0 { len } else { 1.0 };
        total.ssim += q.ssim * w;
        total.psnr += q.psnr * w;
        weight += w;
    }
    Ok(Quality {
        ssim: total.ssim / weight,
        psnr: total.psnr / weight,
    })
}

async fn segment(
    tools: &Tools,
    source: &Path,
    output: &Path,
    start: f64,
    len: f64,
    (width, height): (u32, u32),
    cancel: &CancellationToken,
) -> Result<Quality, CompareError> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-nostats", "-v", "info"]
        .map(OsString::from)
        .to_vec();
    for input in [source, output] {
        if start > 0.0 {
            args.extend(["-ss".into(), format!("{start:.3}").into()]);
        }
        if len > 0.0 {
            args.extend(["-t".into(), format!("{len:.3}").into()]);
        }
        args.extend(["-i".into(), input_arg(input)]);
    }
    let restart = "settb=AVTB,setpts=PTS-STARTPTS";
    let graph = format!(
        "[1:v:0]{restart},format=yuv420p,split[d1][d2];\
         [0:v:0]{restart},scale={width}:{height}:flags=bicubic,format=yuv420p,split[r1][r2];\
         [d1][r1]ssim[s];[d2][r2]psnr[p]"
    );
    args.extend(["-filter_complex".into(), graph.into()]);
    for a in ["-map", "[s]", "-map", "[p]", "-f", "null", "-"] {
        args.push(a.into());
    }
    let stderr = tools.ffmpeg(&args, cancel).await?;
    parse(&stderr).ok_or_else(|| CompareError::Quality {
        output: output.to_path_buf(),
        why: format!(
            "FFmpeg's ssim/psnr filters printed no summary: {}",
            crate::plumbing::child::tail_lines(&stderr, 5)
        ),
    })
}

/// The SSIM and PSNR summaries of FFmpeg's log.
pub fn parse(log: &str) -> Option<Quality> {
    let value_after = |line: &str, key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        let word = rest.split_whitespace().next()?;
        match word {
            "inf" => Some(MAX_PSNR),
            w => w.parse::<f64>().ok().filter(|v| v.is_finite()),
        }
    };
    let ssim = log
        .lines()
        .filter(|l| l.contains("SSIM Y:"))
        .find_map(|l| value_after(l, "All:"))?;
    let psnr = log
        .lines()
        .filter(|l| l.contains("PSNR y:"))
        .find_map(|l| value_after(l, "average:"))?;
    Some(Quality {
        ssim,
        psnr: psnr.min(MAX_PSNR),
    })
}

/// How long one quality run may take at most.
pub(super) const RUN_LIMIT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_recordings_are_measured_whole_and_long_ones_sampled() {
        let s = Sampling::default();
        assert_eq!(segments(3.0, s), [(0.0, 3.0)]);
        assert_eq!(segments(18.0, s), [(0.0, 18.0)]);
        let long = segments(3600.0, s);
        assert_eq!(long.len(), 3);
        assert_eq!(long[0], (598.0, 4.0));
        assert_eq!(long[2], (2998.0, 4.0));
    }

    #[test]
    fn summaries_are_read_from_the_log() {
        let log = "[Parsed_ssim_6 @ 0x5] SSIM Y:0.990 (20.1) U:0.99 (21) V:0.99 (21) All:0.987654 (19.08)\n\
                   [Parsed_psnr_7 @ 0x6] PSNR y:41.2 u:44.0 v:44.1 average:42.03 min:39.9 max:45.0\n";
        let q = parse(log).unwrap();
        assert_eq!(q.ssim, 0.987654);
        assert_eq!(q.psnr, 42.03);
        let same = "SSIM Y:1.000000 (inf) U:1 (inf) V:1 (inf) All:1.000000 (inf)\nPSNR y:inf u:inf v:inf average:inf min:inf max:inf\n";
        assert_eq!(parse(same).unwrap().psnr, MAX_PSNR);
        assert_eq!(parse("nothing"), None);
    }
}
