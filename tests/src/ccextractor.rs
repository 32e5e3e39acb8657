//! A stand-in for CCExtractor that behaves like the real program where the agent depends on it,
//! and a reader of the RCWT (`.bin`) files it writes.
//!
//! CCExtractor is not packaged by Debian, and building it needs GPAC and a CMake module fetched
//! at build time, so the tests run a stand-in: a Python script ([`standin`]) with CCExtractor's
//! command line (`INPUT -o OUTPUT -out=srt|webvtt|bin`) and exit codes
//! (`src/lib_ccx/ccx_common_common.h`). What it copies from the real program (0.96.5, as issue 18
//! of this project reports it):
//!
//! - **MPEG-TS and MPEG-PS** are read: the CC1 captions of the video (H.264 SEI or MPEG-2 user
//!   data; the stand-in uses FFmpeg's decoder to get them) go into `.srt` / `.vtt`, or into RCWT
//!   `.bin`: the 11-byte header, then for each frame that carries caption bytes other than
//!   padding its time in milliseconds from the first video frame, its block count and its 608
//!   blocks. No caption at all: "No captions were found in input", exit 10, no file.
//! - **MP4** yields nothing, as the real program does with the agent's H.264 MP4 files: exit 10
//!   ("No captions were found in input"), or with [`Mp4::NullPath`] "Error: NULL file path
//!   provided to processmp4" and exit 0 without a file.
//! - **WTV** yields nothing (exit 10).
//!
//! Anything else is a read error (exit 8). With the environment variable [`LOG_ENV`] set, each
//! run appends the path of its input to that file.

use std::path::{Path, PathBuf};

/// The environment variable naming the file each run appends its input's path to.
pub const LOG_ENV: &str = "CCEXTRACTOR_STANDIN_LOG";

/// The script.
const SCRIPT: &str = include_str!("ccextractor_standin.py");

/// What the stand-in does with an MP4 input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mp4 {
    /// "No captions were found in input", exit 10.
    #[default]
    NoCaptions,
    /// "Error: NULL file path provided to processmp4", exit 0, no output file.
    NullPath,
}

/// Writes the stand-in as `dir/ccextractor` (executable) and returns its path.
pub fn standin(dir: &Path, mp4: Mp4) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let behaviour = match mp4 {
        Mp4::NoCaptions => "exit10",
        Mp4::NullPath => "null-path",
    };
    let script = SCRIPT.replacen(
        "MP4_BEHAVIOUR = \"exit10\"",
        &format!("MP4_BEHAVIOUR = \"{behaviour}\""),
        1,
    );
    let path = dir.join("ccextractor");
    std::fs::write(&path, script)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The 11-byte RCWT header CCExtractor writes.
pub const RCWT_HEADER: [u8; 11] = [
    0xCC, 0xCC, 0xED, 0xCC, 0x00, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00,
];

/// One timed group of an RCWT file: milliseconds from the start, and the 3-byte blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcwtGroup {
    /// FTS: milliseconds from the beginning of the file.
    pub ms: i64,
    /// The caption blocks (`cc_valid`/`cc_type` byte, two data bytes).
    pub blocks: Vec<[u8; 3]>,
}

/// Parses an RCWT file: panics unless it starts with [`RCWT_HEADER`]'s magic and format
/// version and its groups are whole.
pub fn read_rcwt(path: &Path) -> Vec<RcwtGroup> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.len() >= 11 && bytes[..3] == RCWT_HEADER[..3] && bytes[6..8] == RCWT_HEADER[6..8],
        "{} does not start with the RCWT header: {:02x?}",
        path.display(),
        &bytes[..bytes.len().min(11)]
    );
    let mut groups = Vec::new();
    let mut at = 11;
    while at < bytes.len() {
        assert!(at + 10 <= bytes.len(), "truncated RCWT time header at {at}");
        let ms = i64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let count = usize::from(u16::from_le_bytes([bytes[at + 8], bytes[at + 9]]));
        at += 10;
        assert!(
            at + 3 * count <= bytes.len(),
            "truncated RCWT blocks at {at}"
        );
        let blocks = bytes[at..at + 3 * count]
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        at += 3 * count;
        groups.push(RcwtGroup { ms, blocks });
    }
    groups
}
