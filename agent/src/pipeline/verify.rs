//! The `verify` stage: the temporary output is read back (its boxes, in process: see
//! [`crate::mp4`]; no ffprobe) and checked against the source (streams, durations, fast
//! start), and, when the output carries captions to compare, its captions cue for cue against
//! the source's (CC1, and CC3) read beside the transcode, from its samples, in process too
//! ([`crate::captions::from_mp4`]). A mismatch of captions is a warning unless
//! `captions.require_passthrough`.

use std::path::Path;
use std::time::Instant;

use tracing::field::Empty;
use tracing::Span;

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::captions::{SourceReading, VerifyFailure};
use crate::probe::MediaInfo;
use crate::publish::{verify, VerifyError};

/// What verification checks the output against.
pub struct Against<'a> {
    /// The source as probed (with the deep check's verdict).
    pub info: &'a MediaInfo,
    /// Whether the output was deinterlaced.
    pub deinterlaced: bool,
    /// Whether the captions are compared cue for cue.
    pub check_captions: bool,
    /// The source's captions, read beside the transcode.
    pub source_captions: &'a mut SourceReading,
}

/// Verifies `temp`; returns what the output is and the caption warnings.
pub async fn run(
    a: &Attempt<'_>,
    temp: &Path,
    mut against: Against<'_>,
) -> Result<(MediaInfo, Vec<String>), Failure> {
    let span = stage_span!(
        Stage::Verify,
        output.codec = Empty,
        output.duration_secs = Empty,
        output.size_bytes = Empty,
        captions.cues = Empty,
        captions.check_secs = Empty
    );
    let mut caption_warnings = Vec::new();
    let out = stage(span, async {
        let out = probe_back(a, temp, &against).await?;
        let span = Span::current();
        if let Some(v) = &out.video {
            span.record("output.codec", v.codec.as_str());
        }
        span.record("output.duration_secs", out.duration);
        if let Ok(meta) = std::fs::metadata(temp) {
            span.record("output.size_bytes", meta.len());
        }
        if against.check_captions {
            if let Some(warning) = compare_captions(a, temp, &mut against).await? {
                caption_warnings.push(warning);
            }
        }
        Ok(out)
    })
    .await?;
    Ok((out, caption_warnings))
}

/// The output's streams and durations against the source's.
async fn probe_back(
    a: &Attempt<'_>,
    temp: &Path,
    against: &Against<'_>,
) -> Result<MediaInfo, Failure> {
    let cfg = &a.settings.config;
    let verified = verify(
        temp,
        against.info,
        against.deinterlaced,
        cfg.captions.require_passthrough && cfg.captions.embed,
        &cfg.transcode,
        cfg.readiness.probe_timeout.get(),
        a.cancel,
    )
    .await;
    match verified {
        Ok(out) => Ok(out),
        Err(_) if a.cancel.is_cancelled() => Err(Failure::Cancelled),
        Err(VerifyError::Unreadable(m)) | Err(VerifyError::Mismatch(m)) => {
            Err(Failure::transient(Stage::Verify, m))
        }
        Err(e @ VerifyError::Duration(_)) => Err(Failure::damaged(Stage::Verify, e.to_string())),
    }
}

/// The MP4's captions, cue for cue, against the source's; a mismatch that is only a warning is
/// returned as one.
async fn compare_captions(
    a: &Attempt<'_>,
    temp: &Path,
    against: &mut Against<'_>,
) -> Result<Option<String>, Failure> {
    let cfg = &a.settings.config;
    let t = &cfg.transcode;
    let span = Span::current();
    let check = Instant::now();
    let src = against.source_captions.get().await.map_err(|e| {
        if a.cancel.is_cancelled() {
            Failure::Cancelled
        } else {
            Failure::transient(
                Stage::Verify,
                format!("cannot read the source's captions: {e}"),
            )
        }
    })?;
    span.record("captions.cues", (src.cc1.len() + src.cc3.len()) as u64);
    let compared = crate::captions::verify_output(
        &t.ffmpeg,
        &t.ffprobe,
        temp,
        &src,
        t.duration_tolerance.get().as_secs_f64(),
        cfg.readiness.probe_timeout.get(),
        crate::captions::read_limit(against.info.duration, t.stall_timeout.get()),
        a.cancel,
    )
    .await;
    span.record("captions.check_secs", check.elapsed().as_secs_f64());
    match compared {
        Ok(()) => Ok(None),
        Err(_) if a.cancel.is_cancelled() => Err(Failure::Cancelled),
        Err(VerifyFailure::Mismatch(m)) if cfg.captions.require_passthrough => {
            Err(Failure::transient(
                Stage::Verify,
                format!("the output's captions are not the source's: {m}"),
            ))
        }
        Err(VerifyFailure::Mismatch(m)) => Ok(Some(format!("captions not kept: {m}"))),
        Err(e) => Err(Failure::transient(Stage::Verify, e.to_string())),
    }
}
