//! The `publish` stage: sidecars first, the MP4 last, each verified temporary given its final
//! name (never replacing a file this job must not replace), so an MP4 under its final name means
//! a complete job. Every temporary is flushed before the first rename and the output folder
//! once after the last: one folder flush per publication.

use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tracing::field::Empty;
use tracing::Span;

use super::attempt::Attempt;
use super::failure::Failure;
use super::stage::Stage;
use super::trace::{stage, stage_span};
use crate::captions::Outcome;
use crate::publish::{rename_synced, sync_dir};

/// The MP4's flush to disk, started as soon as FFmpeg finished so that it overlaps
/// verification and the caption stage (on the blocking pool: an fsync may take long).
pub type Synced = JoinHandle<std::io::Result<()>>;

/// Starts flushing `temp` (the finished MP4) to disk.
pub fn sync_beside(temp: &Path) -> Synced {
    let temp = temp.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&temp)?.sync_all())
}

/// Publishes the sidecars of `outcome`, then `temp` as the output; returns the MP4's bytes.
/// Every temporary is on disk before the first rename (the MP4's flush, `synced`, was started
/// after the transcode), and the output folder is flushed once, after the last.
pub async fn run(
    a: &Attempt<'_>,
    outcome: &Outcome,
    temp: &Path,
    synced: Synced,
) -> Result<u64, Failure> {
    let span = stage_span!(
        Stage::Publish,
        sidecars = outcome.to_publish().len(),
        output.size_bytes = Empty
    );
    stage(span, async {
        let sidecars: Vec<PathBuf> = outcome
            .to_publish()
            .iter()
            .map(|s| s.temp.clone())
            .collect();
        let flushed = tokio::task::spawn_blocking(move || {
            for path in &sidecars {
                std::fs::File::open(path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| (path.clone(), e))?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err((PathBuf::new(), std::io::Error::other(e))));
        let not_flushed = |path: &Path, e: std::io::Error| {
            Failure::transient(
                Stage::Publish,
                format!(
                    "cannot flush {} to disk before publishing it: {e}",
                    path.display()
                ),
            )
        };
        flushed.map_err(|(path, e)| not_flushed(&path, e))?;
        synced
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|e| not_flushed(temp, e))?;
        for sidecar in outcome.to_publish() {
            publish_one(a, &sidecar.temp, &sidecar.path)?;
        }
        let bytes_out = std::fs::metadata(temp).map(|m| m.len()).unwrap_or(0);
        Span::current().record("output.size_bytes", bytes_out);
        publish_one(a, temp, a.output)?;
        sync_dir(a.output.parent().unwrap_or(Path::new(".")));
        Ok(bytes_out)
    })
    .await
}

/// Gives one flushed temporary file its final name.
fn publish_one(a: &Attempt<'_>, temp: &Path, path: &Path) -> Result<(), Failure> {
    match rename_synced(temp, path, a.replace) {
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
