//! The samples of an MP4's first video track, from its sample tables (`stsz`, `stsc`,
//! `stco`/`co64`, `stts`, `ctts`) and its edit list: where each sample lies in the file and when
//! it is shown. The agent reads the caption bytes of its own H.264 outputs from there without
//! starting FFmpeg ([`crate::captions::from_mp4`]).
//!
//! Times follow FFmpeg's MP4 reader for the files its muxer writes: a sample is shown at its
//! decode time plus its composition offset, moved by the edit list (later by the empty edits
//! before the first edit of media, earlier by where that edit starts in the media); the file
//! starts where the first of its video and sound tracks is first shown (a sound track whose edit
//! skips its encoder delay shows from the edit's start), as ffprobe's `format=start_time` says.
//!
//! Every table is bounded ([`MAX_TABLE`], [`MAX_SAMPLES`]), and checked against the sample
//! count and every sample against the file's length: tables that do not add up are an
//! [`Mp4Error`] naming the box, never a panic.

use std::path::Path;

use super::boxes::{array, u32_at, u64_at, Header};
use super::{rescale, Mp4Error, Track};

/// The largest sample table read (`stsz`, `stsc`, `stco`, `co64`, `ctts`).
pub const MAX_TABLE: u64 = 64 << 20;
/// The most samples a track may have here: over 18 hours at 60 frames a second. A longer
/// recording's captions are read by FFmpeg instead.
pub const MAX_SAMPLES: usize = 4_000_000;

/// A track's sample tables, as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Tables {
    /// Each sample's size (`stsz`).
    sizes: Vec<u32>,
    /// Runs of chunks: (first chunk, counted from 1; samples per chunk) (`stsc`).
    runs: Vec<(u32, u32)>,
    /// Each chunk's offset in the file (`stco`, `co64`).
    chunks: Vec<u64>,
    /// Runs of samples: (sample count, composition offset) (`ctts`).
    offsets: Vec<(u32, i64)>,
}

/// `count` entries of `size` bytes after a table's `header` bytes, or why not.
fn entries(body: &[u8], h: &Header, header: usize, size: usize) -> Result<usize, Mp4Error> {
    let count = u32_at(body, header - 4, h)? as usize;
    let room = body.len().saturating_sub(header) / size;
    if count > room {
        return Err(h.malformed(format!("{count} entries announced, room for {room}")));
    }
    if count > MAX_SAMPLES {
        return Err(h.malformed(format!("{count} entries, more than {MAX_SAMPLES}")));
    }
    Ok(count)
}

impl Tables {
    /// An `stsz` body.
    pub(super) fn sizes(&mut self, body: &[u8], h: &Header) -> Result<(), Mp4Error> {
        let uniform = u32_at(body, 4, h)?;
        if uniform != 0 {
            let count = u32_at(body, 8, h)? as usize;
            if count > MAX_SAMPLES {
                return Err(h.malformed(format!("{count} samples, more than {MAX_SAMPLES}")));
            }
            self.sizes = vec![uniform; count];
            return Ok(());
        }
        let count = entries(body, h, 12, 4)?;
        self.sizes = (0..count)
            .map(|i| u32_at(body, 12 + 4 * i, h))
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// A `ctts` body (offsets read as signed, as FFmpeg reads both versions).
    pub(super) fn composition(&mut self, body: &[u8], h: &Header) -> Result<(), Mp4Error> {
        let count = entries(body, h, 8, 8)?;
        self.offsets = (0..count)
            .map(|i| {
                let n = u32_at(body, 8 + 8 * i, h)?;
                let offset = i32::from_be_bytes(array::<4>(body, 12 + 8 * i, h)?);
                Ok((n, i64::from(offset)))
            })
            .collect::<Result<_, Mp4Error>>()?;
        Ok(())
    }

    /// An `stsc`, `stco` or `co64` body.
    pub(super) fn chunks(
        &mut self,
        kind: &[u8; 4],
        body: &[u8],
        h: &Header,
    ) -> Result<(), Mp4Error> {
        match kind {
            b"stsc" => {
                let count = entries(body, h, 8, 12)?;
                self.runs = (0..count)
                    .map(|i| Ok((u32_at(body, 8 + 12 * i, h)?, u32_at(body, 12 + 12 * i, h)?)))
                    .collect::<Result<_, Mp4Error>>()?;
            }
            b"stco" => {
                let count = entries(body, h, 8, 4)?;
                self.chunks = (0..count)
                    .map(|i| u32_at(body, 8 + 4 * i, h).map(u64::from))
                    .collect::<Result<_, _>>()?;
            }
            _ => {
                let count = entries(body, h, 8, 8)?;
                self.chunks = (0..count)
                    .map(|i| u64_at(body, 8 + 8 * i, h))
                    .collect::<Result<_, _>>()?;
            }
        }
        Ok(())
    }
}

/// One sample of a video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length in bytes.
    pub size: u32,
    /// When it is shown, in the track's timescale (edit list applied).
    pub pts: i64,
}

/// The first video track's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSamples {
    /// The track's timescale (units a second).
    pub timescale: u32,
    /// The bytes of the length before each NAL unit (`avcC`); `None` when the track is not
    /// H.264 described by an `avcC`.
    pub nal_length_size: Option<u8>,
    /// Where the file starts, in seconds (as ffprobe's `format=start_time`).
    pub start: f64,
    /// The samples, in decode order.
    pub samples: Vec<Sample>,
}

/// Where the file's samples are, not the media: "malformed" with what does not add up.
fn malformed(what: impl std::fmt::Display) -> Mp4Error {
    Mp4Error::Malformed(format!("the video track's sample tables: {what}"))
}

/// The samples of the first video track of the MP4 at `path`.
pub fn video_samples(path: &Path) -> Result<VideoSamples, Mp4Error> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let facts = super::parse_with(std::io::BufReader::with_capacity(64 << 10, file), len, true)?;
    if facts.fragmented {
        return Err(Mp4Error::Malformed(
            "a fragmented MP4 (its tables do not hold the whole movie)".into(),
        ));
    }
    let movie = facts.movie_timescale;
    let track = facts
        .tracks
        .iter()
        .find(|t| t.is_video())
        .ok_or_else(|| Mp4Error::Malformed("no video track".into()))?;
    if track.timescale == 0 {
        return Err(malformed("a timescale of 0"));
    }
    let samples = track.placed_samples(len, movie)?;
    let start = facts
        .tracks
        .iter()
        .filter(|t| t.is_video() || t.is_audio())
        .filter_map(|t| t.first_shown(movie))
        .fold(f64::INFINITY, f64::min);
    Ok(VideoSamples {
        timescale: track.timescale,
        nal_length_size: track.entry.as_ref().and_then(|e| e.nal_length_size),
        start: if start.is_finite() { start } else { 0.0 },
        samples,
    })
}

impl Track {
    /// The empty edits before the first edit of media, in the media's timescale, and where
    /// that edit starts in the media (0 without one).
    fn edit(&self, movie_timescale: u32) -> (i64, i64) {
        let mut empty = 0u64;
        let mut media_start = 0;
        for &(duration, time) in &self.edits {
            if time < 0 {
                empty = empty.saturating_add(duration);
                continue;
            }
            media_start = time;
            break;
        }
        let empty = if movie_timescale == 0 {
            0
        } else {
            rescale(empty, self.timescale, movie_timescale)
        };
        (i64::try_from(empty).unwrap_or(i64::MAX), media_start)
    }

    /// When the track is first shown, in seconds: its earliest sample's time moved by the edit
    /// list, and not before its edit of media begins.
    fn first_shown(&self, movie_timescale: u32) -> Option<f64> {
        if self.timescale == 0 || self.samples == 0 {
            return None;
        }
        let (empty, media_start) = self.edit(movie_timescale);
        let earliest = if self.has_ctts {
            self.min_composition().unwrap_or(0)
        } else {
            0
        };
        let shown = (earliest - media_start + empty).max(empty);
        Some(shown as f64 / f64::from(self.timescale))
    }

    /// The earliest decode time plus composition offset over the track's samples.
    fn min_composition(&self) -> Option<i64> {
        let t = self.tables.as_deref()?;
        let mut offsets = Runs::new(&t.offsets);
        let (mut dts, mut left) = (0i64, t.sizes.len());
        let mut min: Option<i64> = None;
        for &(count, delta) in &self.stts {
            let count = (count as usize).min(left);
            left -= count;
            for _ in 0..count {
                let pts = dts.saturating_add(offsets.next());
                min = Some(min.map_or(pts, |m| m.min(pts)));
                dts = dts.saturating_add(i64::from(delta));
            }
        }
        min
    }

    /// Every sample's place in the file and time, in decode order.
    fn placed_samples(&self, file_len: u64, movie_timescale: u32) -> Result<Vec<Sample>, Mp4Error> {
        let t = self
            .tables
            .as_deref()
            .ok_or_else(|| malformed("not read"))?;
        let n = t.sizes.len();
        let mut placed: Vec<Sample> = Vec::with_capacity(n);
        for (i, &(first, per)) in t.runs.iter().enumerate() {
            let next = t
                .runs
                .get(i + 1)
                .map_or(t.chunks.len() as u64 + 1, |r| u64::from(r.0));
            if first == 0 || u64::from(first) > t.chunks.len() as u64 || next <= u64::from(first) {
                return Err(malformed(format!(
                    "stsc entry {i} (first chunk {first}) is out of order or past the {} chunks",
                    t.chunks.len()
                )));
            }
            for chunk in u64::from(first)..next.min(t.chunks.len() as u64 + 1) {
                let mut offset = t.chunks[(chunk - 1) as usize];
                for _ in 0..per {
                    let Some(&size) = t.sizes.get(placed.len()) else {
                        break;
                    };
                    let end = offset.saturating_add(u64::from(size));
                    if end > file_len {
                        return Err(malformed(format!(
                            "sample {} ends at byte {end}, past the file's {file_len}",
                            placed.len()
                        )));
                    }
                    placed.push(Sample {
                        offset,
                        size,
                        pts: 0,
                    });
                    offset = end;
                }
                if placed.len() == n {
                    break;
                }
            }
        }
        if placed.len() != n {
            return Err(malformed(format!(
                "the chunks hold {} of the {n} samples",
                placed.len()
            )));
        }
        let (empty, media_start) = self.edit(movie_timescale);
        let mut offsets = Runs::new(&t.offsets);
        let mut dts = 0i64;
        let mut at = 0usize;
        for &(count, delta) in &self.stts {
            for _ in 0..count {
                let Some(sample) = placed.get_mut(at) else {
                    break;
                };
                sample.pts = dts
                    .saturating_add(offsets.next())
                    .saturating_sub(media_start)
                    .saturating_add(empty);
                dts = dts.saturating_add(i64::from(delta));
                at += 1;
            }
        }
        if at != n {
            return Err(malformed(format!("stts times {at} of the {n} samples")));
        }
        Ok(placed)
    }
}

/// The values of (count, value) runs, one sample at a time; 0 past the last run.
struct Runs<'a> {
    runs: std::slice::Iter<'a, (u32, i64)>,
    current: Option<(u32, i64)>,
}

impl<'a> Runs<'a> {
    fn new(runs: &'a [(u32, i64)]) -> Self {
        Self {
            runs: runs.iter(),
            current: None,
        }
    }

    fn next(&mut self) -> i64 {
        loop {
            match self.current {
                Some((left, value)) if left > 0 => {
                    self.current = Some((left - 1, value));
                    return value;
                }
                _ => match self.runs.next() {
                    Some(&run) => self.current = Some(run),
                    None => return 0,
                },
            }
        }
    }
}
