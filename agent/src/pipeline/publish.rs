//! The `publish` stage: sidecars first, the MP4 last, each verified temporary given its final
//! name (never replacing a file this job must not replace), so an MP4 under its final name means
//! a complete job.

use std::path::Path;

use tracing::field::Empty;
use tracing::Span;

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::captions::Outcome;
use crate::publish::commit;

/// Publishes the sidecars of `outcome`, then `temp` as the output; returns the MP4's bytes.
pub async fn run(a: &Attempt<'_>, outcome: &Outcome, temp: &Path) -> Result<u64, Failure> {
    let span = stage_span!(
        Stage::Publish,
        sidecars = outcome.to_publish().len(),
        output.size_bytes = Empty
    );
    stage(span, async {
        for sidecar in outcome.to_publish() {
            publish_one(a, &sidecar.temp, &sidecar.path)?;
        }
        let bytes_out = std::fs::metadata(temp).map(|m| m.len()).unwrap_or(0);
        Span::current().record("output.size_bytes", bytes_out);
        publish_one(a, temp, a.output)?;
        Ok(bytes_out)
    })
    .await
}

/// Gives one verified temporary file its final name.
fn publish_one(a: &Attempt<'_>, temp: &Path, path: &Path) -> Result<(), Failure> {
    match commit(temp, path, a.replace) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Failure::Conflict(format!(
            "{} appeared while {} was converting and is not replaced",
            path.display(),
            a.key
        ))),
        Err(e) => Err(Failure::transient(
            Stage::Publish,
            format!("cannot publish {}: {e}", path.display()),
        )),
    }
}
