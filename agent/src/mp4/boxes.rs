//! Box headers and the leaf boxes [`super`] reads, each through a bounds check: a box whose
//! size is below its header's or runs past its parent (or the file) is malformed, and so is a
//! field past the end of its box.

use std::io::{Read, Seek, SeekFrom};

use super::{Mp4Error, MAX_BOXES, MAX_DEPTH};

/// A box's header: its type and where it and its body lie in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The box type (`moov`, `trak`...).
    pub kind: [u8; 4],
    /// Where the box starts.
    pub start: u64,
    /// Where its body starts (after the 8- or 16-byte header).
    pub body: u64,
    /// Where it ends (exclusive).
    pub end: u64,
}

impl Header {
    /// An error about this box.
    pub fn malformed(&self, what: impl std::fmt::Display) -> Mp4Error {
        Mp4Error::Malformed(format!(
            "{} box at offset {}: {what}",
            String::from_utf8_lossy(&self.kind),
            self.start
        ))
    }

    /// The body's length.
    pub fn body_len(&self) -> u64 {
        self.end - self.body
    }
}

/// The file, and how many boxes were looked at.
pub struct Cursor<R> {
    source: R,
    len: u64,
    boxes: usize,
}

impl<R: Read + Seek> Cursor<R> {
    /// A file of `len` bytes.
    pub fn new(source: R, len: u64) -> Self {
        Self {
            source,
            len,
            boxes: 0,
        }
    }

    /// The header of the box at `pos`, inside a parent ending at `parent_end`, `depth` boxes
    /// deep. A size of 0 runs to the parent's end; a size of 1 is followed by a 64-bit size.
    pub fn header(&mut self, pos: u64, parent_end: u64, depth: usize) -> Result<Header, Mp4Error> {
        let at = |what: &str| Mp4Error::Malformed(format!("box at offset {pos}: {what}"));
        if depth > MAX_DEPTH {
            return Err(at(&format!("nested more than {MAX_DEPTH} boxes deep")));
        }
        self.boxes += 1;
        if self.boxes > MAX_BOXES {
            return Err(at(&format!("more than {MAX_BOXES} boxes")));
        }
        let parent_end = parent_end.min(self.len);
        if parent_end.saturating_sub(pos) < 8 {
            return Err(at(&format!(
                "{} bytes left before the end of its parent or of the file, less than a box header",
                parent_end.saturating_sub(pos)
            )));
        }
        let mut head = [0u8; 16];
        self.read_at(pos, &mut head[..8])?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (size, header_len) = match size32 {
            0 => (parent_end - pos, 8),
            1 => {
                if parent_end - pos < 16 {
                    return Err(at("a 64-bit size runs past the end of its parent"));
                }
                self.read_at(pos + 8, &mut head[8..16])?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&head[8..16]);
                (u64::from_be_bytes(b), 16)
            }
            s => (u64::from(s), 8),
        };
        let h = Header {
            kind,
            start: pos,
            body: pos + header_len,
            end: pos.saturating_add(size),
        };
        if size < header_len {
            return Err(h.malformed(format!("size {size} is smaller than its header")));
        }
        if h.end > parent_end {
            return Err(h.malformed(format!(
                "size {size} runs past the end of its parent or of the file ({} bytes left)",
                parent_end - pos
            )));
        }
        Ok(h)
    }

    /// The body of `h`, which may be at most `max` bytes long.
    pub fn body(&mut self, h: &Header, max: u64) -> Result<Vec<u8>, Mp4Error> {
        let len = h.body_len();
        if len > max {
            return Err(h.malformed(format!(
                "{len} bytes, more than the {max} this reader takes"
            )));
        }
        let mut body = vec![0u8; len as usize];
        self.read_at(h.body, &mut body)?;
        Ok(body)
    }

    /// The first `n` bytes of the body of `h`.
    pub fn head(&mut self, h: &Header, n: u64) -> Result<Vec<u8>, Mp4Error> {
        if h.body_len() < n {
            return Err(h.malformed(format!("{} bytes, too short (at least {n})", h.body_len())));
        }
        let mut head = vec![0u8; n as usize];
        self.read_at(h.body, &mut head)?;
        Ok(head)
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<(), Mp4Error> {
        self.source.seek(SeekFrom::Start(pos))?;
        self.source.read_exact(buf)?;
        Ok(())
    }
}

/// The bytes `at..at + N` of a box's body.
pub fn array<const N: usize>(body: &[u8], at: usize, h: &Header) -> Result<[u8; N], Mp4Error> {
    body.get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            h.malformed(format!(
                "{} bytes, too short for a field at {at}",
                body.len()
            ))
        })
}

/// The big-endian `u32` at `at`.
pub fn u32_at(body: &[u8], at: usize, h: &Header) -> Result<u32, Mp4Error> {
    array::<4>(body, at, h).map(u32::from_be_bytes)
}

/// The big-endian `u64` at `at`.
pub fn u64_at(body: &[u8], at: usize, h: &Header) -> Result<u64, Mp4Error> {
    array::<8>(body, at, h).map(u64::from_be_bytes)
}

/// The timescale and duration of an `mvhd` or `mdhd` body (version 0: 32-bit times, version 1:
/// 64-bit). A duration of all ones means unknown (0 here).
pub fn timescale_and_duration(body: &[u8], h: &Header) -> Result<(u32, u64), Mp4Error> {
    let version = array::<1>(body, 0, h)?[0];
    let (timescale, duration) = match version {
        0 => {
            let d = u32_at(body, 16, h)?;
            (
                u32_at(body, 12, h)?,
                if d == u32::MAX { 0 } else { u64::from(d) },
            )
        }
        1 => {
            let d = u64_at(body, 24, h)?;
            (u32_at(body, 20, h)?, if d == u64::MAX { 0 } else { d })
        }
        v => return Err(h.malformed(format!("unknown version {v}"))),
    };
    Ok((timescale, duration))
}

/// An `elst` body's edits, (segment duration, media time), at most `max` of them.
pub fn edits(body: &[u8], h: &Header, max: usize) -> Result<Vec<(u64, i64)>, Mp4Error> {
    let version = array::<1>(body, 0, h)?[0];
    let count = u32_at(body, 4, h)? as usize;
    let entry = match version {
        0 => 12,
        1 => 20,
        v => return Err(h.malformed(format!("unknown version {v}"))),
    };
    if count > max {
        return Err(h.malformed(format!("{count} edits, more than {max}")));
    }
    let mut edits = Vec::with_capacity(count);
    for i in 0..count {
        let at = 8 + i * entry;
        edits.push(if version == 0 {
            let time = i32::from_be_bytes(array::<4>(body, at + 4, h)?);
            (u64::from(u32_at(body, at, h)?), i64::from(time))
        } else {
            let time = i64::from_be_bytes(array::<8>(body, at + 8, h)?);
            (u64_at(body, at, h)?, time)
        });
    }
    Ok(edits)
}

/// An `stts` body's runs (sample count, sample duration) and the sum of their durations.
pub fn time_to_sample(body: &[u8], h: &Header) -> Result<(Vec<(u32, u32)>, u64), Mp4Error> {
    let count = u32_at(body, 4, h)? as usize;
    let room = body.len().saturating_sub(8) / 8;
    if count > room {
        return Err(h.malformed(format!("{count} entries announced, room for {room}")));
    }
    let mut runs = Vec::with_capacity(count);
    let mut total = 0u64;
    for i in 0..count {
        let at = 8 + i * 8;
        let (n, delta) = (u32_at(body, at, h)?, u32_at(body, at + 4, h)?);
        total = total.saturating_add(u64::from(n) * u64::from(delta));
        runs.push((n, delta));
    }
    Ok((runs, total))
}
