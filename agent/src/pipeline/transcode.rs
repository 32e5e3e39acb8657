//! The `transcode` stage: FFmpeg converts the source into the hidden temporary output, on the
//! attempt's rung of the retry ladder. FFmpeg's own log gives the recording's damage: beyond
//! `readiness.max_decode_errors` reports the input is refused as corrupt, like the quick checks'
//! refusals; FFmpeg blaming the input climbs the ladder ([`decide`](mod@super::decide)).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::field::Empty;
use tracing::Span;

use super::attempt::Attempt;
use super::failure::Failure;
use super::progress::ProgressFile;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::publish::temp_path;
use crate::transcode::{Plan, TranscodeError};

/// Creates the output folder and its private work folder, and a fresh empty temporary there
/// ([`crate::fs_safe::prepare_output`]); returns the temporary's path.
pub fn prepare_output(output: &Path, rel: &Path) -> Result<PathBuf, Failure> {
    let temp = temp_path(output);
    let root = crate::root_health::output_root(output, rel);
    crate::fs_safe::prepare_output(output, &root).map_err(|e| {
        let folder = output.parent().unwrap_or(Path::new("."));
        Failure::transient(
            Stage::Transcode,
            format!("cannot prepare the output folder {}: {e}", folder.display()),
        )
    })?;
    Ok(temp)
}

/// Runs FFmpeg with `args` (`total`: the recording's seconds, for the progress); the CPU time
/// FFmpeg used, when `/proc` tells.
pub async fn run(
    a: &Attempt<'_>,
    plan: Plan,
    args: &[OsString],
    total: f64,
    progress: &mut ProgressFile,
) -> Result<Option<Duration>, Failure> {
    let cfg = &a.settings.config.transcode;
    let started = Instant::now();
    let span = stage_span!(
        Stage::Transcode,
        mode = plan.mode(),
        retry.rung = a.rung.as_str(),
        damage.reports = Empty,
        deinterlace = matches!(plan, Plan::Encode { deinterlace: true }),
        media.duration_secs = total,
        duration_secs = Empty,
        speed = Empty,
        ffmpeg.speed = Empty,
        ffmpeg.fps = Empty,
        ffmpeg.exit_status = Empty,
        ffmpeg.stderr_tail = Empty
    );
    stage(span, async {
        tracing::debug!(source = %a.key, ?args, mode = plan.mode(), "starting FFmpeg");
        let (mut ffmpeg_speed, mut ffmpeg_fps) = (0.0, 0.0);
        let stall = cfg.stall_timeout.get();
        let ffmpeg = crate::transcode::run_counting(&cfg.ffmpeg, args, stall, a.cancel, |p| {
            if p.speed > 0.0 {
                (ffmpeg_speed, ffmpeg_fps) = (p.speed, p.fps);
            }
            progress.update(
                Stage::Transcode,
                p.out_time.as_secs_f64(),
                total,
                p.fps,
                p.speed,
                false,
            );
        });
        let result = ffmpeg.await;
        let span = Span::current();
        let wall = started.elapsed().as_secs_f64();
        span.record("duration_secs", wall);
        if wall > 0.0 {
            span.record("speed", total / wall);
        }
        span.record("ffmpeg.speed", ffmpeg_speed);
        span.record("ffmpeg.fps", ffmpeg_fps);
        match &result {
            Err(TranscodeError::Failed { status, tail, .. }) => {
                span.record("ffmpeg.exit_status", tracing::field::display(status));
                span.record("ffmpeg.stderr_tail", tail.as_str());
            }
            Err(TranscodeError::Stalled { tail, .. }) => {
                span.record("ffmpeg.stderr_tail", tail.as_str());
            }
            _ => {}
        }
        let ran = result.map_err(Failure::transcode)?;
        let damage = ran.damage;
        span.record("damage.reports", damage.count());
        let tolerance = a.settings.config.readiness.max_decode_errors;
        if damage.count() > tolerance {
            // Refused as invalid input, like the quick checks' refusals.
            return Err(Failure::permanent(
                Stage::Readiness,
                format!(
                    "corrupt: {} damage reports from the demuxer and decoders \
                     (tolerance readiness.max_decode_errors = {tolerance}), e.g. {}",
                    damage.count(),
                    damage.sample()
                ),
            ));
        }
        if damage.count() > 0 {
            tracing::info!(
                source = %a.key, reports = damage.count(), sample = %damage.sample(),
                "damage within the tolerance"
            );
        }
        Ok(ran.cpu)
    })
    .await
}
