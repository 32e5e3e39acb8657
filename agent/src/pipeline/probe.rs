//! The `probe` stage: the deep caption check (the first frames' captions), which runs beside
//! the transcode and is awaited before verification; the source's captions are read beside the
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
    let span = stage_span!(Stage::Probe, captions.found = Empty);
    let (tx, verdict_rx) = watch::channel(None);
    let check = async move {
        let verdict = validate_deep(&ffprobe, &source, &info, &readiness, &cancel).await;
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
