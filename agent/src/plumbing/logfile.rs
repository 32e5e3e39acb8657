//! Log files: one file per period (`h264-agent.2026-11-25.log`, hourly and minutely periods add
//! `-HH` and `-HH-MM`, all UTC), a new file when the period changes, and only the newest `keep`
//! files kept. The clock is injectable so rotation and pruning are tested without waiting.
//!
//! # Theory of operation
//! `tracing-subscriber` asks [`RollingFile`] for a writer per event; each write takes the one
//! mutex, rolls over if the clock has moved to a new period, and appends. Pruning runs at each
//! roll-over. A failing log file never stops the agent: errors are reported once on stderr.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use h264_config::agent::Rotation;

/// The clock log files roll over with.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Rolling log files in one folder.
pub struct RollingFile {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RollingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingFile").finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    prefix: String,
    rotation: Rotation,
    keep: usize,
    clock: Clock,
    period: String,
    file: Option<File>,
    failed: bool,
}

impl RollingFile {
    /// Log files named `PREFIX.PERIOD.log` in `dir` (created), on the system clock.
    pub fn new(dir: &Path, prefix: &str, rotation: Rotation, keep: usize) -> io::Result<Self> {
        Self::with_clock(dir, prefix, rotation, keep, Arc::new(SystemTime::now))
    }

    /// The same, on `clock`.
    pub fn with_clock(
        dir: &Path,
        prefix: &str,
        rotation: Rotation,
        keep: usize,
        clock: Clock,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                prefix: prefix.to_string(),
                rotation,
                keep: keep.max(1),
                clock,
                period: String::new(),
                file: None,
                failed: false,
            }),
        })
    }
}

impl Inner {
    fn roll_if_needed(&mut self) -> io::Result<()> {
        let period = period_of((self.clock)(), self.rotation);
        if self.file.is_some() && period == self.period {
            return Ok(());
        }
        let path = self.dir.join(format!("{}.{period}.log", self.prefix));
        self.file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        self.period = period;
        self.prune();
        Ok(())
    }

    /// Removes the oldest files beyond `keep` (names sort by time).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let start = format!("{}.", self.prefix);
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.starts_with(&start) && name.ends_with(".log")
            })
            .collect();
        logs.sort();
        let excess = logs.len().saturating_sub(self.keep);
        for old in &logs[..excess] {
            let _ = std::fs::remove_file(old);
        }
    }
}

impl Write for &RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let result = inner
            .roll_if_needed()
            .and_then(|()| match inner.file.as_mut() {
                Some(f) => f.write_all(buf),
                None => Ok(()),
            });
        if let Err(e) = result {
            if !inner.failed {
                inner.failed = true;
                eprintln!(
                    "h264-agent: cannot write the log file in {}: {e}",
                    inner.dir.display()
                );
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RollingFile {
    type Writer = &'a RollingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// The UTC period a time falls in: `YYYY-MM-DD`, `YYYY-MM-DD-HH` or `YYYY-MM-DD-HH-MM`.
pub fn period_of(t: SystemTime, rotation: Rotation) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    match rotation {
        Rotation::Daily => format!("{y:04}-{m:02}-{d:02}"),
        Rotation::Hourly => format!("{y:04}-{m:02}-{d:02}-{hh:02}"),
        Rotation::Minutely => format!("{y:04}-{m:02}-{d:02}-{hh:02}-{mm:02}"),
    }
}

/// Year, month, day of a count of days since 1970-01-01 (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn periods_are_utc_calendar_names() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000); // 2026-11-18T11:06:40Z
        assert_eq!(period_of(t, Rotation::Daily), "2026-11-18");
        assert_eq!(period_of(t, Rotation::Hourly), "2026-11-18-11");
        assert_eq!(period_of(t, Rotation::Minutely), "2026-11-18-11-06");
        assert_eq!(period_of(UNIX_EPOCH, Rotation::Daily), "1970-01-01");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(period_of(leap, Rotation::Daily), "2000-02-29");
    }

    #[test]
    fn files_rotate_with_the_clock_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicU64::new(1_795_000_000));
        let clock_now = now.clone();
        let clock: Clock =
            Arc::new(move || UNIX_EPOCH + Duration::from_secs(clock_now.load(Ordering::SeqCst)));
        let logs =
            RollingFile::with_clock(dir.path(), "h264-agent", Rotation::Daily, 3, clock).unwrap();
        for day in 0..5u64 {
            now.store(1_795_000_000 + day * 86_400, Ordering::SeqCst);
            writeln!(&logs, "line of day {day}").unwrap();
            writeln!(&logs, "second line of day {day}").unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "h264-agent.2026-11-20.log",
                "h264-agent.2026-11-21.log",
                "h264-agent.2026-11-22.log"
            ]
        );
        let last = std::fs::read_to_string(dir.path().join("h264-agent.2026-11-22.log")).unwrap();
        assert_eq!(last, "line of day 4\nsecond line of day 4\n");
    }
}
