//! The `captions` stage: caption sidecars (SRT, WebVTT, ...). With FFmpeg or a caption track
//! they come from the source while it transcodes (their times count from the first video frame
//! either way), so the stage adds little wall time; its span covers what it adds after
//! verification. With CCExtractor, or from one programme of a multiplex, they come after
//! verification (from the output, which holds that programme's video only).

use std::path::Path;
use std::time::Instant;

use tokio_util::task::AbortOnDropHandle;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::captions::{CaptionError, Outcome, Plan as CaptionPlan, SourceReading};
use crate::probe::MediaInfo;

/// An extraction running beside the transcode: its result and its work time in seconds.
pub type Early = AbortOnDropHandle<(Result<Outcome, CaptionError>, f64)>;

/// What the stage produced: the outcome, the extraction's own work time, and the warnings.
pub struct Captioned {
    /// What was extracted.
    pub outcome: Outcome,
    /// Seconds the extraction itself took (beside the transcode or after it).
    pub work_secs: f64,
    /// Caption warnings (of verification and of this stage).
    pub warnings: Vec<String>,
}

/// Starts the extraction beside the transcode when it reads only the source; the task is
/// aborted, its FFmpeg killed, if the attempt ends early.
pub fn spawn_early(
    a: &Attempt<'_>,
    plan: &CaptionPlan,
    info: &MediaInfo,
    reading: &SourceReading,
) -> Option<Early> {
    let cfg = &a.settings.config;
    let beside =
        crate::captions::runs_beside_transcode(&cfg.captions, plan) && info.program.is_none();
    if !beside {
        return None;
    }
    let (captions, ffmpeg) = (cfg.captions.clone(), cfg.transcode.ffmpeg.clone());
    let (source, output, cancel) = (
        a.source.to_path_buf(),
        a.output.to_path_buf(),
        a.cancel.clone(),
    );
    let (plan, format_name) = (plan.clone(), info.format_name.clone());
    let mut reading = reading.clone();
    let extract = async move {
        let started = Instant::now();
        let job = crate::captions::Job {
            ffmpeg: &ffmpeg,
            source: &source,
            format_name: &format_name,
            plan: &plan,
            output: &output,
            mp4: None,
        };
        let result = crate::captions::extract(&captions, job, &mut reading, &cancel).await;
        (result, started.elapsed().as_secs_f64())
    };
    // In the job's span, so that its log lines carry the job's id and file.
    Some(AbortOnDropHandle::new(tokio::spawn(
        extract.instrument(Span::current()),
    )))
}

/// Finishes the stage: awaits the early extraction, or extracts now from `temp`.
pub async fn run(
    a: &Attempt<'_>,
    early: Option<Early>,
    plan: &CaptionPlan,
    info: &MediaInfo,
    temp: &Path,
    reading: &mut SourceReading,
    mut warnings: Vec<String>,
) -> Result<Captioned, Failure> {
    let captions = &a.settings.config.captions;
    let started = Instant::now();
    let span = stage_span!(
        Stage::Captions,
        captions.formats = Empty,
        captions.beside_transcode = early.is_some(),
        captions.outcome = Empty,
        captions.work_secs = Empty,
        captions.warning = Empty
    );
    if !captions.formats.is_empty() {
        span.record("captions.formats", captions.formats.join(",").as_str());
    }
    stage(span, async {
        let (extracted, work_secs) = match early {
            Some(task) => task.await.unwrap_or((Err(CaptionError::Cancelled), 0.0)),
            None => {
                let job = crate::captions::Job {
                    ffmpeg: &a.settings.config.transcode.ffmpeg,
                    source: a.source,
                    format_name: &info.format_name,
                    plan,
                    output: a.output,
                    mp4: Some(temp),
                };
                let result = crate::captions::extract(captions, job, reading, a.cancel).await;
                (result, started.elapsed().as_secs_f64())
            }
        };
        Span::current().record("captions.work_secs", work_secs);
        let outcome = extracted.map_err(Failure::captions)?;
        Span::current().record("captions.outcome", outcome.summary().as_str());
        let read = reading.peek();
        let mut found = crate::captions::warnings(captions, plan, read.as_deref());
        found.append(&mut warnings);
        if !found.is_empty() {
            let warning = found.join("; ");
            Span::current().record("captions.warning", warning.as_str());
            tracing::warn!(source = %a.source.display(), "{warning}");
        }
        if a.cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        Ok(Captioned {
            outcome,
            work_secs,
            warnings: found,
        })
    })
    .await
}
