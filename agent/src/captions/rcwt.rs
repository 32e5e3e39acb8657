//! RCWT ("raw captions with time", CCExtractor's `.bin`) written by the agent itself, for
//! captions CCExtractor cannot be given: those of a separate `c608` caption track, which a
//! stream copy of the video into MPEG-TS does not carry.
//!
//! The layout is CCExtractor's `docs/BINARY_FILE_FORMAT.TXT`: the 11-byte header, then for
//! each frame with caption data an 8-byte time in milliseconds from the start of the file and a
//! 2-byte block count (both little-endian, as CCExtractor writes them on x86), then the 3-byte
//! blocks (`cc_valid`/`cc_type` byte and the two data bytes). `ccextractor -in=bin` reads it.

use std::io::Write;
use std::path::Path;

use super::cc608::CcFrame;
use super::ccextractor::RCWT_HEADER;

/// Writes `frames` as an RCWT file at `path`.
pub fn write(path: &Path, frames: &[CcFrame]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&RCWT_HEADER)?;
    for frame in frames {
        let ms = (frame.time.max(0.0) * 1000.0).round() as i64;
        for chunk in frame.triples.chunks(usize::from(u16::MAX)) {
            out.write_all(&ms.to_le_bytes())?;
            out.write_all(&(chunk.len() as u16).to_le_bytes())?;
            for t in chunk {
                out.write_all(t)?;
            }
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_timed_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let frames = [CcFrame {
            time: 0.8008,
            triples: vec![[0xFC, 0x94, 0x20]],
        }];
        write(&path, &frames).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..11], &RCWT_HEADER);
        assert_eq!(i64::from_le_bytes(bytes[11..19].try_into().unwrap()), 801);
        assert_eq!(&bytes[19..], &[1, 0, 0xFC, 0x94, 0x20]);
    }
}
