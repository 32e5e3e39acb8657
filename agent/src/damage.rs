//! Damage of a recording, read from the transcode's own FFmpeg log (`-v warning`): what its
//! demuxer and decoders report about the input, not what its muxer and encoder say about the
//! output being written.
//!
//! # What counts
//! A line counts when it comes from the input side and reports damage: corrupt packets
//! (`Packet corrupt`), PES and packet size mismatches, continuity errors, invalid or truncated
//! data, and decode errors (`ac-tex damaged`, `error while decoding MB`, `concealing N errors`,
//! `Error while decoding stream`). Each distinct report counts once: FFmpeg repeats some
//! (`Last message repeated N times`), echoes others (`corrupt input packet in stream 0` after
//! the demuxer's own report) and the start of a capture in the middle of a group of pictures
//! makes the decoder say the same thing about each picture it cannot decode yet.
//!
//! # What does not
//! Messages of the output side: the muxer's and encoder's (`[mp4 @ ...]`, `[null @ ...]`,
//! `[libx264 @ ...]`, `x264 [error]: ...`, and in newer FFmpeg `[out#0/mp4 @ ...]`,
//! `[vost#0:0/libx264 @ ...]`), FFmpeg's own about output streams and encoders, and
//! wherever they come from, a muxer's timestamp complaints about what it is given
//! (`Application provided invalid, non monotonically increasing dts to muxer`, `Non-monotonous
//! DTS in output stream`): FFmpeg repairs those timestamps (duplicated audio timestamps at a
//! splice, typically) and the output is fine; verification checks that it is.

use std::collections::HashSet;

/// Words that make an input-side line a damage report.
const DAMAGE_WORDS: [&str; 7] = [
    "corrupt",
    "mismatch",
    "invalid",
    "error",
    "truncat",
    "damaged",
    "continuity",
];

/// Timestamp complaints of a muxer about its own input (the agent's output), never damage.
const MUXER_TIMESTAMPS: [&str; 4] = [
    "non monotonically increasing dts",
    "non-monotonous dts",
    "non monotonous dts",
    "queue input is backward in time",
];

/// Lines that only repeat a report made by the demuxer or a decoder.
const ECHOES: [&str; 4] = [
    "last message repeated",
    "corrupt input packet in stream",
    "corrupt decoded frame in stream",
    // Always followed by the demuxer's `Packet corrupt` report of the same packet.
    "pes packet size mismatch",
];

/// Words of lines about the output side that carry no `[NAME @ 0x...]` context (FFmpeg's own
/// messages, libx264's `x264 [error]: ...`).
const OUTPUT_WORDS: [&str; 8] = [
    "output stream",
    "output file",
    "for output",
    "encoder",
    "encoding",
    "muxing",
    "x264 [",
    "conversion failed",
];

/// Log contexts of the output side (`[NAME @ 0x...]`).
const OUTPUT_CONTEXTS: [&str; 4] = ["mp4", "mov", "null", "libx264"];

/// Damage reports seen so far in a log.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    seen: HashSet<String>,
    sample: Vec<String>,
}

impl Tally {
    /// Looks at one line of the log.
    pub fn observe(&mut self, line: &str) {
        let line = line.trim();
        if !is_damage_report(line) {
            return;
        }
        // The same report from another run of the same context (another address) is the same.
        let key = without_address(line);
        if self.seen.insert(key) && self.sample.len() < 3 {
            self.sample.push(line.to_owned());
        }
    }

    /// How many distinct damage reports.
    pub fn count(&self) -> u32 {
        u32::try_from(self.seen.len()).unwrap_or(u32::MAX)
    }

    /// The first few, one per line, for an error message.
    pub fn sample(&self) -> String {
        self.sample.join("\n")
    }
}

/// Whether one line of an FFmpeg log reports damage of the input.
pub fn is_damage_report(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    if let Some(context) = context(&lower) {
        if is_output_context(context) {
            return false;
        }
    }
    let said = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if said(&MUXER_TIMESTAMPS) || said(&ECHOES) || said(&OUTPUT_WORDS) {
        return false;
    }
    DAMAGE_WORDS.iter().any(|w| lower.contains(w))
}

/// The `NAME` of a line starting `[NAME @ 0x...]`.
fn context(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(" @ ")?;
    Some(&rest[..end])
}

fn is_output_context(name: &str) -> bool {
    // FFmpeg 6.1 and later: `out#0/mp4`, `vost#0:0/libx264`, `aost#0:1/aac`.
    if name.starts_with("out#") || name.contains("ost#") {
        return true;
    }
    OUTPUT_CONTEXTS.contains(&name)
}

/// `line` with the `@ 0x...` address of its context removed.
fn without_address(line: &str) -> String {
    match (line.find(" @ 0x"), line.find(']')) {
        (Some(at), Some(end)) if at < end => format!("{}{}", &line[..at], &line[end..]),
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_muxers_timestamp_complaints_are_not_damage() {
        for line in [
            "[null @ 0x5623922a8400] Application provided invalid, non monotonically increasing dts to muxer in stream 1: 13440 >= 13440",
            "[mp4 @ 0x55] Application provided invalid, non monotonically increasing dts to muxer in stream 1: 2 >= 2",
            "[mp4 @ 0x55] Non-monotonous DTS in output stream 0:1; previous: 5, current: 4; changing to 6. This may result in incorrect timestamps in the output file.",
            "[aac @ 0x559fac440180] Queue input is backward in time",
            "[out#0/mp4 @ 0x1] Error muxing a packet",
            "[vost#0:0/libx264 @ 0x1] Error while encoding",
            "x264 [error]: invalid tune 'nonsense'",
            "Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0 - maybe incorrect parameters such as bit_rate, rate, width or height",
        ] {
            assert!(!is_damage_report(line), "{line}");
        }
    }

    #[test]
    fn the_demuxers_and_decoders_damage_is() {
        for line in [
            "[mpegts @ 0x5606] Packet corrupt (stream = 0, dts = 144018).",
            "[mpeg2video @ 0x55e4] ac-tex damaged at 14 7",
            "[h264 @ 0x1] error while decoding MB 12 5, bytestream -7",
            "[h264 @ 0x1] concealing 330 DC, 330 AC, 330 MV errors in P frame",
            "Error while decoding stream #0:1: Invalid data found when processing input",
            "[mpegts @ 0x1] Continuity check failed for pid 256 expected 5 got 7",
            "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] stream 0, offset 0x1234: partial file (truncated)",
        ] {
            assert!(is_damage_report(line), "{line}");
        }
        assert!(!is_damage_report(
            "[mpeg2video @ 0x1] Warning MVs not available"
        ));
        assert!(!is_damage_report(
            "[mpegts @ 0x1] DTS 124947 < 151944 out of order"
        ));
    }

    #[test]
    fn each_distinct_report_counts_once() {
        let mut t = Tally::default();
        for line in [
            "[mpegts @ 0x5642e564b900] PES packet size mismatch",
            "[mpegts @ 0x5642e564b900] Packet corrupt (stream = 1, dts = 387120).",
            "[mpegts @ 0x5642e564b900] PES packet size mismatch",
            "[mpegts @ 0x5642e564b900] Packet corrupt (stream = 1, dts = 387120).",
            "file:cut.ts: corrupt input packet in stream 1",
            "    Last message repeated 4 times",
            "[h264 @ 0x1] decode_slice_header error",
            "[h264 @ 0x2] decode_slice_header error",
            "[h264 @ 0x1] non-existing PPS 0 referenced",
        ] {
            t.observe(line);
        }
        assert_eq!(t.count(), 2, "{:?}", t.seen);
        assert!(t
            .sample()
            .starts_with("[mpegts @ 0x5642e564b900] Packet corrupt"));
    }
}
