//! Captions: sidecar caption files (`.srt`, `.vtt`, `.bin`), the captions kept inside the MP4,
//! and the check that the MP4's captions are the source's, cue for cue.
//!
//! # Theory of operation
//! **Where the captions are.** Before the transcode, [`read::tracks`] lists the source's caption
//! tracks: broadcast recordings carry CEA-608 inside the video (ATSC A/53), which libx264 keeps
//! (`-a53cc`); an MP4 may carry them in a separate `c608` track instead, which
//! [`output_arguments`] copies into the output. FFmpeg 5.1's `mp4` muxer cannot write a `c608`
//! track ("codec not currently supported in container"); its QuickTime muxer (`mov`) can, so such
//! a source's output is written by that muxer (same `.mp4` name, brand `mp42`, `moov` first,
//! H.264 and AAC, plus the caption track). FFmpeg 5.1 reads a `c608` track's `cdat` (field 1,
//! CC1) and writes only that: CC3 in a `cdt2` atom is not carried. A CEA-708 (`c708`) track, which FFmpeg 5.1 cannot read, cannot be
//! kept: the job says so with a warning.
//!
//! **Every frame keeps its captions.** Each 608 byte pair travels with one video frame, so a
//! frame dropped or duplicated on the way loses or repeats two characters. FFmpeg's default for
//! MP4 output is a constant frame rate at the rate it guesses for the source: wherever the
//! source's frames come faster (a stretch at 59.94 frames/s in a 29.97 recording, field pictures
//! with their own timestamps) it drops frames, and garbles the captions ("WE ARE LOSING TIME
//! FROM QUESTION" became "WEREOSG MEROQUTI"). [`output_arguments`] therefore passes every frame
//! with its own timestamp (`-fps_mode:v vfr`, and `-enc_time_base:v -1` so that frames closer
//! together than the guessed rate keep distinct timestamps).
//!
//! **The check.** Beside the transcode, [`read_source`] reads the source's caption bytes, frame
//! by frame, and decodes CC1 and CC3 ([`cc608`]). A transport stream with MPEG-2 or H.264 video
//! (the broadcast case) is read without decoding a picture ([`from_ts`]: the PES timestamps and
//! the A/53 bytes of each picture, in presentation order); anything else, or a transport stream
//! that reader gives way on (damage, field pictures, another caption format...), or one in which
//! it finds no caption bytes while the first frames' probe saw some, is read through FFmpeg's
//! decoder (ffprobe, [`read`]). A transport stream whose first pictures carry no captions is
//! still read to its end the same way, since recordings often start captioning late (a bumper,
//! a break): captions found there are checked and extracted like any others. After the transcode, [`verify_output`] reads the output's from
//! its H.264 bitstream (the SEI of each access unit, without decoding the pictures): in process
//! from the MP4's samples ([`from_mp4`]), or, for a file that reader refuses, from FFmpeg's
//! stream copy and ffprobe's packet times ([`read::h264_frames`]); and compares the cues: same
//! texts in the same order, times within the duration tolerance. A mismatch against a reading
//! made without decoding is checked again against FFmpeg's decoder before it counts. A mismatch
//! fails verification with both texts in the error, so a garbled MP4 is never published.
//!
//! **Sidecars.** The tool is chosen once per job: CCExtractor when configured or found (`auto`),
//! FFmpeg otherwise; `.bin` needs CCExtractor (start-up validation guarantees one). FFmpeg runs
//! once for all of its formats, reading CC1 (`-data_field first`), beside the transcode: when
//! the source's caption bytes were read without decoding, from those bytes written as an SCC
//! file ([`scc`], times to the millisecond as FFmpeg's own extraction gives them), so the
//! video is not decoded a second time; otherwise from the source through the lavfi
//! `movie=...[out0+subcc]` source; a transport stream in which that reading found no caption
//! bytes at all gets no FFmpeg run. CCExtractor runs once per format,
//! after verification, on the source when it is MPEG-TS/PS and otherwise on an MPEG-TS stream
//! copy of the verified MP4's video ([`ccextractor`]). Captions in a `c608` track are extracted
//! by FFmpeg from that track, and their `.bin` is written by the agent ([`rcwt`]). Every run is a
//! supervised child (own process group, stall timeout, killed and reaped on cancel), and each
//! writes to a hidden temporary name that the job publishes only when every requested output is
//! complete. A failed run is retried with exponential backoff and jitter.
//!
//! **Never "no captions" when there are some.** An extractor that finds nothing is believed only
//! when the source's own CC1 decodes to no cue; otherwise it is a caption failure, retried, then
//! the job fails as any caption failure does (and the failure policy applies). The reverse (the
//! check reads nothing, the extractor finds captions) is fine.

pub mod cc608;
pub mod ccextractor;
pub mod from_mp4;
pub mod from_ts;
pub mod rcwt;
pub mod read;
pub mod scan;
pub mod scc;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use h264_config::agent::{CaptionTool, Captions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::cc608::{CcFrame, Cue, Field};
use self::read::{Carrier, Tracks};
use crate::plumbing::ffarg::{input_arg, lavfi_escape};
use crate::publish::temp_path;
use crate::transcode::TranscodeError;

/// A sidecar file of a job: where it is written, and where it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// `srt`, `vtt` or `bin`.
    pub format: String,
    /// The hidden temporary file.
    pub temp: PathBuf,
    /// The final name beside the MP4.
    pub path: PathBuf,
}

/// The sidecars of `output` for the configured formats.
pub fn sidecars(output: &Path, formats: &[String]) -> Vec<Sidecar> {
    formats
        .iter()
        .map(|format| {
            let path = output.with_extension(format);
            Sidecar {
                format: format.clone(),
                temp: temp_path(&path),
                path,
            }
        })
        .collect()
}

/// What the caption stage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No sidecars were asked for.
    NotRequested,
    /// The recording has no captions; `sidecars` holds the empty ones written on request.
    NoCaptions {
        /// Empty sidecars to publish (only with `write_empty`).
        sidecars: Vec<Sidecar>,
    },
    /// Captions were extracted into every sidecar.
    Extracted {
        /// What extracted them: `ffmpeg`, `ccextractor`, or `c608 track` (FFmpeg and the
        /// agent's own RCWT writer, from a separate caption track).
        tool: &'static str,
        /// The sidecars to publish.
        sidecars: Vec<Sidecar>,
    },
}

impl Outcome {
    /// What the journal records: `not requested`, `none`, or the formats written.
    pub fn summary(&self) -> String {
        match self {
            Outcome::NotRequested => "not requested".into(),
            Outcome::NoCaptions { .. } => "none".into(),
            Outcome::Extracted { sidecars, tool } => {
                let formats: Vec<&str> = sidecars.iter().map(|s| s.format.as_str()).collect();
                format!("{} ({tool})", formats.join(","))
            }
        }
    }

    /// The sidecars to publish.
    pub fn to_publish(&self) -> &[Sidecar] {
        match self {
            Outcome::NotRequested => &[],
            Outcome::NoCaptions { sidecars } | Outcome::Extracted { sidecars, .. } => sidecars,
        }
    }
}

/// Why the caption stage failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    /// The job was cancelled.
    #[error("the caption stage was cancelled")]
    Cancelled,
    /// The extractor cannot work with these settings (not worth a retry).
    #[error("{0}")]
    Permanent(String),
    /// Every attempt failed.
    #[error("{message} (gave up after {attempts} caption attempt(s))")]
    Exhausted {
        /// The last failure.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// One attempt's failure.
enum Failed {
    Cancelled,
    Permanent(String),
    Transient(String),
}

/// What the job learnt about the source's captions, beside the transcode.
#[derive(Debug, Clone, Default)]
pub struct SourceCaptions {
    /// Where they were read from; `None` when the source shows no caption data at all (the
    /// first frames carry no A/53 data and there is no caption track).
    pub carrier: Option<Carrier>,
    /// Every frame with 608 caption bytes.
    pub frames: Vec<CcFrame>,
    /// The CC1 cues (field 1).
    pub cc1: Vec<Cue>,
    /// The CC3 cues (field 2); always empty for a `c608` track, which FFmpeg reads as field 1.
    pub cc3: Vec<Cue>,
    /// When the frames were read from the transport stream without decoding ([`from_ts`]):
    /// the time of the first picture shown, on the frames' clock, which is zero in FFmpeg's
    /// caption files. `None` when FFmpeg's decoder read them.
    pub first_picture: Option<f64>,
    /// The source, when the frames were read without decoding: read again through FFmpeg's
    /// decoder before an output is called garbled ([`verify_output`]).
    pub recheck: Option<Recheck>,
    /// The whole transport stream was read without decoding and no picture carries caption
    /// bytes: FFmpeg's decoder would find none either.
    pub no_caption_bytes: bool,
}

/// Where to read a source's captions again through FFmpeg's decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Recheck {
    /// The source recording.
    pub source: PathBuf,
    /// Its start time, in seconds.
    pub start: f64,
}

impl SourceCaptions {
    /// The cues of `field`.
    pub fn cues(&self, field: Field) -> &[Cue] {
        match field {
            Field::One => &self.cc1,
            Field::Two => &self.cc3,
        }
    }

    /// Whether the source has caption text on CC1 or CC3.
    pub fn any(&self) -> bool {
        !self.cc1.is_empty() || !self.cc3.is_empty()
    }

    /// For messages: the first CC1 cue, quoted with its time.
    fn first_cc1(&self) -> String {
        self.cc1
            .first()
            .map(|c| format!("{:?} at {:.2}s", c.text, c.time))
            .unwrap_or_default()
    }
}

/// The caption facts a job needs before its transcode starts: the source's caption tracks and
/// its start time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The source's caption tracks.
    pub tracks: Tracks,
    /// The source's start time (its first timestamp), in seconds.
    pub start: f64,
}

/// Lists the source's caption tracks (one quick ffprobe).
pub async fn plan(
    ffprobe: &Path,
    source: &Path,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Plan, crate::plumbing::child::RunError> {
    let (tracks, start) = read::tracks(ffprobe, source, timeout, cancel).await?;
    Ok(Plan { tracks, start })
}

/// The caption plan from the JSON of an ffprobe run that showed every stream and the format
/// (the readiness probe's, [`crate::probe::probe_programme_json`]): no ffprobe of its own.
pub fn plan_from_probe(json: &[u8]) -> Plan {
    let (tracks, start) = read::parse_tracks(json);
    Plan { tracks, start }
}

/// FFmpeg's output arguments, `args` (as [`crate::transcode::arguments`] makes them), with what
/// keeps the captions: every frame passed with its own timestamp when encoding, and a `c608`
/// track copied, written by the QuickTime muxer (see the module documentation).
///
/// With `embed` false (`captions.embed`) the MP4 carries no captions: libx264 leaves the A/53
/// data out (`-a53cc 0`), a stream copy drops the video's SEI units (`filter_units`, SEI being
/// NAL unit type 6, where A/53 captions travel; the MP4 needs none of them), and a `c608` track
/// is not mapped.
pub fn output_arguments(
    mut args: Vec<OsString>,
    plan: &Plan,
    encode: bool,
    embed: bool,
) -> Vec<OsString> {
    let Some(format_at) = args.iter().rposition(|a| a == "-f") else {
        return args;
    };
    let mut extra: Vec<OsString> = Vec::new();
    if encode {
        extra.extend(["-fps_mode:v", "vfr", "-enc_time_base:v", "-1"].map(OsString::from));
    }
    if !embed {
        let drop = if encode {
            ["-a53cc", "0"]
        } else {
            ["-bsf:v", "filter_units=remove_types=6"]
        };
        extra.extend(drop.map(OsString::from));
        args.splice(format_at..format_at, extra);
        return args;
    }
    if let Some(index) = plan.tracks.c608 {
        extra.extend([
            "-map".into(),
            format!("0:{index}").into(),
            "-c:s".into(),
            "copy".into(),
        ]);
        // An MP4 brand, so that players that sniff it take the file as MP4.
        extra.extend(["-brand", "mp42"].map(OsString::from));
        if let Some(format) = args.get_mut(format_at + 1) {
            *format = "mov".into();
        }
    }
    args.splice(format_at..format_at, extra);
    args
}

/// A source caption read (beside the transcode, or on first demand), which several stages
/// await.
#[derive(Debug, Clone)]
pub struct SourceReading {
    result: watch::Receiver<Option<Result<Arc<SourceCaptions>, String>>>,
    /// Starts a reading made to wait for its first [`SourceReading::get`].
    go: Arc<tokio::sync::Notify>,
}

impl SourceReading {
    /// A reading already done.
    pub fn ready(captions: SourceCaptions) -> SourceReading {
        SourceReading {
            result: watch::channel(Some(Ok(Arc::new(captions)))).1,
            go: Arc::default(),
        }
    }

    /// The result, if the reading is over (this does not start a waiting one).
    pub fn peek(&self) -> Option<Arc<SourceCaptions>> {
        match &*self.result.borrow() {
            Some(Ok(captions)) => Some(captions.clone()),
            _ => None,
        }
    }

    /// Waits for the result (starting the reading if it waits for a demand); an error says why
    /// the source's captions could not be read.
    pub async fn get(&mut self) -> Result<Arc<SourceCaptions>, String> {
        self.go.notify_one();
        match self.result.wait_for(Option::is_some).await {
            Ok(value) => value.clone().unwrap_or_else(|| Err("no result".into())),
            Err(_) => Err("the source caption check was stopped".into()),
        }
    }
}

/// The verdict of a caption probe run elsewhere (the job's deep check): whether the video's
/// first frames carry captions; `None` until it is known. A sender dropped without a verdict
/// (the probe failed) makes the reading probe for itself.
pub type Presence = watch::Receiver<Option<bool>>;

/// Starts [`read_source`] in a task: at once when `eager`, else at the first
/// [`SourceReading::get`]. With `presence`, the caption probe's verdict comes from there rather
/// than from another probe of the source. The reading ends (and its ffprobe is killed) when the
/// returned handle is dropped.
#[allow(clippy::too_many_arguments)]
pub fn read_source_beside(
    ffprobe: PathBuf,
    source: PathBuf,
    plan: Plan,
    timeout: Duration,
    limit: Duration,
    eager: bool,
    presence: Option<Presence>,
    cancel: CancellationToken,
) -> (SourceReading, tokio_util::task::AbortOnDropHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let go = Arc::new(tokio::sync::Notify::new());
    let demand = go.clone();
    let task = async move {
        if !eager {
            demand.notified().await;
        }
        let known = match presence {
            Some(mut verdict) => verdict
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|v| *v),
            None => None,
        };
        let result =
            read_source_known(&ffprobe, &source, &plan, known, timeout, limit, &cancel).await;
        let _ = tx.send(Some(result.map(Arc::new).map_err(|e| e.to_string())));
    };
    // The reading runs at the priority of the caller's children (shadow work's stays low).
    let task = crate::plumbing::priority::within(crate::plumbing::priority::current(), task);
    let handle = tokio::spawn(tracing::Instrument::in_current_span(task));
    (
        SourceReading { result: rx, go },
        tokio_util::task::AbortOnDropHandle::new(handle),
    )
}

/// Why a caption reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// ffprobe could not run or failed.
    #[error(transparent)]
    Read(#[from] read::ReadError),
    /// The quick probe failed.
    #[error(transparent)]
    Run(#[from] crate::plumbing::child::RunError),
}

/// Reads and decodes the source's captions: from its `c608` track when it has one, else from
/// the video when its first frames carry A/53 caption data, else nothing.
pub async fn read_source(
    ffprobe: &Path,
    source: &Path,
    plan: &Plan,
    timeout: Duration,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<SourceCaptions, ReadFailure> {
    read_source_known(ffprobe, source, plan, None, timeout, limit, cancel).await
}

/// [`read_source`], with the caption probe's verdict already known (`video_captions`), or
/// probed here when `None`.
pub async fn read_source_known(
    ffprobe: &Path,
    source: &Path,
    plan: &Plan,
    video_captions: Option<bool>,
    timeout: Duration,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<SourceCaptions, ReadFailure> {
    let mut captions = SourceCaptions::default();
    let in_video = |known: Option<bool>| async move {
        match known {
            Some(verdict) => Ok::<bool, ReadFailure>(verdict),
            None => Ok(crate::probe::has_closed_captions(ffprobe, source, timeout, cancel).await?),
        }
    };
    let carrier = match plan.tracks.c608 {
        Some(index) => Carrier::Track(index),
        None if in_video(video_captions).await? => Carrier::Video,
        None => return Ok(late_captions(source, plan.start, limit, cancel).await),
    };
    captions.frames = match carrier {
        Carrier::Video => {
            let fast = read_without_decoding(source, plan.start, limit, cancel).await;
            match fast {
                Some(found) => {
                    captions.first_picture = found.first_picture;
                    captions.recheck = Some(Recheck {
                        source: source.to_path_buf(),
                        start: plan.start,
                    });
                    found.frames
                }
                None => read::frames(ffprobe, source, &carrier, plan.start, limit, cancel).await?,
            }
        }
        Carrier::Track(_) => {
            read::frames(ffprobe, source, &carrier, plan.start, limit, cancel).await?
        }
    };
    captions.cc1 = cc608::decode(&captions.frames, Field::One);
    if carrier == Carrier::Video {
        captions.cc3 = cc608::decode(&captions.frames, Field::Two);
    }
    captions.carrier = Some(carrier);
    Ok(captions)
}

/// The captions of a source whose first pictures carry none: a recording may start captioning
/// late (a bumper, a break, black before the programme). A transport stream is read to its end
/// without decoding ([`from_ts`]); its caption bytes, wherever they start, are then checked in
/// the output and written to the sidecars as those of any captioned recording, and none at all
/// is said so (`no_caption_bytes`). Anything else, or a stream that reader gives way on, is
/// taken as having no captions, as the first pictures said.
async fn late_captions(
    source: &Path,
    start: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> SourceCaptions {
    if !matches!(crate::ts::layout_of(source), Ok(Some(_))) {
        return SourceCaptions::default();
    }
    match read_ts(source, start, limit, cancel).await {
        Ok(found) if found.frames.is_empty() => SourceCaptions {
            no_caption_bytes: true,
            ..SourceCaptions::default()
        },
        Ok(found) => {
            let cc1 = cc608::decode(&found.frames, Field::One);
            let cc3 = cc608::decode(&found.frames, Field::Two);
            SourceCaptions {
                carrier: Some(Carrier::Video),
                cc1,
                cc3,
                frames: found.frames,
                first_picture: found.first_picture,
                recheck: Some(Recheck {
                    source: source.to_path_buf(),
                    start,
                }),
                no_caption_bytes: false,
            }
        }
        Err(why) => {
            tracing::debug!(
                source = %source.display(),
                "captions that start after the first pictures are not looked for: the \
                 transport stream reader gave way ({why})"
            );
            SourceCaptions::default()
        }
    }
}

/// The caption frames of the video of `source` read without decoding ([`from_ts`]), on a
/// blocking thread; `None` (and the reason in the log) when that reader gives way, finds no
/// caption bytes (the caller's probe saw some: FFmpeg's decoder reads them), is cancelled or
/// outlasts `limit`.
async fn read_without_decoding(
    source: &Path,
    start: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Option<from_ts::Found> {
    let why = match read_ts(source, start, limit, cancel).await {
        Ok(found) if !found.frames.is_empty() => return Some(found),
        Ok(_) => {
            "it found no caption bytes, though the video's first frames carry captions".to_string()
        }
        Err(why) => why,
    };
    tracing::debug!(
        source = %source.display(),
        "the source's captions are read through FFmpeg's decoder, not from the transport \
         stream: {why}"
    );
    None
}

/// [`from_ts::read`] on a blocking thread, stopped by `cancel` or after `limit`; `Err` says
/// why it gave way.
async fn read_ts(
    source: &Path,
    start: f64,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<from_ts::Found, String> {
    let path = source.to_path_buf();
    match read_in_process(limit, cancel, move |stop| from_ts::read(&path, start, stop)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(from_ts::GiveWay(why))) => Err(why),
        Err(e) => Err(e),
    }
}

/// Runs one of the in-process readers on a blocking thread; the `stop` it is handed says
/// true once `cancel` is cancelled or `limit` has passed. `Err` when the thread failed.
async fn read_in_process<T: Send + 'static>(
    limit: Duration,
    cancel: &CancellationToken,
    read: impl FnOnce(&dyn Fn() -> bool) -> T + Send + 'static,
) -> Result<T, String> {
    let stop = cancel.clone();
    let deadline = std::time::Instant::now() + limit;
    tokio::task::spawn_blocking(move || {
        read(&|| stop.is_cancelled() || std::time::Instant::now() > deadline)
    })
    .await
    .map_err(|e| format!("the reader failed: {e}"))
}

/// Captions of the source the job cannot keep, each with the reason (warnings for the job's
/// log, trace and stats): unreadable caption tracks, and, when the source's captions have been
/// read (`source`), CC3-only captions while sidecars (which carry CC1) are asked for.
pub fn warnings(cfg: &Captions, plan: &Plan, source: Option<&SourceCaptions>) -> Vec<String> {
    let mut warnings: Vec<String> = plan
        .tracks
        .unreadable
        .iter()
        .map(|w| format!("captions not kept: {w}"))
        .collect();
    let Some(source) = source else {
        return warnings;
    };
    if !cfg.formats.is_empty() && source.cc1.is_empty() && !source.cc3.is_empty() {
        warnings.push(format!(
            "captions not in the sidecars: the source's captions are on CC3 only ({} cue(s), \
             the first {:?}); sidecars carry CC1 (the MP4 keeps both)",
            source.cc3.len(),
            source.cc3[0].text
        ));
    }
    warnings
}

/// Whether the output's captions are compared with the source's: always for a caption track
/// (its packets are read without decoding), and for captions in the video when the video is
/// re-encoded. A stream copy (`remux`) carries the video's caption bytes unchanged, frame for
/// frame, so decoding both files would cost time and find nothing. Never when the MP4 is not
/// to carry captions (`embed` false, [`output_arguments`]).
pub fn checks_output(plan: &Plan, encode: bool, embed: bool) -> bool {
    embed && (encode || plan.tracks.c608.is_some())
}

/// How long a caption reading of a recording of `media_secs` may take: four times its duration
/// (decoding is many times faster than real time), plus `slack`.
pub fn read_limit(media_secs: f64, slack: Duration) -> Duration {
    slack + Duration::from_secs_f64(media_secs.max(0.0) * 4.0)
}

/// Compares the output's captions with the source's: CC1, and CC3 when the source has it.
/// `Ok(())` also when the source has no caption text. `Err` quotes both texts.
#[allow(clippy::too_many_arguments)]
pub async fn verify_output(
    ffmpeg: &Path,
    ffprobe: &Path,
    output: &Path,
    source: &SourceCaptions,
    tolerance: f64,
    timeout: Duration,
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<(), VerifyFailure> {
    if !source.any() {
        return Ok(());
    }
    // The output is H.264 (verified before): its caption bytes are read from the bitstream,
    // in process when the reader takes the file, else through FFmpeg.
    let in_video = !matches!(source.carrier, Some(Carrier::Track(_)));
    let read_here = if in_video {
        output_frames_in_process(output, limit, cancel).await
    } else {
        None
    };
    let frames = match read_here {
        Some(frames) => frames,
        None => {
            let (tracks, start) = read::tracks(ffprobe, output, timeout, cancel).await?;
            match (in_video, tracks.c608) {
                (false, Some(index)) => {
                    read::frames(
                        ffprobe,
                        output,
                        &Carrier::Track(index),
                        start,
                        limit,
                        cancel,
                    )
                    .await?
                }
                (false, None) => {
                    return Err(VerifyFailure::Mismatch(
                        "the source's c608 caption track is not in the output".into(),
                    ))
                }
                (true, _) => {
                    read::h264_frames(ffmpeg, ffprobe, output, start, limit, cancel).await?
                }
            }
        }
    };
    let Err(mismatch) = compare_cues(source, &frames, tolerance) else {
        return Ok(());
    };
    // The source was read without decoding: FFmpeg's decoder has the last word.
    let Some(recheck) = &source.recheck else {
        return Err(VerifyFailure::Mismatch(mismatch));
    };
    tracing::warn!(
        source = %recheck.source.display(),
        "the source's captions read from the transport stream differ from the output's \
         ({mismatch}); reading them again through FFmpeg's decoder"
    );
    let decoded = read::frames(
        ffprobe,
        &recheck.source,
        &Carrier::Video,
        recheck.start,
        limit,
        cancel,
    )
    .await?;
    let again = SourceCaptions {
        cc1: cc608::decode(&decoded, Field::One),
        cc3: cc608::decode(&decoded, Field::Two),
        frames: decoded,
        carrier: source.carrier.clone(),
        first_picture: None,
        recheck: None,
        no_caption_bytes: false,
    };
    compare_cues(&again, &frames, tolerance).map_err(VerifyFailure::Mismatch)
}

/// The caption frames of the H.264 MP4 `output` read in process ([`from_mp4`]) on a blocking
/// thread; `None` (the reason logged) when that reader refuses the file, is cancelled or
/// outlasts `limit`.
async fn output_frames_in_process(
    output: &Path,
    limit: Duration,
    cancel: &CancellationToken,
) -> Option<Vec<CcFrame>> {
    let path = output.to_path_buf();
    let why = match read_in_process(limit, cancel, move |stop| from_mp4::frames(&path, stop)).await
    {
        Ok(Ok(frames)) => return Some(frames),
        Ok(Err(refused)) => refused.0,
        Err(e) => e,
    };
    tracing::debug!(
        output = %output.display(),
        "the output's captions are read through FFmpeg: the MP4 reader gave way ({why})"
    );
    None
}

/// Compares the cues of `frames` (an output's) with the source's: CC1, and CC3 when the source
/// has it.
fn compare_cues(source: &SourceCaptions, frames: &[CcFrame], tolerance: f64) -> Result<(), String> {
    for field in [Field::One, Field::Two] {
        let want = source.cues(field);
        if want.is_empty() {
            continue;
        }
        let got = cc608::decode(frames, field);
        cc608::compare(field.channel(), want, &got, tolerance).map_err(|m| m.0)?;
    }
    Ok(())
}

/// Why [`verify_output`] did not pass.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// The output's captions are not the source's.
    #[error("{0}")]
    Mismatch(String),
    /// The output's captions could not be read.
    #[error("cannot read the output's captions: {0}")]
    Read(#[from] read::ReadError),
    /// ffprobe could not run.
    #[error("cannot read the output's captions: {0}")]
    Run(#[from] crate::plumbing::child::RunError),
}

/// What the caption stage works on.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// FFmpeg.
    pub ffmpeg: &'a Path,
    /// The source recording.
    pub source: &'a Path,
    /// Its container, as ffprobe names it.
    pub format_name: &'a str,
    /// Its caption tracks.
    pub plan: &'a Plan,
    /// The final name of the MP4.
    pub output: &'a Path,
    /// The verified MP4 under its temporary name; `None` while the transcode runs (FFmpeg
    /// reads the source, and needs none).
    pub mp4: Option<&'a Path>,
}

/// Which extractor a job uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tool {
    /// FFmpeg, from the source's video.
    Ffmpeg,
    /// CCExtractor at this path.
    CcExtractor(PathBuf),
    /// FFmpeg from this caption track, and the agent's RCWT writer for `.bin`.
    Track(u32),
}

impl Tool {
    fn name(&self) -> &'static str {
        match self {
            Tool::Ffmpeg => "ffmpeg",
            Tool::CcExtractor(_) => "ccextractor",
            Tool::Track(_) => "c608 track",
        }
    }
}

fn tool(cfg: &Captions, plan: &Plan) -> Option<Tool> {
    if let Some(index) = plan.tracks.c608 {
        return Some(Tool::Track(index));
    }
    match cfg.tool {
        CaptionTool::Ffmpeg => Some(Tool::Ffmpeg),
        CaptionTool::Auto => Some(
            cfg.find_ccextractor()
                .map_or(Tool::Ffmpeg, Tool::CcExtractor),
        ),
        CaptionTool::Ccextractor => cfg.find_ccextractor().map(Tool::CcExtractor),
    }
}

/// Whether the caption stage reads only the source, so it can run beside the transcode (FFmpeg,
/// or a caption track), rather than after verification (CCExtractor).
pub fn runs_beside_transcode(cfg: &Captions, plan: &Plan) -> bool {
    !cfg.formats.is_empty() && matches!(tool(cfg, plan), Some(Tool::Ffmpeg | Tool::Track(_)))
}

/// Runs the caption stage for `job`. The extractor always runs: a recording may start
/// captioning late, so whether there are captions is the extractor's finding, checked against
/// the source's own CC1 (`source`, awaited only when the extractor finds none).
pub async fn extract(
    cfg: &Captions,
    job: Job<'_>,
    source: &mut SourceReading,
    cancel: &CancellationToken,
) -> Result<Outcome, CaptionError> {
    if cfg.formats.is_empty() {
        return Ok(Outcome::NotRequested);
    }
    let sidecars = sidecars(job.output, &cfg.formats);
    let Some(tool) = tool(cfg, job.plan) else {
        return Err(CaptionError::Permanent(
            "tool = \"ccextractor\" but CCExtractor is not found".into(),
        ));
    };
    if tool == Tool::Ffmpeg && sidecars.iter().any(|s| s.format == "bin") {
        return Err(CaptionError::Permanent(
            "the .bin caption format needs CCExtractor, which is not found".into(),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        remove_temps(&sidecars);
        let result = match &tool {
            Tool::CcExtractor(program) => {
                with_ccextractor(cfg, program, job, &sidecars, cancel).await
            }
            Tool::Ffmpeg => with_ffmpeg_video(cfg, job, &sidecars, source, cancel).await,
            Tool::Track(index) => with_track(cfg, job, *index, &sidecars, source, cancel).await,
        };
        let failure = match result {
            Ok(Found::Captions) => {
                return Ok(Outcome::Extracted {
                    tool: tool.name(),
                    sidecars,
                })
            }
            // Believed only when the source's own CC1 says so.
            Ok(Found::Nothing(why)) => match source.get().await {
                Ok(src) if !src.cc1.is_empty() => Failed::Transient(format!(
                    "the source has CC1 captions (the first: {}; {} cue(s)) but {} found none: \
                     {why}",
                    src.first_cc1(),
                    src.cc1.len(),
                    tool.name()
                )),
                Ok(_) => {
                    remove_temps(&sidecars);
                    return Ok(no_captions(cfg, sidecars));
                }
                Err(_) if cancel.is_cancelled() => Failed::Cancelled,
                Err(e) => Failed::Transient(format!(
                    "{} found no captions, and the source's captions could not be checked: {e}",
                    tool.name()
                )),
            },
            Err(failure) => failure,
        };
        match failure {
            Failed::Cancelled => {
                remove_temps(&sidecars);
                return Err(CaptionError::Cancelled);
            }
            Failed::Permanent(message) => {
                remove_temps(&sidecars);
                return Err(CaptionError::Permanent(message));
            }
            Failed::Transient(message) if attempt < cfg.max_attempts => {
                remove_temps(&sidecars);
                let delay = backoff(cfg.retry_backoff.get(), attempt);
                tracing::warn!(mp4 = %job.output.display(), attempt, retry_in = ?delay, "caption extraction failed, will retry: {message}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = cancel.cancelled() => return Err(CaptionError::Cancelled),
                }
            }
            Failed::Transient(message) => {
                remove_temps(&sidecars);
                return Err(CaptionError::Exhausted {
                    message,
                    attempts: attempt,
                });
            }
        }
    }
}

/// What an extractor found.
enum Found {
    /// Captions, in every sidecar.
    Captions,
    /// Nothing, for this reason.
    Nothing(String),
}

fn no_captions(cfg: &Captions, sidecars: Vec<Sidecar>) -> Outcome {
    if !cfg.write_empty {
        return Outcome::NoCaptions {
            sidecars: Vec::new(),
        };
    }
    let written = sidecars
        .into_iter()
        .filter(|s| {
            let empty: &[u8] = match s.format.as_str() {
                "vtt" => b"WEBVTT\n\n",
                "bin" => &ccextractor::RCWT_HEADER,
                _ => b"",
            };
            std::fs::write(&s.temp, empty).is_ok()
        })
        .collect();
    Outcome::NoCaptions { sidecars: written }
}

/// Removes the temporaries of `sidecars` (a failed or cancelled attempt).
pub fn remove_temps(sidecars: &[Sidecar]) {
    for s in sidecars {
        let _ = std::fs::remove_file(&s.temp);
    }
}

/// What FFmpeg reads the captions of the sidecars from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// The video's A/53 captions, through its decoder (the lavfi `movie` source).
    Decoded,
    /// The caption track with this stream index.
    Track(u32),
    /// An SCC file of the source's CC1 pairs ([`scc`]).
    Scc,
}

/// FFmpeg's text sidecars of captions in the video. When the source's caption bytes were read
/// from its transport stream without decoding ([`from_ts`], beside the transcode for the
/// check), FFmpeg's 608 decoder gets its CC1 pairs as an SCC file: no second decode of the
/// video; none at all is [`Found::Nothing`]. Otherwise FFmpeg decodes the video once more.
async fn with_ffmpeg_video(
    cfg: &Captions,
    job: Job<'_>,
    sidecars: &[Sidecar],
    source: &mut SourceReading,
    cancel: &CancellationToken,
) -> Result<Found, Failed> {
    // Only a transport stream can have been read without decoding; for anything else the
    // reading (when not under way already) would decode the video once more.
    let transport = matches!(crate::ts::layout_of(job.source), Ok(Some(_)));
    let read = if transport {
        match source.get().await {
            Ok(read) => Some(read),
            Err(_) if cancel.is_cancelled() => return Err(Failed::Cancelled),
            Err(_) => None,
        }
    } else {
        None
    };
    let fast = read
        .as_deref()
        .filter(|r| r.carrier == Some(Carrier::Video))
        .and_then(|r| Some((r.frames.as_slice(), r.first_picture?)));
    // Nothing in the whole stream (read without decoding): FFmpeg's decoder would find nothing
    // either (the reader gives way on every other caption carriage).
    if transport && read.as_deref().is_some_and(|r| r.no_caption_bytes) {
        return Ok(Found::Nothing(
            "the video carries no caption bytes (its transport stream read to the end)".into(),
        ));
    }
    if let Some((frames, first_picture)) = fast {
        // `.subcc` (FFmpeg's name for a video's caption stream): the temporary's extension.
        let scc_file = temp_path(&job.output.with_extension("subcc"));
        let written = scc::write(&scc_file, frames, first_picture);
        let found = match written {
            Ok(_) => {
                let run = with_ffmpeg(cfg, job.ffmpeg, &scc_file, Input::Scc, sidecars, cancel);
                Some(run.await)
            }
            Err(e) => {
                tracing::warn!(
                    mp4 = %job.output.display(),
                    "cannot write the source's captions as SCC ({e}): FFmpeg decodes the video \
                     for the sidecars"
                );
                None
            }
        };
        let _ = std::fs::remove_file(&scc_file);
        if let Some(found) = found {
            return found;
        }
    }
    with_ffmpeg(
        cfg,
        job.ffmpeg,
        job.source,
        Input::Decoded,
        sidecars,
        cancel,
    )
    .await
}

/// FFmpeg writes every text sidecar in one run, from `input` (CC1 whatever it is).
async fn with_ffmpeg(
    cfg: &Captions,
    ffmpeg: &Path,
    source: &Path,
    input: Input,
    sidecars: &[Sidecar],
    cancel: &CancellationToken,
) -> Result<Found, Failed> {
    let text: Vec<&Sidecar> = sidecars.iter().filter(|s| s.format != "bin").collect();
    if text.is_empty() {
        return Ok(Found::Captions);
    }
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-v", "error"]
        .into_iter()
        .chain(["-nostats", "-progress", "pipe:1", "-data_field", "first"])
        .map(Into::into)
        .collect();
    let map = match input {
        Input::Decoded => {
            args.extend(["-f", "lavfi", "-i"].map(Into::into));
            args.push(format!("movie={}[out0+subcc]", lavfi_escape(source)).into());
            "0:s:0".to_string()
        }
        Input::Scc => {
            // The times as written: they already count from the video's first picture.
            args.extend(["-copyts", "-f", "scc", "-i"].map(Into::into));
            args.push(input_arg(source));
            "0:s:0".to_string()
        }
        Input::Track(index) => {
            args.extend(crate::encoder_args::LOCAL_ONLY.map(OsString::from));
            args.push("-i".into());
            args.push(input_arg(source));
            format!("0:{index}")
        }
    };
    for s in &text {
        let codec = if s.format == "vtt" { "webvtt" } else { "srt" };
        args.extend(["-map", map.as_str(), "-c:s", codec, "-f", codec].map(OsString::from));
        args.push(input_arg(&s.temp));
    }
    let run = crate::transcode::run(ffmpeg, &args, cfg.stall_timeout.get(), cancel, |_| {});
    match run.await {
        Ok(()) => {}
        Err(TranscodeError::Cancelled) => return Err(Failed::Cancelled),
        Err(TranscodeError::Spawn { program, source }) => {
            return Err(Failed::Permanent(format!(
                "cannot start {program}: {source}"
            )))
        }
        Err(e @ TranscodeError::Failed { .. }) if e.to_string().contains("matches no streams") => {
            return Ok(Found::Nothing(
                "FFmpeg's decoder found no caption stream".into(),
            ));
        }
        Err(e) => return Err(Failed::Transient(e.to_string())),
    }
    if text
        .iter()
        .any(|s| ccextractor::holds_captions(&s.temp, &s.format))
    {
        Ok(Found::Captions)
    } else {
        Ok(Found::Nothing("FFmpeg wrote no cue".into()))
    }
}

/// A `c608` track: FFmpeg for the text sidecars, the agent's RCWT writer for `.bin`.
async fn with_track(
    cfg: &Captions,
    job: Job<'_>,
    index: u32,
    sidecars: &[Sidecar],
    source: &mut SourceReading,
    cancel: &CancellationToken,
) -> Result<Found, Failed> {
    let text = with_ffmpeg(
        cfg,
        job.ffmpeg,
        job.source,
        Input::Track(index),
        sidecars,
        cancel,
    )
    .await?;
    let Some(bin) = sidecars.iter().find(|s| s.format == "bin") else {
        return Ok(text);
    };
    let src = source.get().await.map_err(|e| {
        if cancel.is_cancelled() {
            Failed::Cancelled
        } else {
            Failed::Transient(format!("cannot read the caption track for .bin: {e}"))
        }
    })?;
    if src.frames.is_empty() {
        return Ok(Found::Nothing(
            "the caption track holds no caption data".into(),
        ));
    }
    rcwt::write(&bin.temp, &src.frames)
        .map_err(|e| Failed::Transient(format!("cannot write {}: {e}", bin.temp.display())))?;
    Ok(text)
}

/// CCExtractor, once per format, on what it reads best ([`ccextractor::input`]).
async fn with_ccextractor(
    cfg: &Captions,
    program: &Path,
    job: Job<'_>,
    sidecars: &[Sidecar],
    cancel: &CancellationToken,
) -> Result<Found, Failed> {
    let Some(mp4) = job.mp4 else {
        return Err(Failed::Permanent(
            "CCExtractor runs after verification, on the verified MP4".into(),
        ));
    };
    let stall = cfg.stall_timeout.get();
    // An MP4 without captions (`embed` false) has none to extract: the copy is the source's.
    let video = if cfg.embed { mp4 } else { job.source };
    let input = ccextractor::input(
        job.ffmpeg,
        job.source,
        job.format_name,
        video,
        job.output,
        stall,
        cancel,
    )
    .await
    .map_err(|e| match e {
        TranscodeError::Cancelled => Failed::Cancelled,
        e => Failed::Transient(format!(
            "cannot make the MPEG-TS copy of the video for CCExtractor: {e}"
        )),
    })?;
    let (mut wrote, mut nothing) = (Vec::new(), Vec::new());
    for s in sidecars {
        match ccextractor::run(program, input.path(), &s.format, &s.temp, stall, cancel).await {
            Ok(ccextractor::Run::Wrote) => wrote.push(s.format.as_str()),
            Ok(ccextractor::Run::Nothing(why)) => nothing.push(format!(".{}: {why}", s.format)),
            Err(ccextractor::RunFailure::Cancelled) => return Err(Failed::Cancelled),
            Err(ccextractor::RunFailure::Permanent(m)) => return Err(Failed::Permanent(m)),
            Err(ccextractor::RunFailure::Transient(m)) => return Err(Failed::Transient(m)),
        }
    }
    match (wrote.is_empty(), nothing.is_empty()) {
        (_, true) => Ok(Found::Captions),
        (true, false) => Ok(Found::Nothing(format!(
            "CCExtractor read {} ({})",
            input.describe(),
            nothing.join("; ")
        ))),
        (false, false) => Err(Failed::Transient(format!(
            "CCExtractor found captions for {} but none for {} in {}",
            wrote.join(","),
            nothing.join("; "),
            input.describe()
        ))),
    }
}

/// The delay before caption retry `attempt + 1`: the shared [`h264_support::Backoff`] from
/// `retry_backoff`, capped at five minutes.
fn backoff(base: Duration, attempt: u32) -> Duration {
    h264_support::Backoff::new(base, Duration::from_secs(300)).delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_arguments_keep_every_frame_and_the_caption_track() {
        let args: Vec<OsString> = ["-i", "in", "-c:v", "libx264", "-f", "mp4", "out"]
            .map(OsString::from)
            .to_vec();
        let plain = output_arguments(args.clone(), &Plan::default(), true, true);
        let text: Vec<String> = plain.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            text[4..10],
            ["-fps_mode:v", "vfr", "-enc_time_base:v", "-1", "-f", "mp4"]
        );
        let remux = output_arguments(args.clone(), &Plan::default(), false, true);
        assert_eq!(remux, args, "a stream copy keeps its frames anyway");
        let plan = Plan {
            tracks: Tracks {
                c608: Some(2),
                unreadable: vec![],
            },
            start: 0.0,
        };
        let c608 = output_arguments(args.clone(), &plan, false, true);
        let text: Vec<String> = c608.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            text[4..],
            ["-map", "0:2", "-c:s", "copy", "-brand", "mp42", "-f", "mov", "out"]
        );
    }

    #[test]
    fn output_arguments_drop_the_captions_when_not_embedded() {
        let args: Vec<OsString> = ["-i", "in", "-c:v", "libx264", "-f", "mp4", "out"]
            .map(OsString::from)
            .to_vec();
        let plan = Plan {
            tracks: Tracks {
                c608: Some(2),
                unreadable: vec![],
            },
            start: 0.0,
        };
        let text = |a: Vec<OsString>| -> Vec<String> {
            a.iter().map(|a| a.to_string_lossy().into()).collect()
        };
        let encoded = text(output_arguments(args.clone(), &plan, true, false));
        assert_eq!(
            encoded[4..],
            [
                "-fps_mode:v",
                "vfr",
                "-enc_time_base:v",
                "-1",
                "-a53cc",
                "0",
                "-f",
                "mp4",
                "out"
            ]
        );
        let copied = text(output_arguments(args, &plan, false, false));
        assert_eq!(
            copied[4..],
            ["-bsf:v", "filter_units=remove_types=6", "-f", "mp4", "out"],
            "no c608 track, no SEI"
        );
    }

    #[test]
    fn sidecar_names_follow_the_mp4() {
        let s = sidecars(Path::new("/out/show.mp4"), &["srt".into(), "bin".into()]);
        assert_eq!(s[0].path, Path::new("/out/show.srt"));
        assert!(s[1].temp.starts_with("/out/.h264create-work"));
        assert!(s[1].temp.to_string_lossy().ends_with(".bin.h264create-tmp"));
    }
}
