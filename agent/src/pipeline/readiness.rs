//! The `readiness` stage: the quick checks that the recording is finished and valid (not empty,
//! ffprobe reads it, the programme of a multiplex, not scrambled, a video stream, whole
//! packets, the minimum duration). The wait before the job (a file still being written) is the
//! reconciler's; this stage runs once the file is stable.

use tracing::field::Empty;
use tracing::Span;

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::readiness::{validate, Ready};

/// Checks the source; a refusal is permanent, a probe that fails is worth a retry.
pub async fn run(a: &Attempt<'_>) -> Result<Ready, Failure> {
    let span = stage_span!(
        Stage::Readiness,
        format = Empty,
        video.codec = Empty,
        video.width = Empty,
        video.height = Empty,
        video.interlaced = Empty,
        audio.streams = Empty,
        media.duration_secs = Empty,
        container.duration_secs = Empty,
        program = Empty,
        source.trimmed_bytes = Empty
    );
    let cfg = &a.settings.config;
    stage(span, async {
        let checked = validate(
            &cfg.transcode.ffprobe,
            a.source,
            &cfg.readiness,
            a.program,
            a.cancel,
        )
        .await;
        match checked {
            Ok(Ok(ready)) => {
                record(&ready, a);
                Ok(ready)
            }
            Ok(Err(invalid)) => Err(Failure::permanent(Stage::Readiness, invalid.0)),
            Err(e) => Err(Failure::run(Stage::Readiness, e)),
        }
    })
    .await
}

/// What the checks found, on the stage's span.
fn record(ready: &Ready, a: &Attempt<'_>) {
    let info = &ready.info;
    let span = Span::current();
    span.record("format", info.format_name.as_str());
    if let Some(v) = &info.video {
        span.record("video.codec", v.codec.as_str());
        span.record("video.width", v.width);
        span.record("video.height", v.height);
        span.record("video.interlaced", v.is_interlaced());
    }
    span.record("audio.streams", info.audio.len());
    span.record("media.duration_secs", info.video_secs());
    span.record("container.duration_secs", info.duration);
    if let Some(programme) = &info.program {
        span.record("program", programme.to_string().as_str());
    }
    if let Some(trim) = &ready.trim {
        span.record("source.trimmed_bytes", trim.dropped);
        tracing::warn!(source = %a.source.display(), "{}", trim.warning());
    }
}
