//! The disk guard: free space of every volume holding an output folder or the state folder,
//! checked periodically and before each job. Below `critical`, intake is held (running jobs go
//! on; a job that fills the disk fails cleanly and is retried) and an alert goes out; intake is
//! released once free space is back above `critical` plus the hysteresis margin. The guard only
//! ever sets or releases its own hold, never a manual pause.
//!
//! # Theory of operation
//! The [`DiskGuard`] owns the volumes' last reading (a short-held `std::sync::Mutex`, never
//! held across an `.await`). One task ([`DiskGuard::run`]) measures every `check_interval`
//! (`statvfs`, on a blocking thread); jobs call [`DiskGuard::check_now`] before they start.
//! Levels move with hysteresis so that a volume hovering at a threshold does not flap. The
//! guard sets its own hold on [`Intake`] and sends its alerts through the [`Notifier`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use h264_config::agent::Disk;
use tokio_util::sync::CancellationToken;

use crate::alerts::{Alert, AlertKind};
use crate::intake::Intake;
use crate::notify::{fact, Notifier};
use crate::settings::SettingsRx;

/// How full a volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// Above the warning threshold.
    #[default]
    Ok,
    /// Below `warn`.
    Warn,
    /// Below `critical`: intake is held.
    Critical,
}

impl Level {
    /// `ok`, `warn` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Critical => "critical",
        }
    }
}

/// One volume as last measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeState {
    /// A folder on the volume (the first configured one).
    pub path: PathBuf,
    /// The device id, which identifies the volume.
    pub dev: u64,
    /// Bytes available to the agent.
    pub free: u64,
    /// The volume's size.
    pub total: u64,
    /// Its level.
    pub level: Level,
}

/// A stand-in for the free-space reading, FOR TESTS ONLY: when this environment variable names
/// a file holding `FREE TOTAL` (bytes), every volume reads as that. It exists for test runs that
/// have no right to mount a small file system (the disk tests mount a size-limited tmpfs when
/// they can); production never sets it.
pub const TEST_READING_ENV: &str = "H264_AGENT_TEST_ONLY_FREE_SPACE_FILE";

/// Free and total bytes of the volume holding `path`.
pub fn measure(path: &Path) -> std::io::Result<(u64, u64)> {
    if let Some(file) = std::env::var_os(TEST_READING_ENV) {
        let text = std::fs::read_to_string(file)?;
        let mut numbers = text.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(free)), Some(Ok(total))) = (numbers.next(), numbers.next()) {
            return Ok((free, total));
        }
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{TEST_READING_ENV}: expected `FREE TOTAL` in bytes"),
        ));
    }
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = st.fragment_size() as u64;
    Ok((
        st.blocks_available() as u64 * unit,
        st.blocks() as u64 * unit,
    ))
}

/// The level of a volume with `free` of `total` bytes that was at `previous`.
pub fn classify(previous: Level, free: u64, total: u64, cfg: &Disk) -> Level {
    let margin = cfg.hysteresis.bytes_of(total);
    let critical = cfg.critical.bytes_of(total);
    let warn = cfg.warn.bytes_of(total);
    let below = |threshold: u64, level: Level| {
        free < threshold || (previous >= level && free < threshold.saturating_add(margin))
    };
    if below(critical, Level::Critical) {
        Level::Critical
    } else if below(warn, Level::Warn) {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// The disk guard: the volumes' last reading and the hold it keeps on intake.
#[derive(Debug)]
pub struct DiskGuard {
    /// Every output folder and the state folder (one per volume is measured).
    folders: Vec<PathBuf>,
    settings: SettingsRx,
    intake: Arc<Intake>,
    notifier: Notifier,
    volumes: Mutex<Vec<VolumeState>>,
    /// Shadow work, which the guard stops first (at `warn`, long before intake is held).
    shadow: std::sync::OnceLock<Arc<crate::shadow::Shadow>>,
}

impl DiskGuard {
    /// A guard of `folders` (the output folders and the state folder), with the thresholds of
    /// `settings`' `[disk]` section.
    pub fn new(
        folders: Vec<PathBuf>,
        settings: SettingsRx,
        intake: Arc<Intake>,
        notifier: Notifier,
    ) -> Self {
        Self {
            folders,
            settings,
            intake,
            notifier,
            volumes: Mutex::new(Vec::new()),
            shadow: std::sync::OnceLock::new(),
        }
    }

    /// Lets the guard stop `shadow` work as soon as a volume leaves the `ok` level.
    pub fn guard_shadow(&self, shadow: Arc<crate::shadow::Shadow>) {
        let _ = self.shadow.set(shadow);
    }

    /// The volumes as last measured.
    pub fn volumes(&self) -> Vec<VolumeState> {
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The folders to watch, one per volume.
    fn by_volume(&self) -> Vec<(u64, PathBuf)> {
        use std::os::unix::fs::MetadataExt;
        let mut seen: Vec<(u64, PathBuf)> = Vec::new();
        for path in &self.folders {
            if let Ok(meta) = std::fs::metadata(path) {
                if !seen.iter().any(|(dev, _)| *dev == meta.dev()) {
                    seen.push((meta.dev(), path.clone()));
                }
            }
        }
        seen
    }

    /// Measures every volume now, updates the hold and the reading; true when intake may go on.
    pub fn check_now(&self) -> bool {
        let settings = self.settings.current();
        let cfg = &settings.config.disk;
        let mut volumes = self.volumes.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = Vec::new();
        for (dev, path) in self.by_volume() {
            let previous = volumes
                .iter()
                .find(|v| v.dev == dev)
                .map(|v| v.level)
                .unwrap_or_default();
            let Ok((free, total)) = measure(&path) else {
                continue;
            };
            let level = classify(previous, free, total, cfg);
            if level != previous {
                self.report(&path, previous, level, free, total);
            }
            next.push(VolumeState {
                path,
                dev,
                free,
                total,
                level,
            });
        }
        let critical = next.iter().any(|v| v.level == Level::Critical);
        if let Some(shadow) = self.shadow.get() {
            shadow.set_disk_ok(next.iter().all(|v| v.level == Level::Ok));
        }
        *volumes = next;
        drop(volumes);
        if self.intake.set_disk(critical) {
            if critical {
                tracing::error!("intake paused by the disk guard: a volume is below disk.critical");
            } else {
                tracing::warn!("intake resumed by the disk guard: free space is back");
            }
            self.alert_hold(critical);
        }
        !critical
    }

    fn report(&self, path: &Path, from: Level, to: Level, free: u64, total: u64) {
        let pct = if total > 0 {
            free as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let what = format!(
            "{} has {} MB free of {} MB ({pct:.1} %)",
            path.display(),
            free / 1_000_000,
            total / 1_000_000
        );
        match to {
            Level::Critical => {
                tracing::error!(volume = %path.display(), free, total, "disk critical: {what}")
            }
            Level::Warn if from < Level::Warn => {
                tracing::warn!(volume = %path.display(), free, total, "disk low: {what}")
            }
            _ => {
                tracing::info!(volume = %path.display(), free, total, "disk level {}: {what}", to.as_str())
            }
        }
        self.alert_level(path, from, to, &what);
    }

    /// Checks every `check_interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = self.settings.current().config.disk.check_interval.get();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let guard = self.clone();
            let _ = tokio::task::spawn_blocking(move || guard.check_now()).await;
        }
    }

    /// Alerts a volume's new level.
    fn alert_level(&self, path: &Path, from: Level, to: Level, what: &str) {
        let kind = match to {
            Level::Critical => AlertKind::DiskCritical,
            Level::Warn if from < Level::Warn => AlertKind::DiskWarn,
            _ => return,
        };
        let action = if to == Level::Critical {
            "no new jobs start until free space is back above disk.critical plus disk.hysteresis; running jobs go on"
        } else {
            "nothing yet: intake stops if free space falls below disk.critical"
        };
        self.notifier.send(Alert {
            kind,
            subject: format!("disk {}: {}", to.as_str(), path.display()),
            facts: vec![fact("volume", path.display()), fact("free space", what)],
            action: action.into(),
            dedup_key: format!("{}:{}", kind.as_str(), path.display()),
        });
    }

    /// Alerts the hold set or released.
    fn alert_hold(&self, held: bool) {
        let (kind, subject, action) = if held {
            (
                AlertKind::PausedByDiskGuard,
                "intake paused: a volume is below disk.critical",
                "no new jobs start; the agent resumes by itself when space comes back",
            )
        } else {
            (
                AlertKind::ResumedByDiskGuard,
                "intake resumed: free space is back",
                "jobs start again",
            )
        };
        self.notifier.send(Alert {
            kind,
            subject: subject.into(),
            facts: Vec::new(),
            action: action.into(),
            dedup_key: kind.as_str().into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use h264_config::FreeSpace;

    #[test]
    fn levels_move_with_hysteresis() {
        let cfg = Disk {
            warn: FreeSpace::Percent(10.0),
            critical: FreeSpace::Percent(5.0),
            hysteresis: FreeSpace::Percent(1.0),
            ..Disk::default()
        };
        let total = 1000;
        assert_eq!(classify(Level::Ok, 200, total, &cfg), Level::Ok);
        assert_eq!(classify(Level::Ok, 90, total, &cfg), Level::Warn);
        assert_eq!(classify(Level::Warn, 40, total, &cfg), Level::Critical);
        assert_eq!(
            classify(Level::Critical, 55, total, &cfg),
            Level::Critical,
            "inside the margin"
        );
        assert_eq!(classify(Level::Critical, 65, total, &cfg), Level::Warn);
        assert_eq!(
            classify(Level::Warn, 105, total, &cfg),
            Level::Warn,
            "inside the margin"
        );
        assert_eq!(classify(Level::Warn, 120, total, &cfg), Level::Ok);
    }
}
