//! Whether the first pictures of a transport stream's video can carry closed captions, read in
//! process from its packets, so that the caption probe (an ffprobe that decodes the first
//! [`crate::probe::CAPTION_PROBE_FRAMES`] frames) runs only when they can.
//!
//! FFmpeg's decoders find CEA-608/708 captions only in MPEG-2 picture user data (ATSC A/53
//! `GA94`, SCTE-20, DVD) and in H.264 SEI messages of type 4 (registered ITU-T T.35 data, where
//! A/53 travels). This scan answers one way only: [`Scan::NoCaptions`] when the video of the
//! first [`PICTURES`] pictures (twice the probe's frames, so that field pictures are covered)
//! holds no such carrier at all: no user data but the two kinds that are never captions (AFD
//! `DTG1`, bar data `GA94` type 6) and no SEI of type 4. Then the probe would find nothing and is
//! not run. Anything else, including anything this scan cannot read to the end (scrambled
//! packets, a PES it cannot parse, the read limit, another codec), is [`Scan::Maybe`]: the probe
//! runs as before, and its decoder decides. So a caption is never missed here; at worst the
//! probe runs.
//!
//! Bounded: at most [`MAX_BYTES`] of the file are read, and one picture's PES at most
//! [`MAX_PES`] bytes.

use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::read::unescape;
use crate::ts::Layout;

/// Pictures scanned: twice the caption probe's frames (a frame may be two field pictures).
pub const PICTURES: u32 = 2 * crate::probe::CAPTION_PROBE_FRAMES;
/// The most of the file read.
pub const MAX_BYTES: u64 = 64 << 20;
/// The largest PES (one picture) kept in memory.
pub const MAX_PES: usize = 16 << 20;

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The first pictures carry nothing FFmpeg reads captions from.
    NoCaptions,
    /// They may carry captions (or the scan could not tell): why.
    Maybe(String),
}

/// The video codecs scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// MPEG-2 video: user data start codes.
    Mpeg2,
    /// H.264: SEI NAL units.
    H264,
}

impl Codec {
    /// The codec of an ffprobe `codec_name`, if scanned.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "mpeg2video" => Some(Codec::Mpeg2),
            "h264" => Some(Codec::H264),
            _ => None,
        }
    }
}

/// Scans the video PID `pid` of the transport stream at `path`.
pub fn first_pictures(path: &Path, layout: Layout, pid: u16, codec: Codec) -> io::Result<Scan> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(layout.first))?;
    let mut file = BufReader::with_capacity(256 << 10, file.take(MAX_BYTES));
    let size = layout.packet as usize;
    let sync_at = if layout.packet == 192 { 4 } else { 0 };
    let mut packet = vec![0u8; size];
    let mut scanner = Scanner::new(codec);
    loop {
        match file.read_exact(&mut packet) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // The whole video (or the read limit) seen: the last PES counts too.
                let scan = scanner.end_pes();
                return Ok(match scan {
                    Some(found) => found,
                    None if file.get_ref().limit() == 0 => {
                        Scan::Maybe(format!("the first {MAX_BYTES} bytes hold fewer pictures"))
                    }
                    None => Scan::NoCaptions,
                });
            }
            Err(e) => return Err(e),
        }
        if let Some(found) = scanner.packet(&packet[sync_at..], pid) {
            return Ok(found);
        }
    }
}

/// The scan's state: the PES being gathered and the pictures seen.
struct Scanner {
    codec: Codec,
    pes: Vec<u8>,
    in_pes: bool,
    pictures: u32,
}

impl Scanner {
    fn new(codec: Codec) -> Self {
        Self {
            codec,
            pes: Vec::new(),
            in_pes: false,
            pictures: 0,
        }
    }

    /// One transport packet (from its sync byte); `Some` once the scan is decided.
    fn packet(&mut self, p: &[u8], pid: u16) -> Option<Scan> {
        if p.len() < 4 || p[0] != 0x47 {
            return Some(Scan::Maybe("lost the packet sync".into()));
        }
        if ((u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])) != pid {
            return None;
        }
        if p[3] >> 6 != 0 {
            return Some(Scan::Maybe("scrambled video packets".into()));
        }
        let mut at = 4;
        if p[3] & 0x20 != 0 {
            let Some(&adaptation) = p.get(4) else {
                return Some(Scan::Maybe("a packet cut short".into()));
            };
            at += 1 + usize::from(adaptation);
        }
        if p[3] & 0x10 == 0 {
            return None; // no payload
        }
        let Some(payload) = p.get(at..) else {
            return Some(Scan::Maybe(
                "an adaptation field longer than its packet".into(),
            ));
        };
        if p[1] & 0x40 != 0 {
            if let Some(found) = self.end_pes() {
                return Some(found);
            }
            // A PES header: 00 00 01, stream id, length, flags, header data length.
            let (Some([0, 0, 1]), Some(&header_len)) = (payload.get(..3), payload.get(8)) else {
                return Some(Scan::Maybe("a video PES without its header".into()));
            };
            let Some(es) = payload.get(9 + usize::from(header_len)..) else {
                return Some(Scan::Maybe("a PES header longer than its packet".into()));
            };
            self.in_pes = true;
            self.pes.extend_from_slice(es);
        } else if self.in_pes {
            if self.pes.len() + payload.len() > MAX_PES {
                return Some(Scan::Maybe(format!("a picture over {MAX_PES} bytes")));
            }
            self.pes.extend_from_slice(payload);
        }
        None
    }

    /// Scans the PES gathered; `Some` once the scan is decided.
    fn end_pes(&mut self) -> Option<Scan> {
        let pes = std::mem::take(&mut self.pes);
        let found = match self.codec {
            Codec::Mpeg2 => mpeg2(&pes, &mut self.pictures),
            Codec::H264 => h264(&pes, &mut self.pictures),
        };
        self.pes = pes;
        self.pes.clear();
        if found.is_some() {
            return found;
        }
        (self.pictures >= PICTURES).then_some(Scan::NoCaptions)
    }
}

/// Where each start code (`00 00 01`) of `es` is followed by its first byte, and what follows
/// until the next start code.
fn units(es: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|s| s - 3)
        .chain(std::iter::once(es.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| es.get(s..e.max(s)).unwrap_or_default())
}

/// MPEG-2: picture start codes (0x00) counted; user data (0xB2) other than AFD and bar data is
/// a possible caption carrier.
fn mpeg2(es: &[u8], pictures: &mut u32) -> Option<Scan> {
    for unit in units(es) {
        match unit.first() {
            Some(0x00) => *pictures += 1,
            Some(0xB2) => {
                let data = &unit[1..];
                let never_captions = data.starts_with(b"DTG1") || data.starts_with(b"GA94\x06");
                if !never_captions {
                    return Some(Scan::Maybe("MPEG-2 user data".into()));
                }
            }
            _ => {}
        }
        if *pictures > PICTURES {
            break;
        }
    }
    None
}

/// H.264: a slice that starts a picture (`first_mb_in_slice` 0) counts one; an SEI carrying a
/// message of type 4 (registered ITU-T T.35 data, where A/53 captions travel) is a possible
/// caption carrier.
fn h264(es: &[u8], pictures: &mut u32) -> Option<Scan> {
    for unit in units(es) {
        let Some(&header) = unit.first() else {
            continue;
        };
        match header & 0x1F {
            1 | 5 if unit.get(1).is_some_and(|b| b & 0x80 != 0) => *pictures += 1,
            6 if sei_may_carry_captions(&unescape(&unit[1..])) => {
                return Some(Scan::Maybe("an H.264 SEI with T.35 data".into()));
            }
            _ => {}
        }
        if *pictures > PICTURES {
            break;
        }
    }
    None
}

/// Whether an SEI RBSP holds a message of type 4, or cannot be read to its end.
fn sei_may_carry_captions(rbsp: &[u8]) -> bool {
    let mut t35 = false;
    let whole = super::read::sei_messages(rbsp, |kind, _| t35 |= kind == 4);
    t35 || !whole
}

#[cfg(test)]
mod tests;
