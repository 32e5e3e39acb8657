//! Reading a recording's caption bytes, frame by frame, with ffprobe: from the video's A/53
//! user data (FFmpeg's decoder exports it, and the lavfi `movie=FILE[out0+subcc]` source turns
//! it into an `eia_608` stream of one packet per frame), or from a separate caption track
//! (`c608` in MP4/QuickTime), whose packets are read without decoding anything.
//!
//! ffprobe prints each packet's time and a hex dump of its data (`-show_data`), one line per
//! packet; the lines are parsed as they come, so an hour of captions never sits in memory as
//! text. Times count from the file's start time (its first timestamp), as FFmpeg's own output
//! timeline does, so the cues of a source and of its converted MP4 line up.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::cc608::CcFrame;
use crate::plumbing::child::{run_captured, spawn, tail_lines, RunError};
use crate::plumbing::ffarg::input_arg;

/// Where a file's captions are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carrier {
    /// In the video stream (A/53 `cc_data` in H.264 SEI or MPEG-2 user data).
    Video,
    /// In a separate caption track: the stream with this index (`eia_608`, sample entry
    /// `c608`).
    Track(u32),
}

/// The caption streams ffprobe lists in a file, besides the video's own captions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    /// The first `eia_608` stream FFmpeg can read (a `c608` track), by stream index.
    pub c608: Option<u32>,
    /// Caption tracks FFmpeg 5.1 cannot read (a `c708` sample entry), described for a warning.
    pub unreadable: Vec<String>,
}

#[derive(Deserialize)]
struct StreamsJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    #[serde(default)]
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    #[serde(default)]
    codec_tag_string: String,
}

#[derive(Deserialize)]
struct FormatJson {
    #[serde(default)]
    start_time: Option<String>,
}

/// The caption tracks of `path` and its start time in seconds (0 when unknown).
pub async fn tracks(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(Tracks, f64), RunError> {
    let mut cmd = crate::plumbing::priority::command(ffprobe);
    cmd.args(["-v", "error", "-print_format", "json"]);
    cmd.args([
        "-show_entries",
        "stream=index,codec_type,codec_name,codec_tag_string:format=start_time",
    ]);
    cmd.args(crate::encoder_args::LOCAL_ONLY);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    Ok(parse_tracks(&out.stdout))
}

/// The caption tracks and the start time in ffprobe's JSON of a file's streams and format
/// (`-show_streams -show_format`, or the narrower entries [`tracks`] asks for).
pub fn parse_tracks(json: &[u8]) -> (Tracks, f64) {
    let Ok(parsed) = serde_json::from_slice::<StreamsJson>(json) else {
        return (Tracks::default(), 0.0);
    };
    let mut tracks = Tracks::default();
    for s in &parsed.streams {
        let tag = s.codec_tag_string.to_ascii_lowercase();
        if s.codec_name == "eia_608" && tracks.c608.is_none() {
            tracks.c608 = Some(s.index);
        } else if tag == "c708" || (s.codec_name == "eia_708") {
            tracks.unreadable.push(format!(
                "stream {} is a CEA-708 caption track ({}), which FFmpeg 5.1 cannot read",
                s.index, s.codec_tag_string
            ));
        } else if s.codec_type != "video" && tag == "c608" {
            tracks.unreadable.push(format!(
                "stream {} is a c608 caption track FFmpeg does not decode",
                s.index
            ));
        }
    }
    let start = parsed
        .format
        .and_then(|f| f.start_time)
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(0.0);
    (tracks, start)
}

/// Why the caption bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// ffprobe could not start, stalled or was cancelled.
    #[error(transparent)]
    Run(#[from] RunError),
    /// ffprobe failed.
    #[error("ffprobe could not read the captions of {path}: {why}")]
    Failed {
        /// The file.
        path: String,
        /// The end of its messages.
        why: String,
    },
}

/// Every frame of `path` that carries CEA-608 caption bytes (valid field 1 or 2 pairs other
/// than padding), with its time from `start` (the file's start time). Frames that carry only
/// padding or CEA-708 data are left out: they change nothing a 608 decoder shows.
///
/// `limit`: ffprobe is killed when it has not finished after this long. (There is no stall
/// timeout: a recording whose caption data stops makes ffprobe print nothing while it decodes
/// the rest, which is not a stall.)
pub async fn frames(
    ffprobe: &Path,
    path: &Path,
    carrier: &Carrier,
    start: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<CcFrame>, ReadError> {
    let mut cmd = crate::plumbing::priority::command(ffprobe);
    cmd.args(["-hide_banner", "-v", "error"]);
    match carrier {
        Carrier::Video => {
            cmd.args(["-f", "lavfi", "-i"]);
            cmd.arg(format!(
                "movie={}[out0+subcc]",
                crate::plumbing::ffarg::lavfi_escape(&input_path(path))
            ));
            cmd.args(["-select_streams", "1"]);
        }
        Carrier::Track(index) => {
            cmd.args(crate::encoder_args::LOCAL_ONLY);
            cmd.arg("-i").arg(input_arg(path));
            cmd.args(["-select_streams", &index.to_string()]);
        }
    }
    cmd.args([
        "-show_entries",
        "packet=pts_time,data",
        "-show_data",
        "-of",
        "compact=p=0:nk=1",
    ]);
    let (child, stdout, stderr_task, program) = start_read(&mut cmd)?;
    let mut lines = BufReader::new(stdout).lines();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let outcome = loop {
        tokio::select! {
            line = tokio::time::timeout_at(deadline, lines.next_line()) => match line {
                Ok(Ok(Some(line))) => {
                    if let Some(frame) = parse_line(&line, start) {
                        frames.push(frame);
                    }
                }
                Ok(Ok(None)) => break Ok(()),
                Ok(Err(source)) => break Err(RunError::Io { program: program.clone(), source }),
                Err(_) => break Err(RunError::TimedOut { program: program.clone(), timeout: limit }),
            },
            _ = cancel.cancelled() => break Err(RunError::Cancelled { program: program.clone() }),
        }
    };
    finish(child, outcome, stderr_task, &program, path).await?;
    Ok(frames)
}

/// Every frame of an H.264 file that carries CEA-608 caption bytes, read from the bitstream
/// without decoding it: the A/53 `cc_data` of each access unit's SEI (FFmpeg copies the video to
/// an Annex B stream, `-c copy -bsf:v h264_mp4toannexb`), and each access unit's time from its
/// packet (ffprobe lists the packets in the same decode order). FFmpeg's decoder attaches the
/// same bytes to the same pictures, so this gives what [`frames`] gives for [`Carrier::Video`]
/// at a fraction of the cost; the frames come back in presentation order.
pub async fn h264_frames(
    ffmpeg: &Path,
    ffprobe: &Path,
    path: &Path,
    start: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<CcFrame>, ReadError> {
    let deadline = tokio::time::Instant::now() + limit;
    // The packets' times, in decode order.
    let mut probe = crate::plumbing::priority::command(ffprobe);
    probe.args(["-hide_banner", "-v", "error", "-select_streams", "v:0"]);
    probe.args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    probe.args(crate::encoder_args::LOCAL_ONLY);
    probe.arg(input_arg(path));
    let mut times = Vec::new();
    stream_lines(&mut probe, path, deadline, limit, cancel, |line| {
        let value = line.split(',').next().unwrap_or("").trim();
        times.push(value.parse::<f64>().unwrap_or(f64::NAN));
    })
    .await?;
    // The access units' caption bytes, in the same order.
    let mut copy = crate::plumbing::priority::command(ffmpeg);
    copy.args(["-hide_banner", "-nostdin", "-v", "error"]);
    copy.args(crate::encoder_args::LOCAL_ONLY);
    copy.arg("-i");
    copy.arg(input_arg(path));
    copy.args([
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        "pipe:1",
    ]);
    let mut parser = AnnexB::default();
    stream_bytes(&mut copy, path, deadline, limit, cancel, |chunk| {
        parser.push(chunk)
    })
    .await?;
    let units = parser.finish();
    let mut frames: Vec<CcFrame> = units
        .into_iter()
        .filter_map(|(index, triples)| {
            let time = *times.get(index)?;
            let triples: Vec<[u8; 3]> = triples.into_iter().filter(carries_608).collect();
            (time.is_finite() && !triples.is_empty()).then_some(CcFrame {
                time: time - start,
                triples,
            })
        })
        .collect();
    frames.sort_by(|a, b| a.time.total_cmp(&b.time));
    Ok(frames)
}

/// Whether a triple is a valid field 1 or 2 pair (608) other than padding.
pub(super) fn carries_608(t: &[u8; 3]) -> bool {
    t[0] & 0x04 != 0 && t[0] & 0x02 == 0 && (t[1] & 0x7F != 0 || t[2] & 0x7F != 0)
}

/// Splits an H.264 Annex B byte stream into access units and collects the A/53 `cc_data`
/// triples of each one's SEI messages: `(access unit index, triples)` for the units that have
/// any ([`AccessUnits`] does the splitting).
#[derive(Debug, Default)]
struct AnnexB {
    buffer: Vec<u8>,
    units: AccessUnits,
    found: Vec<(usize, Vec<[u8; 3]>)>,
}

impl AnnexB {
    fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
        // Every NAL unit that the next start code closes is complete.
        let mut starts = start_codes(&self.buffer);
        if starts.len() < 2 {
            return;
        }
        let last = starts.pop().unwrap_or(0);
        for pair in starts.windows(2) {
            let nal = trim_zeros(&self.buffer[pair[0]..pair[1]]).to_vec();
            self.nal(&nal);
        }
        if let Some(&first) = starts.last() {
            let nal = trim_zeros(&self.buffer[first..last]).to_vec();
            self.nal(&nal);
        }
        // Keep the incomplete NAL unit with its start code.
        self.buffer.drain(..last - 3);
    }

    fn nal(&mut self, nal: &[u8]) {
        if let Some(unit) = self.units.nal(nal) {
            self.keep(unit);
        }
    }

    fn keep(&mut self, unit: AccessUnit) {
        if !unit.triples.is_empty() {
            self.found.push((unit.index, unit.triples));
        }
    }

    fn finish(mut self) -> Vec<(usize, Vec<[u8; 3]>)> {
        let buffer = std::mem::take(&mut self.buffer);
        if let Some(&first) = start_codes(&buffer).first() {
            self.nal(trim_zeros(&buffer[first..]));
        }
        if let Some(unit) = self.units.close() {
            self.keep(unit);
        }
        self.found
    }
}

/// One H.264 access unit, as [`AccessUnits`] hands it over once it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AccessUnit {
    /// Its position in decode order, from 0.
    pub index: usize,
    /// Whether a decoder may start at it: an IDR slice, or a recovery point SEI message.
    pub key: bool,
    /// The A/53 `cc_data` triples of its SEI messages, in order.
    pub triples: Vec<[u8; 3]>,
}

/// Groups H.264 NAL units into access units, fed one NAL unit at a time (from just after its
/// start code). A unit begins at an access unit delimiter, SPS, PPS or SEI that follows a
/// slice, or at a slice whose `first_mb_in_slice` is 0 that follows a slice.
#[derive(Debug, Default)]
pub(super) struct AccessUnits {
    /// The access unit being read (`None` before the first one).
    unit: Option<usize>,
    /// Whether the current unit already has a slice.
    had_slice: bool,
    /// Whether the current unit is a key unit.
    key: bool,
    /// The triples of the current unit.
    triples: Vec<[u8; 3]>,
}

impl AccessUnits {
    /// Takes one NAL unit; returns the access unit it closed when it begins a new one (its
    /// first NAL unit is this one).
    pub(super) fn nal(&mut self, nal: &[u8]) -> Option<AccessUnit> {
        let &header = nal.first()?;
        let kind = header & 0x1F;
        let starts_unit = match kind {
            1 | 5 => {
                let first_mb_zero = nal.get(1).is_some_and(|b| b & 0x80 != 0);
                self.had_slice && first_mb_zero
            }
            6..=9 => self.had_slice,
            _ => false,
        };
        let mut closed = None;
        if starts_unit || self.unit.is_none() {
            closed = self.close();
            self.unit = Some(closed.as_ref().map_or(0, |u| u.index + 1));
            self.had_slice = false;
        }
        match kind {
            1 | 5 => {
                self.had_slice = true;
                self.key |= kind == 5;
            }
            6 => {
                sei_messages(&unescape(&nal[1..]), |kind, payload| match kind {
                    4 => a53_t35_cc_data(payload, &mut self.triples),
                    6 => self.key = true,
                    _ => {}
                });
            }
            _ => {}
        }
        closed
    }

    /// How many access units have begun.
    pub(super) fn begun(&self) -> usize {
        self.unit.map_or(0, |u| u + 1)
    }

    /// Closes the current access unit (at the end of the stream, or when the next begins).
    pub(super) fn close(&mut self) -> Option<AccessUnit> {
        let index = self.unit?;
        Some(AccessUnit {
            index,
            key: std::mem::take(&mut self.key),
            triples: std::mem::take(&mut self.triples),
        })
    }
}

/// Offsets of the bytes just after each `00 00 01` start code.
fn start_codes(data: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            at.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    at
}

/// A NAL unit without the zero bytes of the next start code.
fn trim_zeros(mut nal: &[u8]) -> &[u8] {
    // The next start code's `00 00 01` begins at the end; drop it and any zero padding.
    if nal.ends_with(&[0, 0, 1]) {
        nal = &nal[..nal.len() - 3];
    }
    while let [rest @ .., 0] = nal {
        nal = rest;
    }
    nal
}

/// The RBSP of a NAL unit's payload: emulation-prevention bytes (`00 00 03`) removed.
pub(crate) fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Hands `each` the payload type and payload of every message of an SEI RBSP, up to the
/// first one that does not fit; `false` when one did not fit (the RBSP was not read to its
/// end).
pub(crate) fn sei_messages(rbsp: &[u8], mut each: impl FnMut(usize, &[u8])) -> bool {
    let mut at = 0;
    while at < rbsp.len() && rbsp[at] != 0x80 {
        let read = |at: &mut usize| -> Option<usize> {
            let mut value = 0usize;
            loop {
                let b = *rbsp.get(*at)?;
                *at += 1;
                value += usize::from(b);
                if b != 0xFF {
                    return Some(value);
                }
            }
        };
        let (Some(kind), Some(size)) = (read(&mut at), read(&mut at)) else {
            return false;
        };
        let Some(payload) = rbsp.get(at..at.saturating_add(size)) else {
            return false;
        };
        at += size;
        each(kind, payload);
    }
    true
}

/// Appends the `cc_data` triples of an ITU-T T.35 SEI payload (payload type 4) that is ATSC
/// A/53 caption data: country `0xB5`, provider `0x0031`, then [`a53_cc_data`].
pub(super) fn a53_t35_cc_data(payload: &[u8], triples: &mut Vec<[u8; 3]>) {
    if payload.len() >= 3 && payload[..3] == [0xB5, 0x00, 0x31] {
        a53_cc_data(&payload[3..], triples);
    }
}

/// Appends the `cc_data` triples of ATSC A/53 user data (`GA94`, type code 3, the
/// `process_cc_data_flag` set): what an MPEG-2 picture's user data and an H.264 SEI message
/// carry alike. Returns whether `data` was A/53 caption data.
pub(super) fn a53_cc_data(data: &[u8], triples: &mut Vec<[u8; 3]>) -> bool {
    if data.len() < 7 || &data[..4] != b"GA94" || data[4] != 0x03 || data[5] & 0x40 == 0 {
        return false;
    }
    let count = usize::from(data[5] & 0x1F);
    triples.extend(
        data[7..]
            .chunks_exact(3)
            .take(count)
            .map(|c| [c[0], c[1], c[2]]),
    );
    true
}

/// Runs `cmd` and hands each stdout line to `each`, within `deadline`.
async fn stream_lines(
    cmd: &mut Command,
    path: &Path,
    deadline: tokio::time::Instant,
    limit: Duration,
    cancel: &CancellationToken,
    mut each: impl FnMut(&str),
) -> Result<(), ReadError> {
    let mut pending = Vec::new();
    stream_bytes(cmd, path, deadline, limit, cancel, |chunk| {
        pending.extend_from_slice(chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            each(&String::from_utf8_lossy(&pending[..end]));
            pending.drain(..=end);
        }
    })
    .await?;
    if !pending.is_empty() {
        each(&String::from_utf8_lossy(&pending));
    }
    Ok(())
}

/// Runs `cmd` (a supervised child) and hands its stdout to `each` chunk by chunk; fails when it
/// does not finish by `deadline`, is cancelled, or exits with an error.
async fn stream_bytes(
    cmd: &mut Command,
    path: &Path,
    deadline: tokio::time::Instant,
    limit: Duration,
    cancel: &CancellationToken,
    mut each: impl FnMut(&[u8]),
) -> Result<(), ReadError> {
    let (child, mut stdout, stderr_task, program) = start_read(cmd)?;
    let mut buf = vec![0u8; 256 * 1024];
    let outcome = loop {
        tokio::select! {
            read = tokio::time::timeout_at(deadline, stdout.read(&mut buf)) => match read {
                Ok(Ok(0)) => break Ok(()),
                Ok(Ok(n)) => each(&buf[..n]),
                Ok(Err(source)) => break Err(RunError::Io { program: program.clone(), source }),
                Err(_) => break Err(RunError::TimedOut { program: program.clone(), timeout: limit }),
            },
            _ = cancel.cancelled() => break Err(RunError::Cancelled { program: program.clone() }),
        }
    };
    finish(child, outcome, stderr_task, &program, path).await?;
    Ok(())
}

/// A path the `movie` filter opens as a file whatever its name (`file:` prefix).
fn input_path(path: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(input_arg(path))
}

/// One `pts_time|data` line: the hex dump's bytes grouped in triples, only the 608 pairs that
/// carry something; `None` when the frame has none.
fn parse_line(line: &str, start: f64) -> Option<CcFrame> {
    let (pts, data) = line.split_once('|')?;
    let time = pts.trim().parse::<f64>().ok()? - start;
    let mut bytes = Vec::new();
    // The dump's lines are separated by an escaped newline: `00000000: fc80 80fd 8080  ...`.
    for dump_line in data.split("\\n") {
        let Some(hex) = dump_line.get(10..dump_line.len().min(50)) else {
            continue;
        };
        let offset = dump_line.get(..9).unwrap_or("");
        if !offset.ends_with(':') || !offset[..8].bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for group in hex.split_whitespace() {
            if group.len() % 2 != 0 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                break;
            }
            for i in (0..group.len()).step_by(2) {
                bytes.push(u8::from_str_radix(&group[i..i + 2], 16).ok()?);
            }
        }
    }
    let triples: Vec<[u8; 3]> = bytes
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .filter(carries_608)
        .collect();
    (!triples.is_empty()).then_some(CcFrame { time, triples })
}

/// Starts `cmd` (its own process group) with stdout piped for the caller and the first 64 KiB
/// of stderr kept by a task (the rest is drained); returns the child, its stdout, that task and
/// the program's name.
fn start_read(
    cmd: &mut Command,
) -> Result<
    (
        crate::plumbing::child::Supervised,
        tokio::process::ChildStdout,
        tokio::task::JoinHandle<String>,
        String,
    ),
    ReadError,
> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = spawn(cmd).map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let mut stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    Ok((child, stdout, stderr_task, program))
}

/// Ends a read started by [`start_read`]: on a failed `outcome` the child's group is stopped;
/// otherwise its exit is awaited and a failure is reported with the end of its stderr.
async fn finish(
    mut child: crate::plumbing::child::Supervised,
    outcome: Result<(), RunError>,
    stderr_task: tokio::task::JoinHandle<String>,
    program: &str,
    path: &Path,
) -> Result<(), ReadError> {
    if let Err(e) = outcome {
        let _ = child.terminate(Duration::from_secs(2)).await;
        return Err(e.into());
    }
    let status = child.wait().await.map_err(|source| RunError::Io {
        program: program.to_owned(),
        source,
    })?;
    let stderr = stderr_task.await.unwrap_or_default();
    if !status.success() {
        return Err(ReadError::Failed {
            path: path.display().to_string(),
            why: tail_lines(&stderr, 3),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_hex_dump_line() {
        let line = r"2.756000|\n00000000: fc94 2ffd d354 fa00 00fa 0000 fa00 00fa  ../..T..........\n00000010: 0000 fa00 00fa 0000 fa00 00fa 0000 fa00  ................\n";
        let f = parse_line(line, 1.4).unwrap();
        assert!((f.time - 1.356).abs() < 1e-9);
        assert_eq!(f.triples, vec![[0xFC, 0x94, 0x2F], [0xFD, 0xD3, 0x54]]);
        assert!(parse_line(r"1.0|\n00000000: fc80 80fd 8080      ......\n", 0.0).is_none());
        // A backslash in the ASCII column is escaped and must not break the parse.
        let odd = r"1.0|\n00000000: fcdc 6e                                  .\\n\n";
        assert_eq!(
            parse_line(odd, 0.0).unwrap().triples,
            vec![[0xFC, 0xDC, 0x6E]]
        );
    }

    #[test]
    fn annex_b_access_units_and_their_cc_data() {
        // An SEI with one A/53 message: cc_count 2, a field-1 pair and field-2 padding.
        let sei = |pair: [u8; 2]| -> Vec<u8> {
            let mut payload = vec![0xB5, 0x00, 0x31];
            payload.extend(b"GA94\x03");
            payload.extend([0x42, 0xFF, 0xFC, pair[0], pair[1], 0xFD, 0x80, 0x80, 0xFF]);
            let mut nal = vec![0x06, 4, payload.len() as u8];
            nal.extend(payload);
            nal.push(0x80);
            nal
        };
        let mut stream = Vec::new();
        for (i, nal) in [
            vec![0x67, 1, 2],
            vec![0x68, 3],
            sei([0x94, 0x20]),
            vec![0x65, 0x88, 0],
            vec![0x41, 0x9A, 1],
            sei([0xC1, 0xC2]),
            vec![0x41, 0x9A, 2],
            vec![0x41, 0x9A, 3],
        ]
        .into_iter()
        .enumerate()
        {
            stream.extend(if i % 2 == 0 {
                &[0, 0, 0, 1][..]
            } else {
                &[0, 0, 1][..]
            });
            stream.extend(nal);
        }
        // Fed in awkward pieces, as a pipe delivers it.
        let mut parser = AnnexB::default();
        for chunk in stream.chunks(5) {
            parser.push(chunk);
        }
        let units = parser.finish();
        assert_eq!(
            units,
            vec![
                (0, vec![[0xFC, 0x94, 0x20], [0xFD, 0x80, 0x80]]),
                (2, vec![[0xFC, 0xC1, 0xC2], [0xFD, 0x80, 0x80]]),
            ]
        );
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3, 0]), vec![0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn finds_caption_tracks() {
        let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","codec_tag_string":"avc1"},
            {"index":2,"codec_type":"subtitle","codec_name":"eia_608","codec_tag_string":"c608"},
            {"index":3,"codec_type":"data","codec_name":"none","codec_tag_string":"c708"}],
            "format":{"start_time":"1.400000"}}"#;
        let (t, start) = parse_tracks(json);
        assert_eq!(t.c608, Some(2));
        assert_eq!(t.unreadable.len(), 1);
        assert!((start - 1.4).abs() < 1e-9);
    }
}
