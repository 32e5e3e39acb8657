//! What a media file holds, according to `ffprobe`: its streams (of one programme, in a
//! multiplex), and their durations measured from what is there (timestamps, sample tables, a
//! fragmented MP4's fragments) rather than a container's or a header's claim.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::plumbing::child::{run_captured, tail_lines, RunError};
use crate::plumbing::ffarg::input_arg;

/// The facts about a media file the pipeline needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// The container format as ffprobe names it (`mpegts`, `mov,mp4,m4a,3gp,3g2,mj2`, `wtv`).
    pub format_name: String,
    /// The container's duration in seconds (0 when unknown). A claim: it may come from a data
    /// stream, a fragment header or stray timestamps, so nothing is compared with it; see
    /// [`MediaInfo::video_secs`].
    pub duration: f64,
    /// The first video stream (of the programme converted, in a multiplex).
    pub video: Option<VideoStream>,
    /// Every audio stream (of the programme converted, in a multiplex).
    pub audio: Vec<AudioStream>,
    /// Streams that are neither video nor audio (data, subtitles, SCTE-35).
    pub other_streams: usize,
    /// The programmes of a transport stream, in the order ffprobe lists them (empty for other
    /// containers).
    pub programs: Vec<Programme>,
    /// The programme converted, when the stream carries several or one was asked for.
    pub program: Option<Programme>,
}

/// One programme (service) of a transport stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programme {
    /// Its programme number (`program_number` in the PAT).
    pub number: u32,
    /// Its service name (from the SDT or VCT), empty when the stream gives none.
    pub name: String,
    /// The indexes of its streams.
    pub streams: Vec<u32>,
    /// How many video streams it has.
    pub video: usize,
    /// How many audio streams it has.
    pub audio: usize,
}

impl std::fmt::Display for Programme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number)?;
        if !self.name.is_empty() {
            write!(f, " \"{}\"", self.name)?;
        }
        write!(f, " ({} video, {} audio)", self.video, self.audio)
    }
}

impl MediaInfo {
    /// The video's duration in seconds, as measured from its own timestamps and frames (the
    /// video stream's duration), else the container's.
    pub fn video_secs(&self) -> f64 {
        self.video
            .as_ref()
            .and_then(|v| v.duration)
            .unwrap_or(self.duration)
    }

    /// The first audio stream's duration in seconds, when known.
    pub fn audio_secs(&self) -> Option<f64> {
        self.audio.first().and_then(|a| a.duration)
    }
}

/// A video stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VideoStream {
    /// Codec name (`h264`, `mpeg2video`).
    pub codec: String,
    /// Codec profile (`High`, `Main`).
    pub profile: String,
    /// Pixel format (`yuv420p`).
    pub pix_fmt: String,
    /// `progressive`, `tt`, `bb`, `tb`, `bt` or empty when unknown.
    pub field_order: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether the decoder found CEA-608/708 closed captions in the video.
    pub closed_captions: bool,
    /// The stream's index in the file.
    pub index: u32,
    /// Its PID, in a transport stream.
    pub pid: Option<u16>,
    /// Its duration in seconds, from its own timestamps (a transport stream), its sample
    /// tables (MP4) or its fragments' samples (fragmented MP4, see [`measure_fragmented`]).
    pub duration: Option<f64>,
}

impl VideoStream {
    /// Whether the stream is coded as interlaced fields.
    pub fn is_interlaced(&self) -> bool {
        matches!(self.field_order.as_str(), "tt" | "bb" | "tb" | "bt")
    }
}

/// An audio stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioStream {
    /// Codec name (`aac`, `mp2`, `ac3`).
    pub codec: String,
    /// The stream's index in the file.
    pub index: u32,
    /// Its PID, in a transport stream.
    pub pid: Option<u16>,
    /// Its duration in seconds, when known (as for [`VideoStream::duration`]).
    pub duration: Option<f64>,
}

/// Why a probe gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ffprobe could not run, timed out or was cancelled.
    #[error(transparent)]
    Run(#[from] RunError),
    /// ffprobe ran and said the file is not media it can read.
    #[error("ffprobe cannot read it as media: {0}")]
    Unreadable(String),
    /// The programme asked for is not in the multiplex.
    #[error("{0}")]
    NoSuchProgramme(String),
}

#[derive(Deserialize)]
struct Json {
    #[serde(default)]
    streams: Vec<JsonStream>,
    #[serde(default)]
    programs: Vec<JsonProgram>,
    #[serde(default)]
    format: Option<JsonFormat>,
}

#[derive(Deserialize)]
struct JsonFormat {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct JsonProgram {
    #[serde(default)]
    program_num: u32,
    #[serde(default)]
    tags: Option<serde_json::Value>,
    #[serde(default)]
    streams: Vec<JsonStreamRef>,
}

#[derive(Deserialize)]
struct JsonStreamRef {
    #[serde(default)]
    index: u32,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    pix_fmt: String,
    #[serde(default)]
    field_order: String,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
    #[serde(default)]
    closed_captions: u8,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    disposition: Option<serde_json::Value>,
}

impl JsonStream {
    fn is_attached_pic(&self) -> bool {
        self.disposition
            .as_ref()
            .and_then(|d| d.get("attached_pic"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            == 1
    }

    fn is_video(&self) -> bool {
        self.codec_type == "video" && !self.is_attached_pic()
    }

    fn pid(&self) -> Option<u16> {
        let id = self.id.as_deref()?;
        u16::from_str_radix(id.strip_prefix("0x")?, 16).ok()
    }

    fn duration(&self) -> Option<f64> {
        self.duration
            .as_deref()
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d > 0.0)
    }
}

/// Runs `ffprobe` on `path`; in a transport stream carrying several programmes, describes the
/// first one with video.
pub async fn probe(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<MediaInfo, ProbeError> {
    probe_programme(ffprobe, path, &Choice::FirstWithVideo, timeout, cancel).await
}

/// Runs `ffprobe` on `path` and describes the programme `choice` picks (see
/// [`MediaInfo::program`]).
pub async fn probe_programme(
    ffprobe: &Path,
    path: &Path,
    choice: &Choice,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<MediaInfo, ProbeError> {
    probe_programme_json(ffprobe, path, choice, timeout, cancel)
        .await
        .map(|(info, _)| info)
}

/// [`probe_programme`], and ffprobe's JSON as it printed it (every stream of the file, and the
/// format), so that other facts (the caption tracks, see [`crate::captions::plan_from_probe`])
/// come from the same run rather than from another ffprobe.
pub async fn probe_programme_json(
    ffprobe: &Path,
    path: &Path,
    choice: &Choice,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(MediaInfo, Vec<u8>), ProbeError> {
    let mut cmd = crate::plumbing::priority::command(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-show_programs",
    ]);
    cmd.args(crate::encoder_args::LOCAL_ONLY);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    if !out.status.success() {
        let why = tail_lines(&out.stderr, 3);
        return Err(ProbeError::Unreadable(if why.is_empty() {
            format!("ffprobe exited with {}", out.status)
        } else {
            why
        }));
    }
    let info = parse(&out.stdout, choice)?;
    Ok((info, out.stdout))
}

fn parse(json: &[u8], choice: &Choice) -> Result<MediaInfo, ProbeError> {
    let parsed: Json = serde_json::from_slice(json)
        .map_err(|e| ProbeError::Unreadable(format!("unexpected ffprobe output: {e}")))?;
    let format = parsed
        .format
        .ok_or_else(|| ProbeError::Unreadable("ffprobe found no container format".into()))?;
    let duration = format
        .duration
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
    let kind_of = |index: u32| parsed.streams.iter().find(|s| s.index == index);
    let programs = parsed
        .programs
        .iter()
        .map(|p| {
            let streams: Vec<u32> = p.streams.iter().map(|s| s.index).collect();
            let count = |f: fn(&JsonStream) -> bool| {
                streams
                    .iter()
                    .filter(|i| kind_of(**i).is_some_and(f))
                    .count()
            };
            Programme {
                number: p.program_num,
                name: p
                    .tags
                    .as_ref()
                    .and_then(|t| t.get("service_name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                video: count(JsonStream::is_video),
                audio: count(|s| s.codec_type == "audio"),
                streams,
            }
        })
        .collect();
    let mut info = MediaInfo {
        format_name: format.format_name,
        duration,
        video: None,
        audio: Vec::new(),
        other_streams: 0,
        programs,
        program: None,
    };
    let programme = choose(&info.programs, choice).map_err(ProbeError::NoSuchProgramme)?;
    info.streams_from(&parsed.streams, programme.as_ref());
    info.program = programme;
    Ok(info)
}

impl MediaInfo {
    /// Fills `video`, `audio` and `other_streams` from `streams`, keeping only those of
    /// `programme` when given.
    fn streams_from(&mut self, streams: &[JsonStream], programme: Option<&Programme>) {
        let wanted = |s: &&JsonStream| programme.is_none_or(|p| p.streams.contains(&s.index));
        self.video = streams
            .iter()
            .filter(wanted)
            .find(|s| s.is_video())
            .map(|s| VideoStream {
                codec: s.codec_name.clone(),
                profile: s.profile.clone(),
                pix_fmt: s.pix_fmt.clone(),
                field_order: s.field_order.clone(),
                width: s.width,
                height: s.height,
                closed_captions: s.closed_captions == 1,
                index: s.index,
                pid: s.pid(),
                duration: s.duration(),
            });
        self.audio = streams
            .iter()
            .filter(wanted)
            .filter(|s| s.codec_type == "audio")
            .map(|s| AudioStream {
                codec: s.codec_name.clone(),
                index: s.index,
                pid: s.pid(),
                duration: s.duration(),
            })
            .collect();
        self.other_streams = streams
            .iter()
            .filter(wanted)
            .filter(|s| !s.is_video() && s.codec_type != "audio")
            .count();
    }
}

/// Which programme of a multiplex is converted, as the configuration asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The first programme with video.
    FirstWithVideo,
    /// The programme with this number.
    Number(u32),
    /// The programme with this service name (any case, surrounding spaces ignored).
    Name(String),
}

/// The programme to convert among `programs`, as `choice` asks: `None` for a file without
/// programmes, or with one and nothing asked (every stream is kept). `Err` names what was asked
/// and what the multiplex carries.
fn choose(programs: &[Programme], choice: &Choice) -> Result<Option<Programme>, String> {
    if programs.is_empty() || (programs.len() == 1 && *choice == Choice::FirstWithVideo) {
        return Ok(None);
    }
    let found = match choice {
        Choice::FirstWithVideo => programs.iter().find(|p| p.video > 0).or(programs.first()),
        Choice::Number(n) => programs.iter().find(|p| p.number == *n),
        Choice::Name(name) => programs
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim())),
    };
    match found {
        Some(p) => Ok(Some(p.clone())),
        None => {
            let wanted = match choice {
                Choice::Number(n) => format!("programme number {n}"),
                Choice::Name(name) => format!("service \"{name}\""),
                Choice::FirstWithVideo => "a programme".into(),
            };
            let carried: Vec<String> = programs.iter().map(|p| p.to_string()).collect();
            Err(format!(
                "{wanted} (watch.program) is not in this transport stream; it carries {}",
                carried.join(", ")
            ))
        }
    }
}

/// How many frames [`has_closed_captions`] decodes: FFmpeg reports captions only once it has
/// decoded pictures that carry them, and decoding a whole recording to ask would be too slow.
pub const CAPTION_PROBE_FRAMES: u32 = 60;

/// Whether the first video frames of `path` carry CEA-608/708 closed captions.
pub async fn has_closed_captions(
    ffprobe: &Path,
    path: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<bool, RunError> {
    has_closed_captions_in(ffprobe, path, "v:0", timeout, cancel).await
}

/// Whether the first frames of the video stream `stream` (an ffprobe stream specifier: `v:0`,
/// or the index of a multiplex programme's video) carry CEA-608/708 closed captions.
pub async fn has_closed_captions_in(
    ffprobe: &Path,
    path: &Path,
    stream: &str,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<bool, RunError> {
    let mut cmd = crate::plumbing::priority::command(ffprobe);
    cmd.args(["-v", "error", "-select_streams", stream, "-count_frames"]);
    cmd.arg("-read_intervals")
        .arg(format!("%+#{CAPTION_PROBE_FRAMES}"));
    cmd.args([
        "-show_entries",
        "stream=closed_captions",
        "-print_format",
        "json",
    ]);
    cmd.args(crate::encoder_args::LOCAL_ONLY);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    let parsed: Result<Json, _> = serde_json::from_slice(&out.stdout);
    Ok(parsed.is_ok_and(|j| j.streams.iter().any(|s| s.closed_captions == 1)))
}

/// Whether `path` is a fragmented MP4 (movie fragments, `moof`, after a `moov` that announces
/// them with `mvex`): its header's durations are claims (a live capture's header may announce
/// the whole programme), so [`measure_fragmented`] measures what its fragments hold.
pub fn is_fragmented_mp4(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = 0u64;
    // Top-level boxes; inside `moov`, its children.
    let mut end = len;
    loop {
        if pos + 8 > end {
            if end < len {
                // Past the end of `moov`: back to the top level.
                (pos, end) = (end, len);
                continue;
            }
            return Ok(false);
        }
        file.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8])?;
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, header_len) = match size32 {
            1 => {
                file.read_exact(&mut header[8..16])?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&header[8..16]);
                (u64::from_be_bytes(b), 16)
            }
            0 => (end - pos, 8),
            s => (s, 8),
        };
        if size < header_len {
            return Ok(false);
        }
        match &kind {
            b"moof" | b"mvex" => return Ok(true),
            b"moov" => {
                // Look inside: `mvex` says fragments follow.
                end = pos + size;
                pos += header_len;
                continue;
            }
            _ => {}
        }
        pos += size;
    }
}

/// Measures the durations of `info`'s video and audio streams from the packets of `path`
/// (first timestamp to the end of the last packet), for a fragmented MP4 whose header claims
/// what its fragments may not hold. Reads every packet, without decoding.
pub async fn measure_fragmented(
    ffprobe: &Path,
    path: &Path,
    info: &mut MediaInfo,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let mut cmd = crate::plumbing::priority::command(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-show_entries",
        "packet=stream_index,pts_time,duration_time",
        "-of",
        "csv=p=0",
    ]);
    cmd.args(crate::encoder_args::LOCAL_ONLY);
    cmd.arg(input_arg(path));
    let out = run_captured(&mut cmd, timeout, cancel).await?;
    let spans = packet_spans(&out.stdout);
    let span_of = |index: u32| spans.iter().find(|(i, ..)| *i == index).map(|s| s.2 - s.1);
    if let Some(video) = info.video.as_mut() {
        if let Some(d) = span_of(video.index) {
            video.duration = Some(d);
        }
    }
    for audio in &mut info.audio {
        if let Some(d) = span_of(audio.index) {
            audio.duration = Some(d);
        }
    }
    Ok(())
}

/// Per stream index, the first timestamp and the end of the last packet, from ffprobe's
/// `stream_index,pts_time,duration_time` lines (a packet without a duration lasts as long as
/// the stream's previous one).
fn packet_spans(csv: &[u8]) -> Vec<(u32, f64, f64)> {
    let mut spans: Vec<(u32, f64, f64)> = Vec::new();
    let mut last_duration: Vec<(u32, f64)> = Vec::new();
    for line in String::from_utf8_lossy(csv).lines() {
        let mut fields = line.split(',');
        let (Some(index), Some(pts)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(index), Ok(pts)) = (index.trim().parse::<u32>(), pts.trim().parse::<f64>()) else {
            continue;
        };
        let known = fields.next().and_then(|d| d.trim().parse::<f64>().ok());
        let duration = match (known, last_duration.iter_mut().find(|(i, _)| *i == index)) {
            (Some(d), Some(last)) => {
                last.1 = d;
                d
            }
            (Some(d), None) => {
                last_duration.push((index, d));
                d
            }
            (None, Some(last)) => last.1,
            (None, None) => 0.0,
        };
        let end = pts + duration;
        match spans.iter_mut().find(|(i, ..)| *i == index) {
            Some(span) => {
                span.1 = span.1.min(pts);
                span.2 = span.2.max(end);
            }
            None => spans.push((index, pts, end)),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_json() {
        let json =
            br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"mpeg2video","profile":"Main",
            "pix_fmt":"yuv420p","field_order":"tt","width":320,"height":240,"duration":"3.003000"},
            {"index":1,"codec_type":"audio","codec_name":"mp2"},
            {"index":2,"codec_type":"data","codec_name":"scte_35","duration":"3.9"}],
            "format":{"format_name":"mpegts","duration":"3.913"}}"#;
        let info = parse(json, &Choice::FirstWithVideo).unwrap();
        assert_eq!(info.format_name, "mpegts");
        assert!((info.duration - 3.913).abs() < 1e-9);
        assert!(info.video.as_ref().unwrap().is_interlaced());
        assert_eq!(info.audio.len(), 1);
        assert_eq!(info.other_streams, 1);
        assert!(
            (info.video_secs() - 3.003).abs() < 1e-9,
            "the video's own duration"
        );
        assert_eq!(info.audio_secs(), None);
    }

    const MUX: &[u8] = br#"{"programs":[
        {"program_num":101,"tags":{"service_name":"Radio One"},"streams":[{"index":0}]},
        {"program_num":202,"tags":{"service_name":"News"},"streams":[{"index":1},{"index":2}]},
        {"program_num":303,"tags":{"service_name":" Sport Two "},"streams":[{"index":3},{"index":4},{"index":5}]}],
        "streams":[{"index":0,"codec_type":"audio","codec_name":"mp2","id":"0x100"},
        {"index":1,"codec_type":"video","codec_name":"mpeg2video","id":"0x200","width":720},
        {"index":2,"codec_type":"audio","codec_name":"mp2","id":"0x201"},
        {"index":3,"codec_type":"video","codec_name":"h264","id":"0x300","width":1280},
        {"index":4,"codec_type":"audio","codec_name":"ac3","id":"0x301"},
        {"index":5,"codec_type":"audio","codec_name":"aac","id":"0x302"}],
        "format":{"format_name":"mpegts","duration":"72000.5"}}"#;

    #[test]
    fn one_programme_of_a_multiplex() {
        let first = parse(MUX, &Choice::FirstWithVideo).unwrap();
        assert_eq!(first.programs.len(), 3);
        assert_eq!(
            first.program.as_ref().unwrap().number,
            202,
            "the first with video"
        );
        assert_eq!(first.video.as_ref().unwrap().pid, Some(0x200));
        assert_eq!(first.audio.len(), 1);
        let sport = parse(MUX, &Choice::Name("sport two".into())).unwrap();
        assert_eq!(sport.video.as_ref().unwrap().width, 1280);
        let codecs: Vec<&str> = sport.audio.iter().map(|a| a.codec.as_str()).collect();
        assert_eq!(codecs, ["ac3", "aac"], "that programme's audio only");
        let radio = parse(MUX, &Choice::Number(101)).unwrap();
        assert!(radio.video.is_none());
        assert_eq!(radio.audio.len(), 1);
        let Err(ProbeError::NoSuchProgramme(why)) = parse(MUX, &Choice::Number(7)) else {
            panic!("no programme 7");
        };
        assert!(why.contains("programme number 7"), "{why}");
        assert!(
            why.contains("303 \"Sport Two\" (1 video, 2 audio)"),
            "{why}"
        );
    }

    #[test]
    fn packet_spans_per_stream() {
        let csv =
            b"0,1.400000,0.033367\n1,1.390000,0.021333\n0,1.433367,0.033367\n0,1.466733,N/A\n";
        let spans = packet_spans(csv);
        assert_eq!(spans.len(), 2);
        assert!(
            (spans[0].2 - spans[0].1 - 0.100100).abs() < 1e-6,
            "{spans:?}"
        );
    }

    #[test]
    fn fragmented_mp4_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let boxed = |kind: &[u8; 4], body: &[u8]| {
            let mut v = ((8 + body.len()) as u32).to_be_bytes().to_vec();
            v.extend_from_slice(kind);
            v.extend_from_slice(body);
            v
        };
        let plain = [
            boxed(b"ftyp", &[0; 8]),
            boxed(b"moov", &boxed(b"mvhd", &[0; 8])),
            boxed(b"mdat", &[0; 16]),
        ]
        .concat();
        let p = dir.path().join("plain.mp4");
        std::fs::write(&p, plain).unwrap();
        assert!(!is_fragmented_mp4(&p).unwrap());
        let moov = [
            boxed(b"mvhd", &[0; 8]),
            boxed(b"mvex", &boxed(b"trex", &[0; 8])),
        ]
        .concat();
        let frag = [
            boxed(b"ftyp", &[0; 8]),
            boxed(b"moov", &moov),
            boxed(b"moof", &[0; 8]),
        ]
        .concat();
        std::fs::write(&p, frag).unwrap();
        assert!(is_fragmented_mp4(&p).unwrap());
    }
}
