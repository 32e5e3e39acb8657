//! What an MP4 holds, read from its boxes in process (no ffprobe): each track's handler, codec
//! (the sample entry's four-character code, the AVC profile and whether its pictures may be
//! coded as fields, the AAC object type), timescale, duration and sample count; the movie's
//! duration; and whether `moov` comes before `mdat`. Verification of the agent's own outputs
//! takes these figures instead of starting an ffprobe for every file ([`crate::publish::verify`]).
//!
//! The file is hostile until checked: every box's size is checked against its parent and the
//! file, containers nest at most [`MAX_DEPTH`] deep, at most [`MAX_BOXES`] boxes and
//! [`MAX_TRACKS`] tracks are looked at, a box is read into memory only when it is one this
//! reader needs and no larger than its bound ([`MAX_LEAF`], [`MAX_STTS`]), and every field is
//! read through a bounds check. A malformed file is an [`Mp4Error`] naming the box and its
//! offset, never a panic. Only what is needed is read: box headers, `mvhd`, `elst`, `mdhd`,
//! `hdlr`, `stsd`, `stts` and the first bytes of `stsz` and `ctts`; never the media.
//!
//! Durations follow FFmpeg's MP4 reader for the files its muxer writes, so that they agree with
//! what ffprobe reports for the same file (a test holds them to it, on real FFmpeg outputs): a
//! track lasts the smaller of its `mdhd` duration and the sum of its `stts` sample durations,
//! then no longer than its edit list says (see [`Track::duration`]).

mod avc;
mod boxes;
mod sample_entry;
mod samples;

use std::io::{Read, Seek};
use std::path::Path;

pub use avc::{pps_ids, slice_pps_id, Sps};
use boxes::{Cursor, Header};
pub use sample_entry::{AudioConfig, SampleEntry};
pub use samples::{video_samples, Sample, VideoSamples};

use crate::probe::{AudioStream, MediaInfo, VideoStream};

/// How deep containers may nest (`moov/trak/mdia/minf/stbl/stsd/avc1/avcC` is 8).
pub const MAX_DEPTH: usize = 12;
/// How many boxes one file may show this reader.
pub const MAX_BOXES: usize = 100_000;
/// How many tracks one movie may have.
pub const MAX_TRACKS: usize = 64;
/// The largest leaf box read into memory (`mvhd`, `mdhd`, `hdlr`, `elst`, `stsd`).
pub const MAX_LEAF: u64 = 1 << 20;
/// The largest `stts` (time-to-sample table) read: 8 bytes an entry, so 8 million entries, more
/// than a day of video at 60 frames a second with a different duration for every frame.
pub const MAX_STTS: u64 = 64 << 20;
/// How many edits of an edit list are kept.
const MAX_EDITS: usize = 1024;

/// Why an MP4's boxes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    /// Reading the file failed.
    #[error("cannot read the MP4: {0}")]
    Io(#[from] std::io::Error),
    /// The boxes are not a well-formed MP4 (or exceed this reader's bounds).
    #[error("malformed MP4: {0}")]
    Malformed(String),
}

/// What an MP4's boxes say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mp4Facts {
    /// Whether a `moov` box comes before the first `mdat` (fast start).
    pub moov_first: bool,
    /// The movie's timescale (`mvhd`, units a second).
    pub movie_timescale: u32,
    /// The movie's duration in its timescale (`mvhd`).
    pub movie_duration: u64,
    /// Whether the movie announces fragments (`mvex`): its tables then hold only part of it.
    pub fragmented: bool,
    /// The tracks, in file order (ffprobe's stream indexes).
    pub tracks: Vec<Track>,
}

/// One track (`trak`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Track {
    /// The handler type (`hdlr`): `vide`, `soun`, `clcp`, `text`, `tmcd`...
    pub handler: [u8; 4],
    /// The first sample description (`stsd`).
    pub entry: Option<SampleEntry>,
    /// The media's timescale (`mdhd`, units a second).
    pub timescale: u32,
    /// The media's duration in its timescale (`mdhd`).
    pub media_duration: u64,
    /// The sum of every sample's duration (`stts`), in the media's timescale.
    pub stts_duration: u64,
    /// The number of samples (`stsz`).
    pub samples: u32,
    /// Whether samples have composition offsets (`ctts`: B-frames).
    pub has_ctts: bool,
    /// The edit list (`elst`): (duration in the movie's timescale, media time; -1: empty).
    pub edits: Vec<(u64, i64)>,
    /// The `stts` runs (count, duration), kept to find where an edit starts.
    stts: Vec<(u32, u32)>,
    /// The sample tables, when asked for ([`video_samples`]).
    tables: Option<Box<samples::Tables>>,
}

impl Track {
    /// Whether it is a video track.
    pub fn is_video(&self) -> bool {
        &self.handler == b"vide"
    }

    /// Whether it is a sound track.
    pub fn is_audio(&self) -> bool {
        &self.handler == b"soun"
    }

    /// The track's duration in its media timescale, as FFmpeg's MP4 reader gives it: the
    /// smaller of `mdhd`'s duration and the samples' (`stts`), each where known; then, with an
    /// edit list of one edit of media (after any empty edits), no longer than that edit's
    /// duration plus where it starts in the media, less the start of the sample it starts in (a
    /// track with composition offsets starts decoding at 0). `movie_timescale` converts the
    /// edit's duration. `None` when nothing says.
    pub fn duration(&self, movie_timescale: u32) -> Option<u64> {
        let mut duration = match (self.media_duration, self.stts_duration) {
            (0, 0) => return None,
            (0, s) => s,
            (m, 0) => m,
            (m, s) => m.min(s),
        };
        let media: Vec<&(u64, i64)> = self.edits.iter().filter(|(_, t)| *t >= 0).collect();
        if let ([&(edit, start)], true) = (media.as_slice(), movie_timescale > 0) {
            let edit = rescale(edit, self.timescale, movie_timescale);
            let start = start as u64;
            let first = if self.has_ctts {
                0
            } else {
                self.sample_start(start)
            };
            let end = edit.saturating_add(start - first.min(start));
            duration = duration.min(end);
        }
        Some(duration)
    }

    /// The track's duration in seconds (see [`Track::duration`]).
    pub fn secs(&self, movie_timescale: u32) -> Option<f64> {
        if self.timescale == 0 {
            return None;
        }
        self.duration(movie_timescale)
            .map(|d| d as f64 / f64::from(self.timescale))
    }

    /// The decode time at which the sample holding media time `t` starts.
    fn sample_start(&self, t: u64) -> u64 {
        let mut at = 0u64;
        for &(count, delta) in &self.stts {
            if delta == 0 {
                continue;
            }
            let run = u64::from(count) * u64::from(delta);
            if t < at.saturating_add(run) {
                return at + (t - at) / u64::from(delta) * u64::from(delta);
            }
            at = at.saturating_add(run);
        }
        at.min(t)
    }
}

/// `value` (in timescale `from`) in timescale `to`, rounded to the nearest.
fn rescale(value: u64, to: u32, from: u32) -> u64 {
    let scaled = (u128::from(value) * u128::from(to) + u128::from(from) / 2) / u128::from(from);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// The format name ffprobe gives every file its MP4 reader reads.
pub const FORMAT_NAME: &str = "mov,mp4,m4a,3gp,3g2,mj2";

impl Mp4Facts {
    /// The movie's duration in seconds (`mvhd`), 0 when unknown.
    pub fn movie_secs(&self) -> f64 {
        if self.movie_timescale == 0 {
            return 0.0;
        }
        self.movie_duration as f64 / f64::from(self.movie_timescale)
    }

    /// The facts as the pipeline takes them from ffprobe: the first video track, every sound
    /// track, the rest counted. Closed captions are not looked for (`closed_captions` false,
    /// as ffprobe's stream list says without decoding); a caption check decodes for itself.
    pub fn media_info(&self) -> MediaInfo {
        let movie = self.movie_timescale;
        let video = self
            .tracks
            .iter()
            .enumerate()
            .find(|(_, t)| t.is_video())
            .map(|(index, t)| {
                let entry = t.entry.as_ref();
                let sps = entry.and_then(|e| e.sps.as_ref());
                VideoStream {
                    codec: entry.map(SampleEntry::codec_name).unwrap_or_default(),
                    profile: sps.map(|s| s.profile_name().to_owned()).unwrap_or_default(),
                    pix_fmt: String::new(),
                    field_order: entry.map(SampleEntry::field_order).unwrap_or_default(),
                    width: entry.map_or(0, |e| u32::from(e.width)),
                    height: entry.map_or(0, |e| u32::from(e.height)),
                    closed_captions: false,
                    index: index as u32,
                    pid: None,
                    duration: t.secs(movie).filter(|d| *d > 0.0),
                }
            });
        let audio = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_audio())
            .map(|(index, t)| AudioStream {
                codec: t
                    .entry
                    .as_ref()
                    .map(SampleEntry::codec_name)
                    .unwrap_or_default(),
                index: index as u32,
                pid: None,
                duration: t.secs(movie).filter(|d| *d > 0.0),
            })
            .collect();
        let other_streams = self
            .tracks
            .iter()
            .filter(|t| !t.is_video() && !t.is_audio())
            .count();
        MediaInfo {
            format_name: FORMAT_NAME.to_owned(),
            duration: self.movie_secs(),
            video,
            audio,
            other_streams,
            programs: Vec::new(),
            program: None,
        }
    }
}

/// Reads the facts of the MP4 at `path`.
pub fn read(path: &Path) -> Result<Mp4Facts, Mp4Error> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    parse(std::io::BufReader::with_capacity(16 << 10, file), len)
}

/// Reads the facts of an MP4 of `len` bytes from `source`.
pub fn parse<R: Read + Seek>(source: R, len: u64) -> Result<Mp4Facts, Mp4Error> {
    parse_with(source, len, false)
}

/// [`parse`], keeping each track's sample tables when `tables`.
fn parse_with<R: Read + Seek>(source: R, len: u64, tables: bool) -> Result<Mp4Facts, Mp4Error> {
    let mut file = Cursor::new(source, len);
    let mut facts = Mp4Facts::default();
    let (mut seen_moov, mut seen_mdat) = (false, false);
    let mut pos = 0;
    while pos < len {
        let h = file.header(pos, len, 0)?;
        match &h.kind {
            b"moov" if !seen_moov => {
                seen_moov = true;
                facts.moov_first = !seen_mdat;
                movie(&mut file, &h, &mut facts, tables)?;
            }
            b"mdat" => seen_mdat = true,
            _ => {}
        }
        pos = h.end;
    }
    if !seen_moov {
        return Err(Mp4Error::Malformed("no moov box".into()));
    }
    Ok(facts)
}

/// The `moov` box: the movie header and its tracks.
fn movie<R: Read + Seek>(
    file: &mut Cursor<R>,
    moov: &Header,
    facts: &mut Mp4Facts,
    tables: bool,
) -> Result<(), Mp4Error> {
    let mut pos = moov.body;
    while pos < moov.end {
        let h = file.header(pos, moov.end, 1)?;
        match &h.kind {
            b"mvhd" => {
                let body = file.body(&h, MAX_LEAF)?;
                let (timescale, duration) = boxes::timescale_and_duration(&body, &h)?;
                facts.movie_timescale = timescale;
                facts.movie_duration = duration;
            }
            b"mvex" => facts.fragmented = true,
            b"trak" => {
                if facts.tracks.len() >= MAX_TRACKS {
                    return Err(h.malformed(format!("more than {MAX_TRACKS} tracks")));
                }
                let mut track = Track::default();
                if tables {
                    track.tables = Some(Box::default());
                }
                walk_track(file, &h, 2, &mut track)?;
                facts.tracks.push(track);
            }
            _ => {}
        }
        pos = h.end;
    }
    Ok(())
}

/// The boxes of a track that matter, wherever they sit under `trak` (`edts`, `mdia`, `minf`
/// and `stbl` are walked into).
fn walk_track<R: Read + Seek>(
    file: &mut Cursor<R>,
    parent: &Header,
    depth: usize,
    track: &mut Track,
) -> Result<(), Mp4Error> {
    let mut pos = parent.body;
    while pos < parent.end {
        let h = file.header(pos, parent.end, depth)?;
        match &h.kind {
            b"edts" | b"mdia" | b"minf" | b"stbl" => walk_track(file, &h, depth + 1, track)?,
            b"elst" => track.edits = boxes::edits(&file.body(&h, MAX_LEAF)?, &h, MAX_EDITS)?,
            b"mdhd" => {
                let body = file.body(&h, MAX_LEAF)?;
                (track.timescale, track.media_duration) = boxes::timescale_and_duration(&body, &h)?;
            }
            // The media's handler; QuickTime's `minf` has a data handler `hdlr` of its own.
            b"hdlr" if &parent.kind == b"mdia" => {
                let body = file.body(&h, MAX_LEAF)?;
                track.handler = boxes::array::<4>(&body, 8, &h)?;
            }
            b"stsd" => {
                let body = file.body(&h, MAX_LEAF)?;
                track.entry = sample_entry::first(&body, &h, depth + 1)?;
            }
            b"stts" => {
                let body = file.body(&h, MAX_STTS)?;
                (track.stts, track.stts_duration) = boxes::time_to_sample(&body, &h)?;
            }
            b"stsz" => {
                let head = file.head(&h, 12)?;
                track.samples = boxes::u32_at(&head, 8, &h)?;
                if let Some(tables) = track.tables.as_mut() {
                    tables.sizes(&file.body(&h, samples::MAX_TABLE)?, &h)?;
                }
            }
            b"ctts" => {
                track.has_ctts = true;
                if let Some(tables) = track.tables.as_mut() {
                    tables.composition(&file.body(&h, samples::MAX_TABLE)?, &h)?;
                }
            }
            b"stsc" | b"stco" | b"co64" => {
                if let Some(tables) = track.tables.as_mut() {
                    let body = file.body(&h, samples::MAX_TABLE)?;
                    tables.chunks(&h.kind, &body, &h)?;
                }
            }
            _ => {}
        }
        pos = h.end;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
