//! Progress dot-files beside the output (`.<name>.progress`), for external monitors that read
//! files: JSON with stage, percent, fps, speed, ETA and time of update, replaced atomically at
//! most once a second, removed when the job ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::stage::{Phase, Stage};
use crate::publish::{sibling, PROGRESS_SUFFIX, TEMP_SUFFIX};

/// A running job's phase and progress, for the control API and the metrics.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Waiting for a worker, or the stage it runs.
    pub stage: Phase,
    /// Percent done of the current stage.
    pub percent: f64,
    /// Speed relative to real time.
    pub speed: f64,
    /// The attempt number.
    pub attempt: u32,
}

/// Writes one job's progress file.
#[derive(Debug)]
pub struct ProgressFile {
    path: PathBuf,
    source: String,
    last_write: Option<Instant>,
    live: Arc<Mutex<Live>>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    source: &'a str,
    stage: &'a str,
    percent: f64,
    fps: f64,
    speed: f64,
    eta_seconds: Option<f64>,
    updated_at: u64,
}

impl ProgressFile {
    /// The progress file for `output`.
    pub fn new(output: &Path, source: &Path, live: Arc<Mutex<Live>>) -> Self {
        Self {
            path: sibling(output, "", PROGRESS_SUFFIX),
            source: source.display().to_string(),
            last_write: None,
            live,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records progress; writes at most once a second unless `force`.
    pub fn update(
        &mut self,
        stage: Stage,
        done: f64,
        total: f64,
        fps: f64,
        speed: f64,
        force: bool,
    ) {
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.stage = Phase::In(stage);
            live.percent = if total > 0.0 {
                (done / total * 100.0).clamp(0.0, 100.0)
            } else {
                0.0
            };
            live.speed = speed;
        }
        if !force
            && self
                .last_write
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_write = Some(Instant::now());
        let percent = if total > 0.0 {
            (done / total * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        };
        let eta_seconds = (speed > 0.0 && total > done).then(|| (total - done) / speed);
        let snapshot = Snapshot {
            source: &self.source,
            stage: stage.as_str(),
            percent: (percent * 10.0).round() / 10.0,
            fps,
            speed,
            eta_seconds,
            updated_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let Ok(json) = serde_json::to_vec_pretty(&snapshot) else {
            return;
        };
        let tmp = sibling(&self.path, "", TEMP_SUFFIX);
        // Best effort: a monitor file must never fail a conversion.
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Removes the file (the job ended).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
