//! The source's caption bytes straight from an MPEG transport stream, without decoding a
//! picture: the broadcast case (MPEG-2 or H.264 video carrying ATSC A/53 captions), read here
//! in a fraction of the CPU time FFmpeg's decoder ([`super::read::frames`]) spends on a 1080i
//! recording.
//!
//! # How
//! The PAT and PMTs at the start of the file name the video's PID and codec. Every packet of
//! that PID is then read in order; each PES's PTS is taken from its header, and its payload goes
//! through a start-code scanner that keeps only the first bytes of each unit (a picture header,
//! a NAL unit header, the whole of a user data unit or SEI NAL unit, up to a bound). The caption
//! bytes are attached to pictures as FFmpeg's decoders attach them:
//!
//! - **MPEG-2**: every A/53 user data unit (start code `0x000001B2`, `GA94`, type 3) adds its
//!   `cc_data` to what the next decoded picture carries (at that picture's first slice);
//!   pictures FFmpeg's decoder skips at the start (before a sequence header, P-pictures before
//!   the first I-picture, B-pictures of an open GOP without two reference pictures) pass their
//!   bytes on to the next picture, as there. Each picture's time is the PTS of the PES its
//!   header starts in.
//! - **H.264**: access units as [`super::read::AccessUnits`] splits them (the same code reads
//!   the MP4's captions for the output check), each with the PTS of the PES its first NAL unit
//!   starts in; units before the first IDR or recovery point, and those shown before it (the
//!   leading pictures of an open GOP), are skipped, as FFmpeg's decoder does not show them.
//!
//! The frames come back in presentation order (sorted by PTS: MPEG-2 and H.264 send B-pictures
//! after the pictures they refer to), with their times from the file's start time, as
//! [`super::read::frames`] gives them.
//!
//! # When it gives way
//! Anything outside that well-trodden case makes [`read`] return [`GiveWay`] with the reason,
//! and the caller reads the captions through FFmpeg's decoder instead: not a transport stream,
//! no PMT near the start, more than one video stream or another codec, scrambled video, lost
//! packet sync, a continuity-counter gap or the transport error flag (a damaged recording, whose
//! pictures FFmpeg's decoder may drop or conceal), a PES header that does not fit its packet,
//! a picture without its own PTS, MPEG-2 or H.264 field pictures (H.264 MBAFF frames are
//! read), an H.264 parameter set or slice header it cannot read, caption user data in another
//! format (SCTE 20, DVD), or a unit larger than its bound. A cut final packet is ignored, as FFmpeg
//! ignores it.
//!
//! # Cost and bounds
//! The file is read once, sequentially, in blocks of [`BLOCK_PACKETS`] packets; nothing grows
//! with the file but the list of captioned frames (a few bytes per frame, as with the decoder).
//! It runs on a blocking thread ([`read`] is synchronous) and checks `stop` once per block.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::cc608::CcFrame;
use super::read::{a53_cc_data, carries_608, unescape, AccessUnit, AccessUnits};
use crate::mp4::{pps_ids, slice_pps_id, Sps};
use crate::ts::{layout_of, Layout};

/// Packets read per block.
pub const BLOCK_PACKETS: usize = 2048;

/// How far into the file the PAT and PMTs are looked for.
const PSI_BYTES: u64 = 16 << 20;

/// The most bytes kept of an MPEG-2 user data unit or an H.264 SEI NAL unit; a larger one makes
/// the reader give way (A/53 caption data is at most a few hundred bytes).
const MAX_UNIT: usize = 64 * 1024;

/// The most bytes kept of an H.264 parameter set; a larger one makes the reader give way.
const MAX_PARAMETER_SET: usize = 4096;

/// The PTS clock.
const PTS_HZ: f64 = 90_000.0;

/// Why the fast reader left the recording to FFmpeg's decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GiveWay(pub String);

fn give_way<T>(why: impl Into<String>) -> Result<T, GiveWay> {
    Err(GiveWay(why.into()))
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Every shown picture with 608 caption bytes, in presentation order, its time from the
    /// file's start time.
    pub frames: Vec<CcFrame>,
    /// The time of the first picture shown, on the same clock: where FFmpeg's caption
    /// extraction puts zero.
    pub first_picture: Option<f64>,
}

/// The video's codec, by its PMT stream type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Mpeg2,
    H264,
}

/// Reads the caption bytes of the transport stream at `path` (see the module documentation),
/// with times from `start` (the file's start time, in seconds). `stop` is asked once per block
/// whether to give up (cancellation, a time limit).
pub fn read(path: &Path, start: f64, stop: &dyn Fn() -> bool) -> Result<Found, GiveWay> {
    let io = |e: std::io::Error| GiveWay(format!("cannot read {}: {e}", path.display()));
    let Some(layout) = layout_of(path).map_err(io)? else {
        return give_way("not an MPEG transport stream");
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let (pid, codec) = video_pid(&mut file, layout, stop)?;
    file.seek(SeekFrom::Start(layout.first)).map_err(io)?;
    let mut reader = Reader::new(pid, codec);
    each_packet(&mut file, layout, stop, |offset, packet| {
        reader.packet(offset, packet)
    })?;
    reader.finish(start)
}

/// Calls `each` with every whole 188-byte packet of the file (from its current position) and
/// its offset; gives way at a packet without the sync byte.
fn each_packet(
    file: &mut std::fs::File,
    layout: Layout,
    stop: &dyn Fn() -> bool,
    mut each: impl FnMut(u64, &[u8]) -> Result<Flow, GiveWay>,
) -> Result<(), GiveWay> {
    let size = layout.packet as usize;
    let sync_at = if size == 192 { 4 } else { 0 };
    let mut block = vec![0u8; size * BLOCK_PACKETS];
    let mut offset = layout.first;
    loop {
        if stop() {
            return give_way("stopped");
        }
        let filled = fill(file, &mut block)
            .map_err(|e| GiveWay(format!("cannot read the recording: {e}")))?;
        for packet in block[..filled].chunks_exact(size) {
            let packet = &packet[sync_at..sync_at + 188];
            if packet[0] != 0x47 {
                return give_way(format!("packet sync lost at byte {offset}"));
            }
            if each(offset, packet)? == Flow::Stop {
                return Ok(());
            }
            offset += layout.packet;
        }
        if filled < block.len() {
            return Ok(());
        }
    }
}

/// Whether [`each_packet`] goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    More,
    Stop,
}

/// Reads into `buf` until it is full or the file ends; returns how much was read.
fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A packet's header fields and payload.
struct Packet<'a> {
    pid: u16,
    unit_start: bool,
    error: bool,
    scrambled: bool,
    counter: u8,
    discontinuity: bool,
    payload: Option<&'a [u8]>,
}

fn parse_packet(p: &[u8]) -> Result<Packet<'_>, GiveWay> {
    let control = (p[3] >> 4) & 0x03;
    let mut at = 4;
    let mut discontinuity = false;
    if control & 0x02 != 0 {
        let len = usize::from(p[4]);
        if 5 + len > 188 {
            return give_way("an adaptation field longer than its packet");
        }
        discontinuity = len > 0 && p[5] & 0x80 != 0;
        at = 5 + len;
    }
    Ok(Packet {
        pid: (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]),
        unit_start: p[1] & 0x40 != 0,
        error: p[1] & 0x80 != 0,
        scrambled: p[3] >> 6 != 0,
        counter: p[3] & 0x0F,
        discontinuity,
        payload: (control & 0x01 != 0).then(|| &p[at..]),
    })
}

/// The one video stream's PID and codec, from the PAT and PMTs near the start of the file.
fn video_pid(
    file: &mut std::fs::File,
    layout: Layout,
    stop: &dyn Fn() -> bool,
) -> Result<(u16, Codec), GiveWay> {
    file.seek(SeekFrom::Start(layout.first))
        .map_err(|e| GiveWay(format!("cannot read the recording: {e}")))?;
    let mut pmts: Option<Vec<u16>> = None;
    let mut read: Vec<u16> = Vec::new();
    let mut videos: Vec<(u16, u8)> = Vec::new();
    let mut done = false;
    each_packet(file, layout, stop, |offset, p| {
        if offset > layout.first + PSI_BYTES {
            return Ok(Flow::Stop);
        }
        let packet = parse_packet(p)?;
        let Some(payload) = packet
            .payload
            .filter(|_| packet.unit_start && !packet.error)
        else {
            return Ok(Flow::More);
        };
        if pmts.is_none() {
            if packet.pid == 0 {
                pmts = section(payload, 0x00).map(pat_programs);
            }
        } else if pmts.as_ref().is_some_and(|l| l.contains(&packet.pid))
            && !read.contains(&packet.pid)
        {
            if let Some(section) = section(payload, 0x02) {
                videos.extend(pmt_videos(section));
                read.push(packet.pid);
            }
        }
        done = pmts
            .as_ref()
            .is_some_and(|l| l.iter().all(|p| read.contains(p)));
        Ok(if done { Flow::Stop } else { Flow::More })
    })?;
    if !done {
        return give_way("no complete PAT and PMTs near the start");
    }
    videos.sort_unstable();
    videos.dedup();
    match videos[..] {
        [(pid, 0x02)] => Ok((pid, Codec::Mpeg2)),
        [(pid, 0x1B)] => Ok((pid, Codec::H264)),
        [] => give_way("no video stream in the PMTs"),
        [(_, kind)] => give_way(format!("video stream type 0x{kind:02X}")),
        _ => give_way(format!("{} video streams", videos.len())),
    }
}

/// The PSI section with `table` that starts in a packet's payload (after its pointer field),
/// when it fits in the packet; its CRC is not checked (a bad one gives a wrong PID, which the
/// reader then finds no pictures in, and gives way).
fn section(payload: &[u8], table: u8) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let s = payload.get(1 + pointer..)?;
    if *s.first()? != table || s.get(1)? & 0x80 == 0 {
        return None;
    }
    let len = (usize::from(s[1] & 0x0F) << 8) | usize::from(*s.get(2)?);
    // The header up to last_section_number (8 bytes) and the CRC (4).
    if len < 9 {
        return None;
    }
    s.get(..3 + len)
}

/// The PMT PIDs a PAT section lists (program 0, the network PID, left out).
fn pat_programs(s: &[u8]) -> Vec<u16> {
    s[8..s.len() - 4]
        .chunks_exact(4)
        .filter(|e| e[0] != 0 || e[1] != 0)
        .map(|e| (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]))
        .collect()
}

/// The video streams a PMT section lists: `(PID, stream type)`.
fn pmt_videos(s: &[u8]) -> Vec<(u16, u8)> {
    let mut found = Vec::new();
    let Some(&info_hi) = s.get(10) else {
        return found;
    };
    let info = (usize::from(info_hi & 0x0F) << 8) | usize::from(s.get(11).copied().unwrap_or(0));
    let mut at = 12 + info;
    let end = s.len() - 4;
    while at + 5 <= end {
        let kind = s[at];
        let pid = (u16::from(s[at + 1] & 0x1F) << 8) | u16::from(s[at + 2]);
        let es_info = (usize::from(s[at + 3] & 0x0F) << 8) | usize::from(s[at + 4]);
        // The video stream types FFmpeg knows: MPEG-1/2, MPEG-4 part 2, H.264, HEVC, CAVS,
        // Dirac, VC-1, AVS2/3, VVC.
        if matches!(
            kind,
            0x01 | 0x02 | 0x10 | 0x1B | 0x24 | 0x33 | 0x42 | 0xD1 | 0xD2 | 0xD4 | 0xEA
        ) {
            found.push((pid, kind));
        }
        at += 5 + es_info;
    }
    found
}

/// The PTS of a PES header, when it has one.
fn pes_pts(h: &[u8]) -> Option<i64> {
    if h[7] & 0x80 == 0 || h.len() < 14 {
        return None;
    }
    let p = &h[9..14];
    Some(
        (i64::from(p[0] >> 1 & 0x07) << 30)
            | (i64::from(p[1]) << 22)
            | (i64::from(p[2] >> 1) << 15)
            | (i64::from(p[3]) << 7)
            | i64::from(p[4] >> 1),
    )
}

/// A unit of the elementary stream (what follows a `00 00 01` start code): its first bytes.
#[derive(Debug, Default)]
struct Unit {
    /// The bytes kept, from the one after the start code.
    bytes: Vec<u8>,
    /// How many bytes to keep.
    keep: usize,
    /// Bytes were dropped beyond `keep`.
    cut: bool,
    /// The PES it starts in (its sequence number) and that PES's PTS.
    pes: u64,
    pts: Option<i64>,
}

/// The reading state.
struct Reader {
    pid: u16,
    codec: Codec,
    counter: Option<u8>,
    /// The current PES: its sequence number and PTS; `None` before the first.
    pes: Option<(u64, Option<i64>)>,
    /// Trailing zero bytes seen (up to 2), for start codes split across packets.
    zeros: u8,
    /// The unit being read.
    unit: Option<Unit>,
    /// The last PTS seen, for unwrapping the 33-bit clock.
    last_pts: Option<i64>,
    /// The last PES whose PTS a picture took.
    pts_taken: Option<u64>,
    mpeg2: Mpeg2,
    h264: H264,
    /// Shown pictures with caption bytes: `(PTS, triples)`.
    frames: Vec<(i64, Vec<[u8; 3]>)>,
    first_picture: Option<i64>,
}

impl Reader {
    fn new(pid: u16, codec: Codec) -> Reader {
        Reader {
            pid,
            codec,
            counter: None,
            pes: None,
            zeros: 0,
            unit: None,
            last_pts: None,
            pts_taken: None,
            mpeg2: Mpeg2::default(),
            h264: H264::default(),
            frames: Vec::new(),
            first_picture: None,
        }
    }

    fn packet(&mut self, offset: u64, p: &[u8]) -> Result<Flow, GiveWay> {
        let packet = parse_packet(p)?;
        if packet.pid != self.pid {
            return Ok(Flow::More);
        }
        if packet.error {
            return give_way(format!("a damaged video packet at byte {offset}"));
        }
        if packet.scrambled {
            return give_way("scrambled video");
        }
        let Some(payload) = packet.payload else {
            return Ok(Flow::More);
        };
        if let Some(last) = self.counter {
            if !packet.discontinuity && packet.counter != (last + 1) & 0x0F {
                return give_way(format!("video packets missing before byte {offset}"));
            }
        }
        self.counter = Some(packet.counter);
        let es = if packet.unit_start {
            let h = payload;
            if h.len() < 9 || h[..3] != [0, 0, 1] || !(0xE0..=0xEF).contains(&h[3]) {
                return give_way(format!("no video PES header at byte {offset}"));
            }
            let end = 9 + usize::from(h[8]);
            if end > h.len() {
                return give_way(format!(
                    "a PES header longer than its packet at byte {offset}"
                ));
            }
            let pts = pes_pts(&h[..end]).map(|pts| self.unwrap(pts));
            let seq = self.pes.map_or(0, |(s, _)| s + 1);
            self.pes = Some((seq, pts));
            &h[end..]
        } else if self.pes.is_none() {
            // The tail of a PES that began before the recording did.
            return Ok(Flow::More);
        } else {
            payload
        };
        self.scan(es)?;
        Ok(Flow::More)
    }

    /// A 33-bit PTS made continuous across the clock's wrap (every 26.5 hours).
    fn unwrap(&mut self, pts: i64) -> i64 {
        const WRAP: i64 = 1 << 33;
        let pts = match self.last_pts {
            Some(last) => {
                let base = last - last.rem_euclid(WRAP);
                [base - WRAP, base, base + WRAP]
                    .map(|b| b + pts)
                    .into_iter()
                    .min_by_key(|c| (c - last).abs())
                    .unwrap_or(pts)
            }
            None => pts,
        };
        self.last_pts = Some(pts);
        pts
    }

    /// Finds the start codes of elementary stream bytes, keeping each unit's first bytes.
    fn scan(&mut self, es: &[u8]) -> Result<(), GiveWay> {
        let (seq, pts) = self.pes.unwrap_or((0, None));
        let mut from = 0;
        let mut i = 0;
        while i < es.len() {
            let b = es[i];
            if b == 1 && self.zeros >= 2 {
                self.keep(&es[from..i]);
                self.end_unit()?;
                self.unit = Some(Unit {
                    pes: seq,
                    pts,
                    keep: usize::MAX,
                    ..Unit::default()
                });
                self.zeros = 0;
                i += 1;
                from = i;
                continue;
            }
            self.zeros = if b == 0 { (self.zeros + 1).min(2) } else { 0 };
            i += 1;
        }
        self.keep(&es[from..]);
        Ok(())
    }

    /// Adds bytes to the current unit, up to what it keeps.
    fn keep(&mut self, bytes: &[u8]) {
        let codec = self.codec;
        let Some(unit) = self.unit.as_mut() else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        if unit.keep == usize::MAX {
            unit.keep = keep_for(codec, bytes[0]);
        }
        let room = unit.keep.saturating_sub(unit.bytes.len());
        unit.bytes
            .extend_from_slice(&bytes[..room.min(bytes.len())]);
        unit.cut |= bytes.len() > room;
    }

    /// The current unit is complete (the next start code, or the end of the stream).
    fn end_unit(&mut self) -> Result<(), GiveWay> {
        let Some(mut unit) = self.unit.take() else {
            return Ok(());
        };
        // The zeros of the next start code (and any stuffing) are not the unit's.
        if !unit.cut {
            while unit.bytes.last() == Some(&0) {
                unit.bytes.pop();
            }
        }
        match self.codec {
            Codec::Mpeg2 => self.mpeg2_unit(&unit),
            Codec::H264 => self.h264_unit(&unit),
        }
    }

    /// The PTS of a picture that starts in `unit`'s PES, if that PES's PTS is its own.
    fn picture_pts(&mut self, unit: &Unit) -> Option<i64> {
        if self.pts_taken == Some(unit.pes) {
            return None;
        }
        self.pts_taken = Some(unit.pes);
        unit.pts
    }

    fn mpeg2_unit(&mut self, unit: &Unit) -> Result<(), GiveWay> {
        let b = &unit.bytes;
        let Some(&code) = b.first() else {
            return Ok(());
        };
        let m = &mut self.mpeg2;
        match code {
            0xB3 => m.sequence = true,
            0xB8 => m.closed_gop = b.get(4).is_some_and(|x| x & 0x40 != 0),
            0x00 => {
                let Some(kind) = b.get(2).map(|x| (x >> 3) & 0x07) else {
                    return give_way("a cut picture header");
                };
                let pts = self.picture_pts(unit);
                self.mpeg2.picture = Some(Picture {
                    kind,
                    pts,
                    started: false,
                });
            }
            0xB5 => {
                let picture_coding = b.get(1).is_some_and(|x| x >> 4 == 8);
                if picture_coding && b.get(3).is_some_and(|x| x & 0x03 != 0x03) {
                    return give_way("MPEG-2 field pictures");
                }
            }
            0xB2 => {
                if unit.cut {
                    return give_way("a user data unit larger than 64 KiB");
                }
                let data = &b[1..];
                if !a53_cc_data(data, &mut m.pending) && scte20_or_dvd(data) {
                    return give_way("captions in SCTE 20 or DVD user data");
                }
            }
            0x01..=0xAF => {
                let Some(picture) = m.picture.as_mut().filter(|p| !p.started) else {
                    return Ok(());
                };
                picture.started = true;
                let (kind, pts) = (picture.kind, picture.pts);
                if !m.shows(kind) {
                    return Ok(());
                }
                let triples = std::mem::take(&mut m.pending);
                let Some(pts) = pts else {
                    return give_way("a picture without its own PTS");
                };
                self.shown(pts, triples);
            }
            _ => {}
        }
        Ok(())
    }

    fn h264_unit(&mut self, unit: &Unit) -> Result<(), GiveWay> {
        let Some(&header) = unit.bytes.first() else {
            return Ok(());
        };
        if header & 0x1F == 6 && unit.cut {
            return give_way("an SEI NAL unit larger than 64 KiB");
        }
        match header & 0x1F {
            7 | 8 if unit.cut => return give_way("an H.264 parameter set larger than 4 KiB"),
            7 => {
                let Some(sps) = Sps::parse(&unescape(&unit.bytes[1..])) else {
                    return give_way("an H.264 sequence parameter set the reader cannot read");
                };
                self.h264.sps.insert(sps.id, sps);
            }
            8 => {
                let Some((pps, sps)) = pps_ids(&unescape(&unit.bytes[1..])) else {
                    return give_way("an H.264 picture parameter set the reader cannot read");
                };
                self.h264.pps.insert(pps, sps);
            }
            1 | 5 => self.h264.frame_slice(&unit.bytes)?,
            _ => {}
        }
        if let Some(au) = self.h264.units.nal(&unit.bytes) {
            self.h264_access_unit(au)?;
        }
        let begun = self.h264.units.begun();
        if begun != self.h264.counted {
            // A new access unit began with this NAL unit: its PES's PTS is its own.
            self.h264.counted = begun;
            self.h264.au_pts = self.picture_pts(unit);
        }
        Ok(())
    }

    fn h264_access_unit(&mut self, au: AccessUnit) -> Result<(), GiveWay> {
        let h = &mut self.h264;
        if h.synced.is_none() && !au.key {
            return Ok(());
        }
        let Some(pts) = h.au_pts else {
            return give_way("an access unit without its own PTS");
        };
        let synced = *h.synced.get_or_insert(pts);
        // A picture shown before the first key picture (a leading picture of an open GOP)
        // refers to pictures before the recording began: the decoder does not show it.
        if pts < synced {
            return Ok(());
        }
        self.shown(pts, au.triples);
        Ok(())
    }

    /// A picture the decoder shows, with the caption triples attached to it.
    fn shown(&mut self, pts: i64, triples: Vec<[u8; 3]>) {
        self.first_picture = Some(self.first_picture.map_or(pts, |f| f.min(pts)));
        let triples: Vec<[u8; 3]> = triples.into_iter().filter(carries_608).collect();
        if !triples.is_empty() {
            self.frames.push((pts, triples));
        }
    }

    fn finish(mut self, start: f64) -> Result<Found, GiveWay> {
        self.end_unit()?;
        if self.codec == Codec::H264 {
            if let Some(au) = self.h264.units.close() {
                self.h264_access_unit(au)?;
            }
        }
        // Presentation order; pictures with the same PTS keep their decode order.
        self.frames.sort_by_key(|(pts, _)| *pts);
        let time = |pts: i64| pts as f64 / PTS_HZ - start;
        Ok(Found {
            frames: self
                .frames
                .into_iter()
                .map(|(pts, triples)| CcFrame {
                    time: time(pts),
                    triples,
                })
                .collect(),
            first_picture: self.first_picture.map(time),
        })
    }
}

/// How many bytes of a unit starting with `first` (its start code value or NAL header) the
/// reader needs.
fn keep_for(codec: Codec, first: u8) -> usize {
    match codec {
        // Picture, extension, GOP headers: their first bytes; user data whole.
        Codec::Mpeg2 => match first {
            0x00 | 0xB5 | 0xB8 => 8,
            0xB2 => MAX_UNIT,
            _ => 1,
        },
        // SEI whole; parameter sets whole, up to a bound (one with every scaling list is
        // under 1 KiB); slices: the header byte and the slice header as far as
        // `field_pic_flag` (under 10 bytes, with room for emulation prevention); others: the
        // header byte.
        Codec::H264 => match first & 0x1F {
            6 => MAX_UNIT,
            7 | 8 => MAX_PARAMETER_SET,
            1 | 5 => 32,
            _ => 2,
        },
    }
}

/// Whether MPEG-2 user data holds captions in a format other than A/53: SCTE 20 (type `0x03`
/// first) or DVD (`CC`).
fn scte20_or_dvd(data: &[u8]) -> bool {
    data.first() == Some(&0x03) || data.starts_with(b"CC")
}

/// An MPEG-2 picture, from its header to its first slice.
#[derive(Debug, Clone, Copy)]
struct Picture {
    /// `picture_coding_type`: 1 I, 2 P, 3 B.
    kind: u8,
    pts: Option<i64>,
    started: bool,
}

/// What FFmpeg's MPEG-2 decoder knows when it decides whether to show a picture.
#[derive(Debug, Default)]
struct Mpeg2 {
    /// A sequence header has been seen.
    sequence: bool,
    /// The last GOP header said `closed_gop`.
    closed_gop: bool,
    /// An I-picture has been decoded.
    sync: bool,
    /// Reference pictures (I, P) decoded so far, up to 2.
    references: u8,
    /// Caption triples waiting for the next decoded picture.
    pending: Vec<[u8; 3]>,
    picture: Option<Picture>,
}

impl Mpeg2 {
    /// Whether the decoder decodes (and shows) a picture of `kind` now, and counts it.
    fn shows(&mut self, kind: u8) -> bool {
        if !self.sequence {
            return false;
        }
        match kind {
            1 => self.sync = true,
            2 if !self.sync && self.references == 0 => return false,
            3 if self.references < 2 && !self.closed_gop => return false,
            2 | 3 => {}
            _ => return false,
        }
        if kind != 3 {
            self.references = (self.references + 1).min(2);
        }
        true
    }
}

/// The H.264 side of the reading state.
#[derive(Debug, Default)]
struct H264 {
    units: AccessUnits,
    /// Access units begun, as counted when the last NAL unit was read.
    counted: usize,
    /// The PTS of the current access unit (of the PES its first NAL unit began in).
    au_pts: Option<i64>,
    /// The PTS of the first key access unit: the decoder shows the pictures from there on.
    synced: Option<i64>,
    /// The sequence parameter sets seen, by id (at most 32).
    sps: std::collections::HashMap<u32, Sps>,
    /// The picture parameter sets seen: each one's SPS id, by its id (at most 256).
    pps: std::collections::HashMap<u32, u32>,
}

impl H264 {
    /// Gives way at a slice of a field picture (PAFF): FFmpeg's decoder pairs the two fields
    /// into one frame, with both fields' captions, which this reader does not do. A slice
    /// whose parameter sets have not been seen is one the decoder cannot decode either; it is
    /// let pass before the first key picture, and gives way after it.
    fn frame_slice(&self, nal: &[u8]) -> Result<(), GiveWay> {
        let unreadable = || give_way("an H.264 slice header the reader cannot read");
        let rbsp = unescape(&nal[1..]);
        let Some(pps) = slice_pps_id(&rbsp) else {
            return unreadable();
        };
        let Some(sps) = self.pps.get(&pps).and_then(|id| self.sps.get(id)) else {
            if self.synced.is_some() {
                return give_way("an H.264 slice whose parameter sets were not sent");
            }
            return Ok(());
        };
        match sps.field_slice(&rbsp) {
            Some(false) => Ok(()),
            Some(true) => give_way("H.264 field pictures (PAFF)"),
            None => unreadable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An MPEG-2 elementary stream: sequence header, closed GOP, then `pictures` (coding type,
    /// caption pair), each with A/53 user data and one slice.
    fn mpeg2_es(pictures: &[(u8, [u8; 2])]) -> Vec<u8> {
        let mut es = vec![
            0, 0, 1, 0xB3, 0x14, 0x00, 0xF0, 0x13, 0xFF, 0xFF, 0xE0, 0x18,
        ];
        es.extend([0, 0, 1, 0xB8, 0x00, 0x08, 0x00, 0x40]);
        for &(kind, pair) in pictures {
            es.extend([0, 0, 1, 0x00, 0x00, kind << 3, 0xFF, 0xF8]);
            es.extend([0, 0, 1, 0xB2]);
            es.extend(b"GA94\x03");
            es.extend([0x42, 0xFF, 0xFC, pair[0], pair[1], 0xFD, 0x80, 0x80, 0xFF]);
            es.extend([0, 0, 1, 0x01, 0x12, 0x34, 0x56]);
        }
        es
    }

    #[test]
    fn start_codes_split_anywhere_across_packets_find_the_same_pictures() {
        let es = mpeg2_es(&[(1, [0x94, 0x20])]);
        for split in 1..es.len() {
            let mut reader = Reader::new(0x100, Codec::Mpeg2);
            reader.pes = Some((0, Some(90_000)));
            reader.scan(&es[..split]).unwrap();
            reader.scan(&es[split..]).unwrap();
            let found = reader.finish(0.5).unwrap();
            assert_eq!(found.first_picture, Some(0.5), "split at {split}");
            assert_eq!(
                found.frames,
                vec![CcFrame {
                    time: 0.5,
                    triples: vec![[0xFC, 0x94, 0x20]]
                }],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_shown_picture_without_its_own_pts_gives_way() {
        let es = mpeg2_es(&[(1, [0x94, 0x20]), (2, [0xC1, 0xC2]), (2, [0xC1, 0xC2])]);
        let mut reader = Reader::new(0x100, Codec::Mpeg2);
        reader.pes = Some((0, Some(0)));
        let result = reader.scan(&es).and_then(|()| reader.finish(0.0));
        assert_eq!(result.unwrap_err().0, "a picture without its own PTS",);
    }

    #[test]
    fn pictures_the_decoder_skips_at_the_start_pass_their_captions_on() {
        let mut m = Mpeg2::default();
        assert!(!m.shows(1), "no sequence header yet");
        m.sequence = true;
        assert!(!m.shows(2), "a P-picture before any I-picture");
        assert!(m.shows(1));
        assert!(!m.shows(3), "a B-picture of an open GOP with one reference");
        m.closed_gop = true;
        assert!(m.shows(3), "closed GOP");
        m.closed_gop = false;
        assert!(m.shows(2));
        assert!(m.shows(3), "two references");
        assert!(!m.shows(4), "a D-picture");
    }

    #[test]
    fn the_pts_clock_is_unwrapped() {
        let mut reader = Reader::new(0x100, Codec::H264);
        let near_end = (1i64 << 33) - 3000;
        assert_eq!(reader.unwrap(near_end), near_end);
        assert_eq!(reader.unwrap(1000), (1 << 33) + 1000);
        assert_eq!(
            reader.unwrap((1 << 33) - 500),
            (1 << 33) - 500,
            "a B-picture before"
        );
    }

    #[test]
    fn psi_sections_are_bounded() {
        // A PAT listing program 1 on PID 0x1000, then a PMT with one H.264 stream on 0x100.
        let pat = [
            0x00, 0x00, 0xB0, 0x0D, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00, 1, 2, 3, 4,
        ];
        let s = section(&pat, 0x00).unwrap();
        assert_eq!(pat_programs(s), vec![0x1000]);
        let pmt = [
            0x00, 0x02, 0xB0, 0x12, 0, 1, 0xC1, 0, 0, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00,
            0xF0, 0x00, 1, 2, 3, 4,
        ];
        assert_eq!(
            pmt_videos(section(&pmt, 0x02).unwrap()),
            vec![(0x100, 0x1B)]
        );
        // A section claiming more than the packet holds, or too little to be one.
        let mut long = pat;
        long[3] = 0xFF;
        assert_eq!(section(&long, 0x00), None);
        let mut short = pat;
        short[3] = 0x02;
        assert_eq!(section(&short, 0x00), None);
        assert_eq!(section(&[], 0x00), None);
        assert_eq!(
            section(&[200, 0], 0x00),
            None,
            "a pointer beyond the payload"
        );
    }

    #[test]
    fn a_user_data_unit_beyond_the_bound_gives_way() {
        let mut es = mpeg2_es(&[(1, [0x94, 0x20])]);
        let at = es.len() - 7;
        let mut big = vec![0, 0, 1, 0xB2];
        big.extend(std::iter::repeat_n(0x47, MAX_UNIT + 10));
        es.splice(at..at, big);
        let mut reader = Reader::new(0x100, Codec::Mpeg2);
        reader.pes = Some((0, Some(0)));
        let why = reader
            .scan(&es)
            .and_then(|()| reader.finish(0.0))
            .unwrap_err();
        assert!(why.0.contains("larger than 64 KiB"), "{why}");
    }

    /// Bits, most significant first, for hand-made H.264 headers.
    #[derive(Default)]
    struct BitWriter(Vec<bool>);

    impl BitWriter {
        fn u(&mut self, n: u32, v: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push((v >> i) & 1 == 1);
            }
            self
        }

        fn ue(&mut self, v: u32) -> &mut Self {
            let x = v + 1;
            let n = 32 - x.leading_zeros();
            self.u(n - 1, 0).u(n, x)
        }

        /// A start code, the NAL header byte `header`, then the bits and the stop bit.
        fn nal(&self, header: u8) -> Vec<u8> {
            let mut bits = self.0.clone();
            bits.push(true);
            while !bits.len().is_multiple_of(8) {
                bits.push(false);
            }
            let mut out = vec![0, 0, 0, 1, header];
            out.extend(
                bits.chunks(8)
                    .map(|c| c.iter().fold(0u8, |b, &bit| (b << 1) | u8::from(bit))),
            );
            out
        }
    }

    /// A Main-profile SPS (id 0, 4-bit `frame_num`), a PPS, then one IDR slice with
    /// `field_pic_flag` = `field` (written only when `frame_mbs_only` is false).
    fn h264_es(frame_mbs_only: bool, field: bool) -> Vec<u8> {
        let mut sps = BitWriter::default();
        sps.u(8, 77)
            .u(8, 0)
            .u(8, 40)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .u(1, 0);
        sps.ue(19).ue(16).u(1, u32::from(frame_mbs_only));
        if !frame_mbs_only {
            sps.u(1, 1); // mb_adaptive_frame_field_flag
        }
        sps.u(1, 1).u(1, 0).u(1, 0);
        let mut pps = BitWriter::default();
        pps.ue(0).ue(0).u(2, 0);
        let mut slice = BitWriter::default();
        slice.ue(0).ue(7).ue(0).u(4, 0);
        if !frame_mbs_only {
            slice.u(1, u32::from(field)).u(1, 0);
        }
        slice.ue(0);
        let mut es = sps.nal(0x67);
        es.extend(pps.nal(0x68));
        es.extend(slice.nal(0x65));
        es
    }

    fn read_h264(es: &[u8]) -> Result<Found, GiveWay> {
        let mut reader = Reader::new(0x100, Codec::H264);
        reader.pes = Some((0, Some(0)));
        reader.scan(es).and_then(|()| reader.finish(0.0))
    }

    #[test]
    fn h264_field_pictures_give_way_and_mbaff_or_progressive_frames_do_not() {
        let why = read_h264(&h264_es(false, true)).unwrap_err();
        assert_eq!(why.0, "H.264 field pictures (PAFF)");
        let frame = read_h264(&h264_es(false, false)).unwrap();
        assert_eq!(
            frame.first_picture,
            Some(0.0),
            "an MBAFF frame is a picture"
        );
        let progressive = read_h264(&h264_es(true, false)).unwrap();
        assert_eq!(progressive.first_picture, Some(0.0));
    }

    #[test]
    fn h264_parameter_sets_and_slice_headers_that_cannot_be_read_give_way() {
        // An SPS cut after its level.
        let mut es = vec![0, 0, 0, 1, 0x67, 77, 0, 40];
        es.extend(h264_es(false, false));
        let why = read_h264(&es).unwrap_err();
        assert!(why.0.contains("sequence parameter set"), "{why}");
        // A slice header cut before its `field_pic_flag`.
        let full = h264_es(false, false);
        let slice = full
            .windows(5)
            .position(|w| w == [0, 0, 0, 1, 0x65])
            .unwrap();
        let mut cut = full[..slice + 5].to_vec();
        cut.push(0x88);
        let why = read_h264(&cut).unwrap_err();
        assert!(why.0.contains("slice header"), "{why}");
        // A parameter set beyond the bound.
        let mut big = vec![0, 0, 0, 1, 0x67];
        big.extend(std::iter::repeat_n(0x47, MAX_PARAMETER_SET + 10));
        big.extend(h264_es(false, false));
        let why = read_h264(&big).unwrap_err();
        assert!(why.0.contains("larger than 4 KiB"), "{why}");
    }
}
