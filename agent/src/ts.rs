//! Byte-level facts about MPEG transport streams that ffprobe does not report: the packet size,
//! whether the file ends in the middle of a packet (a recorder that stopped, or a copy that
//! ended, mid-packet), and which PIDs carry scrambled (encrypted) payloads.
//!
//! A transport stream is a sequence of fixed-size packets, each starting with the sync byte
//! 0x47: 188 bytes, 192 with the 4-byte time code of M2TS (Blu-ray, AVCHD) before the sync
//! byte, or 204 with 16 bytes of Reed-Solomon parity after the packet (some DVB captures).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// The sync byte every packet starts with.
const SYNC: u8 = 0x47;

/// How many consecutive packets must show the sync byte for a layout to be believed.
const SYNCS_NEEDED: u64 = 5;

/// How much of a file [`layout_of`] and [`scrambling`] read.
const SAMPLE_BYTES: u64 = 4 << 20;

/// The packet layout of a transport stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per packet: 188, 192 or 204.
    pub packet: u64,
    /// Where the first whole packet starts (a capture may begin mid-packet).
    pub first: u64,
}

impl Layout {
    /// Where the sync byte sits inside a packet (4 in M2TS, after the time code).
    fn sync_at(packet: u64) -> u64 {
        if packet == 192 {
            4
        } else {
            0
        }
    }

    /// The bytes after the last whole packet of a file of `len` bytes: a cut tail.
    pub fn tail(&self, len: u64) -> u64 {
        len.saturating_sub(self.first) % self.packet
    }
}

/// Finds the packet size and the first whole packet in the start of a file, `head`.
pub fn layout(head: &[u8]) -> Option<Layout> {
    for packet in [188u64, 192, 204] {
        let sync_at = Layout::sync_at(packet);
        for start in 0..packet {
            let syncs = (0..SYNCS_NEEDED)
                .map(|k| start + k * packet)
                .take_while(|&at| (at as usize) < head.len())
                .collect::<Vec<_>>();
            // As many packets as the head holds, up to SYNCS_NEEDED, and at least two (a file
            // shorter than two packets: one, at its very start).
            let whole = (head.len() as u64).saturating_sub(start) / packet;
            let needed = SYNCS_NEEDED.min(whole).max(2);
            let enough = syncs.len() as u64 >= needed
                || (start == 0 && head.len() as u64 <= 2 * packet && !syncs.is_empty());
            if enough && syncs.iter().all(|&at| head[at as usize] == SYNC) {
                let first = if start >= sync_at {
                    start - sync_at
                } else {
                    start + packet - sync_at
                };
                return Some(Layout { packet, first });
            }
        }
    }
    None
}

/// The layout of the transport stream at `path`, from its first bytes.
pub fn layout_of(path: &Path) -> io::Result<Option<Layout>> {
    let mut head = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    Ok(layout(&head))
}

/// Packets with a payload, and how many of them are scrambled, per PID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrambling {
    /// Packets of the PID that carry a payload.
    pub packets: u64,
    /// Those whose `transport_scrambling_control` is not `00`.
    pub scrambled: u64,
}

impl Scrambling {
    /// Whether most of the PID's payload is scrambled.
    pub fn mostly_scrambled(&self) -> bool {
        self.packets > 0 && self.scrambled * 2 > self.packets
    }
}

/// Counts scrambled packets of each PID in `pids`, over the first few megabytes of `path` and
/// a few megabytes from its middle (a recording may start in the clear).
pub fn scrambling(path: &Path, layout: Layout, pids: &[u16]) -> io::Result<Vec<Scrambling>> {
    let mut counts = vec![Scrambling::default(); pids.len()];
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let middle = len / 2;
    let starts = if len > 2 * SAMPLE_BYTES {
        vec![
            layout.first,
            middle - (middle - layout.first) % layout.packet,
        ]
    } else {
        vec![layout.first]
    };
    let sync_at = Layout::sync_at(layout.packet) as usize;
    for start in starts {
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = Vec::new();
        (&mut file).take(SAMPLE_BYTES).read_to_end(&mut chunk)?;
        for packet in chunk.chunks_exact(layout.packet as usize) {
            let p = &packet[sync_at..];
            if p[0] != SYNC {
                continue;
            }
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            let Some(i) = pids.iter().position(|&x| x == pid) else {
                continue;
            };
            if p[3] & 0x10 == 0 {
                continue; // adaptation field only, no payload
            }
            counts[i].packets += 1;
            if p[3] >> 6 != 0 {
                counts[i].scrambled += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(packet: usize, lead: usize, n: usize, tail: usize) -> Vec<u8> {
        let sync_at = Layout::sync_at(packet as u64) as usize;
        let mut v = vec![0u8; lead];
        for _ in 0..n {
            let mut p = vec![0u8; packet];
            p[sync_at] = SYNC;
            v.extend(p);
        }
        v.extend(std::iter::repeat_n(0x47, tail.min(1)));
        v.extend(vec![0u8; tail.saturating_sub(1)]);
        v
    }

    #[test]
    fn finds_the_packet_size_and_the_cut_tail() {
        for packet in [188usize, 192, 204] {
            let bytes = stream(packet, 0, 20, 57);
            let l = layout(&bytes).unwrap();
            assert_eq!(l.packet, packet as u64);
            assert_eq!(l.first, 0);
            assert_eq!(l.tail(bytes.len() as u64), 57, "{packet}");
            assert_eq!(l.tail((packet * 20) as u64), 0);
        }
    }

    #[test]
    fn a_capture_that_starts_mid_packet() {
        let mut bytes = vec![0u8; 100];
        bytes.extend(stream(188, 0, 10, 0));
        let l = layout(&bytes).unwrap();
        assert_eq!(
            l,
            Layout {
                packet: 188,
                first: 100
            }
        );
        assert_eq!(l.tail(bytes.len() as u64), 0);
        assert_eq!(l.tail(bytes.len() as u64 + 30), 30);
    }

    #[test]
    fn text_is_no_transport_stream() {
        assert_eq!(layout(b"Recording notes\nChannel 7\n"), None);
        assert_eq!(layout(&[0u8; 4096]), None);
    }
}
