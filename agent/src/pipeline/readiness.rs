//! The `readiness` stage: the quick checks that the recording is finished and valid (not empty,
//! ffprobe reads it, the programme of a multiplex, not scrambled, a video stream, whole
//! packets, the minimum duration). The wait before the job (a file still being written) is the
//! reconciler's; this stage runs once the file is stable, before the job waits for a worker
//! ([`super::ahead`]).

use tracing::field::Empty;
use tracing::Span;

use std::path::Path;

use h264_config::agent::Program;
use tokio_util::sync::CancellationToken;

use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::readiness::{validate, Ready};
use crate::settings::Settings;

/// Checks `source` (the programme `program` of a multiplex) under `settings`; a refusal is
/// permanent, a probe that fails is worth a retry. It runs ahead of the job's admission
/// ([`super::ahead`]), or in the attempt when the settings changed meanwhile.
pub async fn run(
    settings: &Settings,
    source: &Path,
    program: Option<&Program>,
    cancel: &CancellationToken,
) -> Result<Ready, Failure> {
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
    let cfg = &settings.config;
    stage(span, async {
        let checked = validate(
            &cfg.transcode.ffprobe,
            source,
            &cfg.readiness,
            program,
            cancel,
        )
        .await;
        match checked {
            Ok(Ok(ready)) => {
                record(&ready, source);
                Ok(ready)
            }
            Ok(Err(invalid)) => Err(Failure::permanent(Stage::Readiness, invalid.0)),
            Err(e) => Err(Failure::run(Stage::Readiness, e)),
        }
    })
    .await
}

/// What the checks found, on the stage's span.
fn record(ready: &Ready, source: &Path) {
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
        tracing::warn!(source = %source.display(), "{}", trim.warning());
    }
}
