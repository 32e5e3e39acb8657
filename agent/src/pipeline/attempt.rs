//! One attempt of a job: the stages in order, each a call into its own module. Readiness (one
//! ffprobe, which also gives the caption plan; made ahead of the job's admission, see
//! [`super::ahead`], unless the settings changed meanwhile), then the deep caption check (beside the
//! transcode, its verdict shared with the source's caption reading), the transcode, the MP4's
//! flush to disk (beside verification), verification, the caption sidecars and publication.
//! The job's worker is given back when FFmpeg is done. Each step's wall time is a lap of the
//! job's `stage times` log line. Whatever way the attempt ends, its progress file goes.

use std::path::Path;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::failure::Failure;
use super::progress::ProgressFile;
use super::registry::JobHandle;
use super::stage::Stage;
use super::trace::Report;
use super::{captions, probe, publish, readiness, transcode, verify};
use crate::journal::Completed;
use crate::key::SourceKey;
use crate::readiness::Ready;
use crate::settings::Settings;
use crate::transcode::{arguments_for, plan_on, Input, Plan, Rung};

/// What one attempt works on.
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    /// The settings in force when the job started.
    pub settings: &'a Settings,
    /// The source's key.
    pub key: &'a SourceKey,
    /// The source.
    pub source: &'a Path,
    /// The output's final name.
    pub output: &'a Path,
    /// Whether an existing output may be replaced.
    pub replace: bool,
    /// The rung of the retry ladder it runs on.
    pub rung: Rung,
    /// The programme of a multiplex its watch root asks for.
    pub program: Option<&'a h264_config::agent::Program>,
    /// Cancels the attempt.
    pub cancel: &'a CancellationToken,
}

/// A published conversion, and the warnings about how it went (for the log and the alert).
pub type Done = (Completed, Vec<String>);

/// Runs the stages of one attempt; `report` gathers the job trace's facts.
/// `worker`: the job's worker slot, given back once the transcode (and any caption extraction
/// that runs after it) is done, so that the next job's FFmpeg starts while this one's output is
/// verified and published: `workers` bounds the FFmpeg runs, not the light work after them.
/// `checked`: the readiness checks made ahead of admission under these settings
/// ([`super::ahead`]); `None` to make them here.
pub async fn run(
    a: Attempt<'_>,
    checked: Option<Result<Ready, Failure>>,
    handle: &JobHandle,
    report: &mut Report,
    worker: &mut Option<OwnedSemaphorePermit>,
) -> Result<Done, Failure> {
    let mut progress = ProgressFile::new(a.output, a.source, handle.live.clone());
    let result = stages(&a, checked, &mut progress, report, worker).await;
    progress.remove();
    result
}

async fn stages(
    a: &Attempt<'_>,
    checked: Option<Result<Ready, Failure>>,
    progress: &mut ProgressFile,
    report: &mut Report,
    worker: &mut Option<OwnedSemaphorePermit>,
) -> Result<Done, Failure> {
    let cfg = &a.settings.config.transcode;
    let mut warnings: Vec<String> = Vec::new();
    let mut laps = Laps::start();
    progress.update(Stage::Readiness, 0.0, 0.0, 0.0, 0.0, true);
    report.source_size = std::fs::metadata(a.source).ok().map(|m| m.len());
    let Ready {
        mut info,
        trim,
        captions: caption_plan,
    } = match checked {
        Some(checked) => checked?,
        None => {
            let ready = readiness::run(a.settings, a.source, a.program, a.cancel).await?;
            laps.lap("readiness", &mut report.laps);
            ready
        }
    };
    if let Some(trim) = &trim {
        warnings.push(trim.warning());
        report.trimmed_bytes = Some(trim.dropped);
    }
    report.source_codec = info.video.as_ref().map(|v| v.codec.clone());
    report.media_secs = Some(info.video_secs());

    let plan = plan_on(&info, cfg, a.rung);
    let encode = matches!(plan, Plan::Encode { .. });
    let embed = a.settings.config.captions.embed;
    let check_captions = crate::captions::checks_output(&caption_plan, encode, embed);
    let deep = probe::spawn_deep(a, &info);
    let (mut source_captions, _reading) = probe::read_beside(
        a,
        &caption_plan,
        &info,
        check_captions,
        deep.presence(&info),
    );
    report.mode = Some(plan.mode());

    let temp = transcode::prepare_output(a.output, a.key.rel())?;
    let early = captions::spawn_early(a, &caption_plan, &info, &source_captions);
    let input = Input {
        path: a.source,
        end: trim.as_ref().map(|t| t.keep),
        program: info.program.as_ref().map(|p| p.number),
    };
    let args = crate::captions::output_arguments(
        arguments_for(&input, &temp, plan, cfg, a.rung),
        &caption_plan,
        encode,
        embed,
    );
    let total = info.video_secs();
    let transcode_started = Instant::now();
    laps.lap("prepare", &mut report.laps);
    let transcode_cpu = transcode::run(a, plan, &args, total, progress).await?;
    laps.lap("ffmpeg", &mut report.laps);
    // Nothing heavy is left unless CCExtractor runs after verification: free the worker.
    if early.is_some() || a.settings.config.captions.formats.is_empty() {
        drop(worker.take());
    }
    // The MP4's data goes to disk while it is verified; publication waits for it.
    let synced = publish::sync_beside(&temp);
    probe::finish_deep(deep, &mut info).await?;
    laps.lap("probe_wait", &mut report.laps);

    progress.update(Stage::Verify, total, total, 0.0, 0.0, true);
    let against = verify::Against {
        info: &info,
        deinterlaced: matches!(plan, Plan::Encode { deinterlace: true }),
        check_captions,
        source_captions: &mut source_captions,
    };
    let (verified, caption_warnings) = verify::run(a, &temp, against).await?;
    report.output_codec = verified.video.as_ref().map(|v| v.codec.clone());
    let transcode_secs = transcode_started.elapsed().as_secs_f64();
    laps.lap("verify", &mut report.laps);

    progress.update(Stage::Captions, total, total, 0.0, 0.0, true);
    let captions_started = Instant::now();
    let captioned = captions::run(
        a,
        early,
        &caption_plan,
        &info,
        &temp,
        &mut source_captions,
        caption_warnings,
    )
    .await?;
    let captions_secs = captions_started.elapsed().as_secs_f64();
    laps.lap("captions", &mut report.laps);

    progress.update(Stage::Publish, total, total, 0.0, 0.0, true);
    let bytes_out = publish::run(a, &captioned.outcome, &temp, synced).await?;
    laps.lap("publish", &mut report.laps);
    if a.rung != Rung::Standard {
        warnings.push(format!(
            "converted on rung `{}` of the retry ladder (FFmpeg input options {})",
            a.rung.as_str(),
            a.rung.input_options().join(" ")
        ));
    }
    let done = Completed {
        transcode_secs,
        transcode_cpu_secs: transcode_cpu.map_or(0.0, |d| d.as_secs_f64()),
        captions_secs,
        captions_work_secs: captioned.work_secs,
        captions: captioned.outcome.summary(),
        caption_warning: (!captioned.warnings.is_empty()).then(|| captioned.warnings.join("; ")),
        mode: plan.mode(),
        bytes_in: std::fs::metadata(a.source).map(|m| m.len()).unwrap_or(0),
        bytes_out,
        media_secs: total,
        wall_secs: 0.0,
    };
    Ok((done, warnings))
}

/// Wall time between the points of an attempt, for the job's `stage times` log line and the
/// benchmarks' per-stage breakdown.
struct Laps(Instant);

impl Laps {
    fn start() -> Laps {
        Laps(Instant::now())
    }

    /// Records the time since the last lap under `name`.
    fn lap(&mut self, name: &'static str, laps: &mut Vec<(&'static str, f64)>) {
        let now = Instant::now();
        laps.push((name, now.duration_since(self.0).as_secs_f64()));
        self.0 = now;
    }
}
