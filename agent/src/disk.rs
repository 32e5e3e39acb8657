//! The disk guard: free space of every volume holding an output folder or the state folder,
//! checked periodically and before each job. Below `critical`, intake is held (running jobs go
//! on; a job that fills the disk fails cleanly and is retried) and an alert goes out; intake is
//! released once free space is back above `critical` plus the hysteresis margin. The guard only
//! ever sets or releases its own hold, never a manual pause.
//!
//! # Theory of operation
//! One task measures every `check_interval` (`statvfs`) and stores the result in
//! `Agent::volumes` (a short-held `std::sync::Mutex`); jobs call [`check_now`] before they
//! start. Levels move with hysteresis so that a volume hovering at a threshold does not flap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use h264_config::agent::Disk;

use crate::state::Agent;

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

/// The folders to watch: every output folder and the state folder, one per volume.
fn folders(agent: &Agent) -> Vec<(u64, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: Vec<(u64, PathBuf)> = Vec::new();
    let candidates = agent
        .roots
        .iter()
        .map(|r| r.output.clone())
        .chain(std::iter::once(agent.config.agent.state_dir.clone()));
    for path in candidates {
        if let Ok(meta) = std::fs::metadata(&path) {
            if !seen.iter().any(|(dev, _)| *dev == meta.dev()) {
                seen.push((meta.dev(), path));
            }
        }
    }
    seen
}

/// Measures every volume now, updates the hold and `Agent::volumes`; true when intake may go on.
pub fn check_now(agent: &Agent) -> bool {
    let cfg = &agent.config.disk;
    let mut volumes = agent.volumes.lock().unwrap_or_else(|p| p.into_inner());
    let mut next = Vec::new();
    for (dev, path) in folders(agent) {
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
            report(agent, &path, previous, level, free, total);
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
    // Shadow work stops first: at `warn`, long before production is held at `critical`.
    agent
        .shadow
        .set_disk_ok(next.iter().all(|v| v.level == Level::Ok));
    *volumes = next;
    drop(volumes);
    if agent.intake.set_disk(critical) {
        if critical {
            tracing::error!("intake paused by the disk guard: a volume is below disk.critical");
        } else {
            tracing::warn!("intake resumed by the disk guard: free space is back");
        }
        crate::notify::disk_hold(agent, critical);
    }
    !critical
}

fn report(agent: &Agent, path: &Path, from: Level, to: Level, free: u64, total: u64) {
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
    crate::notify::disk_level(agent, path, from, to, &what);
}

/// Checks every `check_interval` until shutdown.
pub async fn run(agent: Arc<Agent>) {
    let mut tick = tokio::time::interval(agent.config.disk.check_interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let a = agent.clone();
        let _ = tokio::task::spawn_blocking(move || check_now(&a)).await;
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
