//! Recordings as real recorders and captures write them, made with FFmpeg and small byte edits:
//! a transport stream whose last packet is cut short, duplicated audio timestamps at a splice,
//! a clip whose container duration comes from a data stream, a two-programme multiplex whose
//! programmes run on different clocks, a fragmented MP4 whose header claims more than its
//! fragments hold, stray video timestamps, a scrambled programme, audio-only and data-only
//! streams.
//!
//! Each generator takes the folder, the file name and the lengths it needs, writes the file
//! under a hidden temporary name and renames it when complete (as [`crate::fixtures`] does), and
//! returns its path. The byte edits work on 188-byte transport stream packets: PES timestamps
//! ([`pes_timestamps`]), PCRs and the scrambling bits.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ffmpeg::{file_arg, require_ffmpeg};
use crate::fixtures::{
    check_name, h264_aac, lavfi_inputs, os, read, remove, write_atomically, write_with_ffmpeg, SIZE,
};

const PACKET: usize = 188;

/// 90 kHz ticks of one AAC frame (1024 samples) at 48 kHz.
pub const AAC_FRAME_TICKS: u64 = 1920;

/// The 33-bit wrap of PES timestamps and PCR bases.
const WRAP: u64 = 1 << 33;

/// Where a PES header's timestamps are, in a transport stream's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesTimestamps {
    /// The PID of the packet that starts the PES.
    pub pid: u16,
    /// The PES `stream_id` (0xE0-0xEF video, 0xC0-0xDF audio).
    pub stream_id: u8,
    /// The offset of the 5-byte PTS field.
    pub pts_at: usize,
    /// The offset of the 5-byte DTS field, when the header has one.
    pub dts_at: Option<usize>,
}

/// The PID of the 188-byte packet at `p`.
fn pid(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])
}

/// Where the payload of the packet at `p` starts (after the adaptation field), if it has one.
fn payload_at(p: &[u8]) -> Option<usize> {
    let control = (p[3] >> 4) & 3;
    if control & 1 == 0 {
        return None;
    }
    let at = if control & 2 != 0 {
        5 + usize::from(p[4])
    } else {
        4
    };
    (at < PACKET).then_some(at)
}

/// Every PES header with a PTS in `ts` (188-byte packets from offset 0).
pub fn pes_timestamps(ts: &[u8]) -> Vec<PesTimestamps> {
    let mut found = Vec::new();
    for (i, p) in ts.chunks_exact(PACKET).enumerate() {
        if p[0] != 0x47 || p[1] & 0x40 == 0 {
            continue;
        }
        let Some(at) = payload_at(p) else { continue };
        let h = &p[at..];
        if h.len() < 19 || h[..3] != [0, 0, 1] {
            continue;
        }
        let flags = h[7];
        if flags & 0x80 == 0 {
            continue;
        }
        let base = i * PACKET + at;
        found.push(PesTimestamps {
            pid: pid(p),
            stream_id: h[3],
            pts_at: base + 9,
            dts_at: (flags & 0x40 != 0).then_some(base + 14),
        });
    }
    found
}

/// The 33-bit timestamp of a 5-byte PES timestamp field.
pub fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 7) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// Writes `value` (mod 2^33) into a 5-byte PES timestamp field, keeping its 4-bit prefix.
pub fn write_timestamp(b: &mut [u8], value: u64) {
    let v = value % WRAP;
    b[0] = (b[0] & 0xf0) | ((v >> 29) as u8 & 0x0e) | 1;
    b[1] = (v >> 22) as u8;
    b[2] = ((v >> 14) as u8 & 0xfe) | 1;
    b[3] = (v >> 7) as u8;
    b[4] = ((v << 1) as u8 & 0xfe) | 1;
}

/// Adds `ticks` (90 kHz) to every PES timestamp and PCR of the packets of `pids`.
fn shift_clock(ts: &mut [u8], pids: &[u16], ticks: u64) {
    for pes in pes_timestamps(ts) {
        if !pids.contains(&pes.pid) {
            continue;
        }
        for at in std::iter::once(pes.pts_at).chain(pes.dts_at) {
            let v = read_timestamp(&ts[at..at + 5]);
            write_timestamp(&mut ts[at..at + 5], v + ticks);
        }
    }
    for p in ts.chunks_exact_mut(PACKET) {
        if p[0] != 0x47 || !pids.contains(&pid(p)) {
            continue;
        }
        let has_adaptation = (p[3] >> 4) & 2 != 0;
        if !has_adaptation || p[4] == 0 || p[5] & 0x10 == 0 {
            continue;
        }
        let b = &mut p[6..11];
        let base = u64::from(b[0]) << 25
            | u64::from(b[1]) << 17
            | u64::from(b[2]) << 9
            | u64::from(b[3]) << 1
            | u64::from(b[4] >> 7);
        let base = (base + ticks) % WRAP;
        b[0] = (base >> 25) as u8;
        b[1] = (base >> 17) as u8;
        b[2] = (base >> 9) as u8;
        b[3] = (base >> 1) as u8;
        b[4] = (b[4] & 0x7f) | (((base & 1) as u8) << 7);
    }
}

/// Makes `name` from a temporary fixture made by `make` in `dir`, edited by `edit`.
fn edited(
    dir: &Path,
    name: &str,
    make: impl FnOnce(&Path, &str) -> PathBuf,
    edit: impl FnOnce(&mut Vec<u8>),
) -> PathBuf {
    check_name(name);
    let made = make(dir, &format!(".{name}.testkit-made"));
    let mut bytes = read(&made);
    remove(&made);
    edit(&mut bytes);
    write_atomically(dir, name, &bytes)
}

/// A copy of the transport stream `src` whose last packet is cut to its first `keep` bytes
/// (1-187), as when a recorder stops or a copy ends mid-packet.
pub fn cut_last_packet(src: &Path, dir: &Path, name: &str, keep: usize) -> PathBuf {
    assert!((1..PACKET).contains(&keep), "keep 1-187 bytes, not {keep}");
    let bytes = read(src);
    assert_eq!(
        bytes.len() % PACKET,
        0,
        "{} is not whole packets",
        src.display()
    );
    write_atomically(dir, name, &bytes[..bytes.len() - PACKET + keep])
}

/// H.264 + AAC in MPEG-TS ([`crate::fixtures::h264_ts`]) in which every audio PES after the
/// first starts one AAC frame early: its first frame has the timestamp of the previous PES's
/// last frame, as at a splice. FFmpeg's null muxer complains ("non monotonically increasing
/// dts to muxer"); a transcode copes.
pub fn duplicate_audio_timestamps(dir: &Path, name: &str, secs: f64) -> PathBuf {
    edited(
        dir,
        name,
        |d, n| crate::fixtures::h264_ts(d, n, secs),
        |ts| {
            let audio: Vec<PesTimestamps> = pes_timestamps(ts)
                .into_iter()
                .filter(|p| (0xc0..=0xdf).contains(&p.stream_id))
                .collect();
            assert!(audio.len() > 2, "too few audio PES to duplicate timestamps");
            for pes in &audio[1..] {
                let at = pes.pts_at;
                let v = read_timestamp(&ts[at..at + 5]);
                write_timestamp(&mut ts[at..at + 5], v + WRAP - AAC_FRAME_TICKS);
            }
        },
    )
}

/// MPEG-2 video and MP2 audio of `video_secs` in MPEG-TS, with a data stream (private data,
/// packets every 0.1 s) that lasts `data_secs`: the container's duration is the data's. Keep
/// `data_secs - video_secs` under 1 s (beyond that FFmpeg leaves the data out of the container
/// duration).
pub fn data_stream_ts(dir: &Path, name: &str, video_secs: f64, data_secs: f64) -> PathBuf {
    check_name(name);
    let data = dir.join(format!(".{name}.testkit-data"));
    let packets = (data_secs * 10.0).round() as usize;
    std::fs::write(&data, vec![0x5au8; packets * 1024]).unwrap();
    let made = write_with_ffmpeg(dir, name, |tmp| {
        let mut args = os(&["-f", "data", "-i"]);
        args.push(file_arg(&data));
        args.extend(os(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={SIZE}:rate=30000/1001"),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &format!("{video_secs}"),
            "-map",
            "1:v",
            "-map",
            "2:a",
            "-map",
            "0:d",
            "-c:v",
            "mpeg2video",
            "-b:v",
            "1500k",
            "-c:a",
            "mp2",
            "-c:d",
            "copy",
            "-bsf:d",
            "setts=ts=N*9000:time_base=1/90000",
            "-f",
            "mpegts",
        ]));
        args.push(file_arg(tmp));
        args
    });
    let _ = std::fs::remove_file(&data);
    made
}

/// The service names and programme numbers [`two_programmes`] writes.
pub const PROGRAMMES: [(u32, &str); 2] = [(101, "News One"), (202, "Sport Two")];

/// A multiplex of two programmes, each with MPEG-2 video and MP2 audio, `secs` long:
/// programme 101 "News One" (320x240, 29.97 frames/s, 440 Hz) and 202 "Sport Two" (352x288,
/// 25 frames/s, 1 kHz), whose PES timestamps and PCRs run `offset_secs` ahead of the first's
/// (another clock, as programmes of one multiplex have).
pub fn two_programmes(dir: &Path, name: &str, secs: f64, offset_secs: f64) -> PathBuf {
    let make = |d: &Path, n: &str| {
        write_with_ffmpeg(d, n, |tmp| {
            let mut args = os(&[
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc2=size={SIZE}:rate=30000/1001"),
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-f",
                "lavfi",
                "-i",
                "smptebars=size=352x288:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=48000",
                "-t",
                &format!("{secs}"),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-map",
                "2:v",
                "-map",
                "3:a",
                "-c:v",
                "mpeg2video",
                "-b:v",
                "1000k",
                "-c:a",
                "mp2",
                "-program",
                &format!("program_num={}:title=News:st=0:st=1", PROGRAMMES[0].0),
                "-program",
                &format!("program_num={}:title=Sport:st=2:st=3", PROGRAMMES[1].0),
                "-metadata:p:0",
                &format!("service_name={}", PROGRAMMES[0].1),
                "-metadata:p:1",
                &format!("service_name={}", PROGRAMMES[1].1),
                "-f",
                "mpegts",
            ]);
            args.push(file_arg(tmp));
            args
        })
    };
    let made = make(dir, &format!(".{name}.testkit-made"));
    let pids = programme_pids(&made, PROGRAMMES[1].0);
    assert_eq!(
        pids.len(),
        2,
        "programme {} has video and audio",
        PROGRAMMES[1].0
    );
    let mut bytes = read(&made);
    remove(&made);
    shift_clock(&mut bytes, &pids, (offset_secs * 90_000.0).round() as u64);
    write_atomically(dir, name, &bytes)
}

/// The PIDs of programme `number`'s streams, from ffprobe.
pub fn programme_pids(path: &Path, number: u32) -> Vec<u16> {
    require_ffmpeg();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_programs", "-of", "json"])
        .arg(file_arg(path))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["programs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["program_num"] == number)
        .flat_map(|p| p["streams"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| {
            let id = s["id"].as_str()?;
            u16::from_str_radix(id.trim_start_matches("0x"), 16).ok()
        })
        .collect()
}

/// H.264 + AAC as a fragmented MP4 (an empty `moov`, a fragment per second) of `secs`, whose
/// header claims `claim_secs`: the movie, track and media durations and a movie extends header
/// (`mehd`) say so, as a live capture's header may announce the whole programme.
pub fn fragmented_mp4_claiming(dir: &Path, name: &str, secs: f64, claim_secs: f64) -> PathBuf {
    let make = |d: &Path, n: &str| {
        write_with_ffmpeg(d, n, |tmp| {
            let mut args = lavfi_inputs("testsrc2", "30000/1001", 440, secs);
            args.extend(h264_aac());
            args.extend(os(&[
                "-g",
                "30",
                "-movflags",
                "+frag_keyframe+empty_moov+default_base_moof",
                "-f",
                "mp4",
            ]));
            args.push(file_arg(tmp));
            args
        })
    };
    edited(dir, name, make, |mp4| claim_duration(mp4, claim_secs))
}

/// Top-level or child boxes of `b[start..end]`: (offset, size, kind).
fn boxes(b: &[u8], start: usize, end: usize) -> Vec<(usize, usize, [u8; 4])> {
    let mut found = Vec::new();
    let mut at = start;
    while at + 8 <= end {
        let size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = b[at + 4..at + 8].try_into().unwrap();
        let size = if size == 0 { end - at } else { size };
        assert!(size >= 8 && at + size <= end, "malformed box at {at}");
        found.push((at, size, kind));
        at += size;
    }
    found
}

fn child(
    b: &[u8],
    parent: (usize, usize, [u8; 4]),
    kind: &[u8; 4],
) -> Option<(usize, usize, [u8; 4])> {
    boxes(b, parent.0 + 8, parent.0 + parent.1)
        .into_iter()
        .find(|c| &c.2 == kind)
}

/// Sets the durations in `mvhd`, every `tkhd` and `mdhd` to `secs` and adds a `mehd` saying so.
fn claim_duration(mp4: &mut Vec<u8>, secs: f64) {
    let moov = boxes(mp4, 0, mp4.len())
        .into_iter()
        .find(|b| &b.2 == b"moov")
        .expect("a moov box");
    // (offset of a version-0 full box's 32-bit duration, its timescale)
    let mvhd = child(mp4, moov, b"mvhd").expect("mvhd");
    assert_eq!(mp4[mvhd.0 + 8], 0, "mvhd version 0");
    let movie_scale = u32::from_be_bytes(mp4[mvhd.0 + 20..mvhd.0 + 24].try_into().unwrap());
    let mut edits = vec![(mvhd.0 + 24, movie_scale)];
    for trak in boxes(mp4, moov.0 + 8, moov.0 + moov.1)
        .into_iter()
        .filter(|b| &b.2 == b"trak")
    {
        let tkhd = child(mp4, trak, b"tkhd").expect("tkhd");
        assert_eq!(mp4[tkhd.0 + 8], 0, "tkhd version 0");
        edits.push((tkhd.0 + 28, movie_scale));
        let mdia = child(mp4, trak, b"mdia").expect("mdia");
        let mdhd = child(mp4, mdia, b"mdhd").expect("mdhd");
        assert_eq!(mp4[mdhd.0 + 8], 0, "mdhd version 0");
        let scale = u32::from_be_bytes(mp4[mdhd.0 + 20..mdhd.0 + 24].try_into().unwrap());
        edits.push((mdhd.0 + 24, scale));
    }
    for (at, scale) in edits {
        let d = (secs * f64::from(scale)).round() as u32;
        mp4[at..at + 4].copy_from_slice(&d.to_be_bytes());
    }
    let mvex = child(mp4, moov, b"mvex").expect("an mvex box: a fragmented MP4");
    let claim = (secs * f64::from(movie_scale)).round() as u32;
    let mut mehd = 16u32.to_be_bytes().to_vec();
    mehd.extend_from_slice(b"mehd");
    mehd.extend_from_slice(&[0, 0, 0, 0]);
    mehd.extend_from_slice(&claim.to_be_bytes());
    let insert_at = mvex.0 + 8;
    mp4.splice(insert_at..insert_at, mehd);
    for (at, size) in [(mvex.0, mvex.1), (moov.0, moov.1)] {
        mp4[at..at + 4].copy_from_slice(&((size + 16) as u32).to_be_bytes());
    }
}

/// H.264 + AAC in MPEG-TS ([`crate::fixtures::h264_ts`]) in which every tenth video PES's
/// timestamps are a third of a second early: stray timestamps that make FFmpeg's output
/// longer than the recording until they are rebuilt.
pub fn stray_video_timestamps(dir: &Path, name: &str, secs: f64) -> PathBuf {
    edited(
        dir,
        name,
        |d, n| crate::fixtures::h264_ts(d, n, secs),
        |ts| {
            let video: Vec<PesTimestamps> = pes_timestamps(ts)
                .into_iter()
                .filter(|p| (0xe0..=0xef).contains(&p.stream_id))
                .collect();
            for pes in video.iter().skip(9).step_by(10) {
                for at in std::iter::once(pes.pts_at).chain(pes.dts_at) {
                    let v = read_timestamp(&ts[at..at + 5]);
                    write_timestamp(&mut ts[at..at + 5], v + WRAP - 30_000);
                }
            }
        },
    )
}

/// An interlaced MPEG-2 TS ([`crate::fixtures::mpeg2_interlaced_ts`]) whose video packets are
/// scrambled: `transport_scrambling_control` set and the payload encrypted (here: XORed), as
/// a pay-TV channel recorded without its keys.
pub fn scrambled_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    let make = |d: &Path, n: &str| crate::fixtures::mpeg2_interlaced_ts(d, n, secs);
    edited(dir, name, make, |ts| {
        let video_pid = pes_timestamps(ts)
            .iter()
            .find(|p| (0xe0..=0xef).contains(&p.stream_id))
            .map(|p| p.pid)
            .expect("a video PES");
        for p in ts.chunks_exact_mut(PACKET) {
            if p[0] != 0x47 || pid(p) != video_pid {
                continue;
            }
            let Some(at) = payload_at(p) else { continue };
            p[3] = (p[3] & 0x3f) | 0x80;
            for b in &mut p[at..] {
                *b ^= 0xa5;
            }
        }
    })
}

/// An interlaced MPEG-2 TS ([`crate::fixtures::mpeg2_interlaced_ts`]) with `losses` video
/// packets lost in transmission, spread over the recording: each loss is a continuity error
/// and a corrupt PES the demuxer reports, and damaged pictures the decoder conceals.
pub fn damaged_ts(dir: &Path, name: &str, secs: f64, losses: usize) -> PathBuf {
    let make = |d: &Path, n: &str| crate::fixtures::mpeg2_interlaced_ts(d, n, secs);
    edited(dir, name, make, |ts| {
        let video_pid = pes_timestamps(ts)
            .iter()
            .find(|p| (0xe0..=0xef).contains(&p.stream_id))
            .map(|p| p.pid)
            .expect("a video PES");
        let video: Vec<usize> = ts
            .chunks_exact(PACKET)
            .enumerate()
            .filter(|(_, p)| pid(p) == video_pid && p[1] & 0x40 == 0)
            .map(|(i, _)| i)
            .collect();
        assert!(video.len() > losses * 4, "too few video packets");
        let step = video.len() / (losses + 1);
        let lost: Vec<usize> = (1..=losses).map(|k| video[k * step]).collect();
        let kept: Vec<u8> = ts
            .chunks_exact(PACKET)
            .enumerate()
            .filter(|(i, _)| !lost.contains(i))
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        *ts = kept;
    })
}

/// MP2 audio of `secs` in MPEG-TS, without video (a radio service).
pub fn audio_only_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    write_with_ffmpeg(dir, name, |tmp| {
        let mut args = os(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &format!("{secs}"),
            "-c:a",
            "mp2",
            "-f",
            "mpegts",
        ]);
        args.push(file_arg(tmp));
        args
    })
}

/// A private data stream of `secs` in MPEG-TS, without video or audio.
pub fn data_only_ts(dir: &Path, name: &str, secs: f64) -> PathBuf {
    check_name(name);
    let data = dir.join(format!(".{name}.testkit-data"));
    std::fs::create_dir_all(dir).unwrap();
    let packets = (secs * 10.0).round().max(1.0) as usize;
    std::fs::write(&data, vec![0x5au8; packets * 1024]).unwrap();
    let made = write_with_ffmpeg(dir, name, |tmp| {
        let mut args: Vec<OsString> = os(&["-f", "data", "-i"]);
        args.push(file_arg(&data));
        args.extend(os(&[
            "-map",
            "0:d",
            "-c:d",
            "copy",
            "-bsf:d",
            "setts=ts=N*9000:time_base=1/90000",
            "-f",
            "mpegts",
        ]));
        args.push(file_arg(tmp));
        args
    });
    let _ = std::fs::remove_file(&data);
    made
}

/// What ffprobe measures of one stream (`v:0`, `a:0`): its duration in seconds, when known.
pub fn stream_duration(path: &Path, stream: &str) -> Option<f64> {
    require_ffmpeg();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(file_arg(path))
        .output()
        .unwrap();
    // Transport streams list the stream under its programme too, with trailing separators.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().trim_end_matches(',').parse().ok())
}

/// The demuxer's and muxer's complaints when `path` is read with `ffmpeg -c copy -f null`
/// (`-v warning`), as the agent's old whole-file check read them.
pub fn null_muxer_log(path: &Path) -> String {
    require_ffmpeg();
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-v",
            "warning",
            "-i",
        ])
        .arg(file_arg(path))
        .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let mut b = [0x21u8, 0, 1, 0, 1];
        for v in [0u64, 1, 90_000, WRAP - 1, 3_240_000_000] {
            write_timestamp(&mut b, v);
            assert_eq!(read_timestamp(&b), v);
            assert_eq!(b[0] & 0xf0, 0x20, "the prefix is kept");
        }
    }
}
