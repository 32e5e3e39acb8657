//! The source's CC1 byte pairs as a Scenarist (SCC) file, so that FFmpeg's own 608 decoder
//! writes the `.srt` and `.vtt` sidecars from them without decoding the video a second time
//! (FFmpeg 5.1 demuxes SCC alone: `-f scc`).
//!
//! One line per frame that carries field-1 pairs: its time, then its pairs as hex words. FFmpeg
//! 5.1's SCC demuxer reads a line's time as `HH:MM:SS:FF` and turns it into milliseconds as
//! `(HH * 3600 + MM * 60 + SS) * 1000 + FF * 33`, whatever the frame rate; its fields are plain
//! integers, so any millisecond is written exactly by choosing `FF` (0 to 999) with `FF * 33`
//! congruent to it modulo 1000 and letting `SS` take the rest (negative below 33 s). Each time
//! is the one FFmpeg's extraction from the video gives the frame ([`frame_ms`]), so the
//! sidecars say what they said before, to the millisecond. The words start at the 13th
//! character of a line, where the demuxer looks for them: the time is padded to 12 characters.
//!
//! Frames whose time needs more than 99 hours, or a line that would not fit the demuxer's
//! 4096-byte line, make [`write`] refuse (the caller extracts through the decoder instead).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use super::cc608::CcFrame;

/// The longest time a line can carry (the hours take two characters).
const MAX_MS: i64 = 100 * 3600 * 1000 - 1;

/// The millisecond FFmpeg's extraction through the decoder gives a frame `secs` after the first
/// picture of a transport stream: its 90 kHz timestamp difference rescaled (rounding to
/// nearest) to microseconds, then to milliseconds, as FFmpeg does on the way to the subtitle
/// encoder.
pub fn frame_ms(secs: f64) -> i64 {
    let ticks = (secs * 90_000.0).round() as i64;
    let micros = rescale(ticks, 1_000_000, 90_000);
    rescale(micros, 1, 1000)
}

/// `a * b / c` rounded to nearest, halves away from zero (FFmpeg's `av_rescale`).
fn rescale(a: i64, b: i64, c: i64) -> i64 {
    let n = i128::from(a) * i128::from(b);
    let c = i128::from(c);
    let r = if n >= 0 {
        (n + c / 2) / c
    } else {
        -((-n + c / 2) / c)
    };
    r as i64
}

/// The 12-character time field that FFmpeg 5.1's SCC demuxer reads as `ms`.
pub fn time_field(ms: i64) -> Option<String> {
    if !(0..=MAX_MS).contains(&ms) {
        return None;
    }
    // 33 * 697 = 23001: 697 is 33's inverse modulo 1000.
    let frames = (ms % 1000) * 697 % 1000;
    let seconds = (ms - frames * 33) / 1000;
    let (hours, minutes, seconds) = if seconds >= 0 {
        (seconds / 3600, seconds / 60 % 60, seconds % 60)
    } else {
        (0, 0, seconds)
    };
    let field = format!("{hours}:{minutes}:{seconds}:{frames}");
    (field.len() <= 12).then(|| format!("{field:<12}"))
}

/// Writes the field-1 pairs of `frames` (times in seconds after the first picture) to `path`
/// as SCC; returns how many lines it wrote. Refuses a frame it cannot write exactly.
pub fn write(path: &Path, frames: &[CcFrame], first_picture: f64) -> std::io::Result<usize> {
    let mut text = String::from("Scenarist_SCC V1.0\n\n");
    let mut lines = 0;
    for frame in frames {
        let pairs: Vec<&[u8; 3]> = frame.triples.iter().filter(|t| t[0] & 0x03 == 0).collect();
        if pairs.is_empty() {
            continue;
        }
        let ms = frame_ms(frame.time - first_picture);
        let field = time_field(ms).ok_or_else(|| {
            std::io::Error::other(format!("a caption at {ms} ms is beyond what SCC can carry"))
        })?;
        if pairs.len() * 5 + 13 >= 4096 {
            return Err(std::io::Error::other("a frame with too many caption pairs"));
        }
        text.push_str(&field);
        for t in pairs {
            let _ = write!(text, " {:02x}{:02x}", t[1], t[2]);
        }
        text.push_str("\n\n");
        lines += 1;
    }
    // Never written through a planted symlink: a leftover of the agent's own (a regular file)
    // goes, anything else at the name makes the creation fail.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        std::fs::remove_file(path)?;
    }
    let mut file = crate::fs_safe::create_new(path)?;
    file.write_all(text.as_bytes())?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What FFmpeg 5.1's demuxer computes from a time field.
    fn demuxed(field: &str) -> i64 {
        let parts: Vec<i64> = field
            .trim()
            .split(':')
            .map(|p| p.parse().unwrap())
            .collect();
        (parts[0] * 3600 + parts[1] * 60 + parts[2]) * 1000 + parts[3] * 33
    }

    #[test]
    fn every_millisecond_is_written_exactly_in_twelve_characters() {
        for ms in (0..200_000).chain([MAX_MS - 1, MAX_MS, 3_600_000 * 27 + 1]) {
            let field = time_field(ms).unwrap();
            assert_eq!(field.len(), 12, "{field:?}");
            assert_eq!(demuxed(&field), ms, "{field:?}");
        }
        assert_eq!(time_field(-1), None);
        assert_eq!(time_field(MAX_MS + 1), None);
    }

    #[test]
    fn frame_times_round_as_ffmpeg_does() {
        // 29.97 frames/s: frame 24 is 72072 ticks, 800800 µs, 801 ms.
        assert_eq!(frame_ms(72_072.0 / 90_000.0), 801);
        assert_eq!(frame_ms(0.0), 0);
        // 25 frames/s: 40 ms a frame.
        assert_eq!(frame_ms(3600.0 / 90_000.0), 40);
        // Half a millisecond rounds up.
        assert_eq!(frame_ms(45.0 / 90_000.0), 1);
    }

    #[test]
    fn writes_field_one_pairs_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cc.scc");
        let frames = [
            CcFrame {
                time: 1.5,
                triples: vec![[0xFD, 0x15, 0x2C], [0xFC, 0x94, 0x20]],
            },
            CcFrame {
                time: 1.6,
                triples: vec![[0xFD, 0x15, 0x2C]],
            },
        ];
        assert_eq!(write(&path, &frames, 0.5).unwrap(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let want = format!(
            "Scenarist_SCC V1.0\n\n{} 9420\n\n",
            time_field(1000).unwrap()
        );
        assert_eq!(text, want);
    }

    #[test]
    fn a_planted_symlink_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "keep").unwrap();
        let planted = dir.path().join(".news.subcc.tmp");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        assert!(write(&planted, &[], 0.0).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // A leftover regular file of the agent's own is replaced.
        let leftover = dir.path().join(".old.subcc.tmp");
        std::fs::write(&leftover, "old").unwrap();
        write(&leftover, &[], 0.0).unwrap();
        assert!(!std::fs::read_to_string(&leftover).unwrap().contains("old"));
    }
}
