//! The `probe` stage: the deep caption check (the first frames' captions), which runs beside
//! the transcode and is awaited before verification (a transport stream whose first pictures
//! carry nothing captions travel in is cleared in process, without the probe:
//! [`crate::captions::scan`]); the source's captions are read beside the
//! transcode too, for the cue-for-cue check of the output and the sidecars' cross-check, and
//! take the deep check's verdict rather than probing again. Where the source's captions are (a
//! c608 track or the video) comes from the readiness probe's own ffprobe run. The recording's
//! damage comes from the transcode's own log, not from here.

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{mark_error, stage_span};
use std::path::Path;

use crate::captions::scan::{first_pictures, Codec, Scan};
use crate::captions::{Plan as CaptionPlan, Presence, SourceReading};
use crate::plumbing::child::RunError;
use crate::probe::MediaInfo;
use crate::readiness::validate_deep;

/// The deep check running beside the transcode: whether the video carries captions. Its
/// verdict is also published to [`DeepCheck::presence`], for the source's caption reading.
pub struct DeepCheck {
    task: AbortOnDropHandle<Result<bool, RunError>>,
    verdict: Presence,
}

impl DeepCheck {
    /// The verdict as the source's caption reading waits for it: the same video stream the
    /// reading decodes (`v:0`) unless a programme of a multiplex is converted, whose video the
    /// check probes instead (then the reading probes `v:0` itself, as before).
    pub fn presence(&self, info: &MediaInfo) -> Option<Presence> {
        info.program.is_none().then(|| self.verdict.clone())
    }
}

/// Starts reading the source's captions beside the transcode: at once when the output will be
/// compared with them (`check`), else only if an extractor finds no captions and the
/// cross-check needs them. It takes the deep check's verdict on the video's captions
/// (`presence`) instead of probing again. The task stops when the returned handle is dropped.
pub fn read_beside(
    a: &Attempt<'_>,
    plan: &CaptionPlan,
    info: &MediaInfo,
    check: bool,
    presence: Option<Presence>,
) -> (SourceReading, AbortOnDropHandle<()>) {
    let cfg = &a.settings.config;
    crate::captions::read_source_beside(
        cfg.transcode.ffprobe.clone(),
        a.source.to_path_buf(),
        plan.clone(),
        cfg.readiness.probe_timeout.get(),
        crate::captions::read_limit(info.video_secs(), cfg.transcode.stall_timeout.get()),
        check,
        presence,
        a.cancel.clone(),
    )
}

/// Starts the deep caption check in its own `probe` span; it is aborted if dropped.
pub fn spawn_deep(a: &Attempt<'_>, info: &MediaInfo) -> DeepCheck {
    let cfg = &a.settings.config;
    let ffprobe = cfg.transcode.ffprobe.clone();
    let (source, info, readiness, cancel) = (
        a.source.to_path_buf(),
        info.clone(),
        cfg.readiness.clone(),
        a.cancel.clone(),
    );
    let span = stage_span!(Stage::Probe, captions.found = Empty, captions.scan = Empty);
    let (tx, verdict_rx) = watch::channel(None);
    let check = async move {
        let verdict = match scan(&source, &info).await {
            Scan::NoCaptions => Ok(false),
            Scan::Maybe(_) => validate_deep(&ffprobe, &source, &info, &readiness, &cancel).await,
        };
        if let Ok(found) = &verdict {
            let _ = tx.send(Some(*found));
        }
        let span = Span::current();
        match &verdict {
            Ok(has_captions) => {
                span.record("captions.found", *has_captions);
            }
            Err(RunError::Cancelled { .. }) => {}
            Err(e) => mark_error(&span, &e.to_string()),
        }
        verdict
    };
    DeepCheck {
        task: AbortOnDropHandle::new(tokio::spawn(check.instrument(span))),
        verdict: verdict_rx,
    }
}

/// The in-process scan of a transport stream's first pictures ([`crate::captions::scan`]):
/// when they carry nothing captions travel in, the caption probe is not run. Its answer is
/// recorded on the span (`captions.scan`: `clear`, or why the probe runs).
async fn scan(source: &Path, info: &MediaInfo) -> Scan {
    let span = Span::current();
    let found = match scannable(info) {
        Err(why) => Scan::Maybe(why.to_owned()),
        Ok((pid, codec)) => {
            let source = source.to_path_buf();
            let scanned =
                tokio::task::spawn_blocking(move || match crate::ts::layout_of(&source)? {
                    Some(layout) => first_pictures(&source, layout, pid, codec),
                    None => Ok(Scan::Maybe("no transport stream layout".into())),
                })
                .await;
            match scanned {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => Scan::Maybe(format!("the scan could not read the source: {e}")),
                Err(e) => Scan::Maybe(format!("the scan's task failed: {e}")),
            }
        }
    };
    match &found {
        Scan::NoCaptions => span.record("captions.scan", "clear"),
        Scan::Maybe(why) => span.record("captions.scan", why.as_str()),
    };
    found
}

/// The video PID and codec to scan: a transport stream's MPEG-2 or H.264 video.
fn scannable(info: &MediaInfo) -> Result<(u16, Codec), &'static str> {
    if !info.format_name.split(',').any(|f| f == "mpegts") {
        return Err("not a transport stream");
    }
    let video = info.video.as_ref().ok_or("no video")?;
    let pid = video.pid.ok_or("no video PID")?;
    let codec = Codec::from_name(&video.codec).ok_or("a video codec the scan does not read")?;
    Ok((pid, codec))
}

/// Waits for the deep check and records its verdict in `info`.
pub async fn finish_deep(deep: DeepCheck, info: &mut MediaInfo) -> Result<(), Failure> {
    let verdict = deep.task.await.unwrap_or(Err(RunError::Cancelled {
        program: "ffmpeg".into(),
    }));
    let has_captions = verdict.map_err(|e| Failure::run(Stage::Probe, e))?;
    if let Some(video) = info.video.as_mut() {
        video.closed_captions = has_captions;
    }
    Ok(())
}
