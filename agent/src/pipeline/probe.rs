//! The `probe` stage: where the source's captions are (a c608 track or the video) and the
//! deep caption check, which runs beside the transcode and is awaited before verification;
//! the source's captions are read beside the transcode too, for the cue-for-cue check of the
//! output and the sidecars' cross-check. The recording's damage comes from the transcode's own
//! log, not from here.

use tokio_util::task::AbortOnDropHandle;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{mark_error, stage_span};
use crate::captions::{Plan as CaptionPlan, SourceReading};
use crate::plumbing::child::RunError;
use crate::probe::MediaInfo;
use crate::readiness::validate_deep;

/// The deep check running beside the transcode: whether the video carries captions.
pub type DeepCheck = AbortOnDropHandle<Result<bool, RunError>>;

/// Where the source's captions are.
pub async fn caption_plan(a: &Attempt<'_>) -> Result<CaptionPlan, Failure> {
    let cfg = &a.settings.config;
    crate::captions::plan(
        &cfg.transcode.ffprobe,
        a.source,
        cfg.readiness.probe_timeout.get(),
        a.cancel,
    )
    .await
    .map_err(|e| Failure::run(Stage::Probe, e))
}

/// Starts reading the source's captions beside the transcode: at once when the output will be
/// compared with them (`check`), else only if an extractor finds no captions and the
/// cross-check needs them. The task stops when the returned handle is dropped.
pub fn read_beside(
    a: &Attempt<'_>,
    plan: &CaptionPlan,
    info: &MediaInfo,
    check: bool,
) -> (SourceReading, AbortOnDropHandle<()>) {
    let cfg = &a.settings.config;
    crate::captions::read_source_beside(
        cfg.transcode.ffprobe.clone(),
        a.source.to_path_buf(),
        plan.clone(),
        cfg.readiness.probe_timeout.get(),
        crate::captions::read_limit(info.video_secs(), cfg.transcode.stall_timeout.get()),
        check,
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
    let check = async move {
        let verdict = validate_deep(&ffprobe, &source, &info, &readiness, &cancel).await;
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
    AbortOnDropHandle::new(tokio::spawn(check.instrument(span)))
}

/// Waits for the deep check and records its verdict in `info`.
pub async fn finish_deep(deep: DeepCheck, info: &mut MediaInfo) -> Result<(), Failure> {
    let verdict = deep.await.unwrap_or(Err(RunError::Cancelled {
        program: "ffmpeg".into(),
    }));
    let has_captions = verdict.map_err(|e| Failure::run(Stage::Probe, e))?;
    if let Some(video) = info.video.as_mut() {
        video.closed_captions = has_captions;
    }
    Ok(())
}
