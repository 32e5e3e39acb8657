//! Log files: one file per period (`h264-agent.2026-11-25.log`, hourly and minutely periods add
//! `-HH` and `-HH-MM`, all UTC), a new file when the period changes, and only the newest `keep`
//! files kept. Rotation and pruning are `tracing-appender`'s; this module maps the
//! `[logging]` settings onto it.
//!
//! # Theory of operation
//! Events are formatted on the thread that logs them and handed to a dedicated writer thread
//! (`tracing_appender::non_blocking`, not lossy: a logger waits rather than drop a line when
//! the writer falls far behind), so no async worker does file I/O. The writer thread rolls the
//! file over when the period changes and prunes the oldest files then (and at start-up). The
//! [`WorkerGuard`] returned with the writer flushes what is buffered when it is dropped: keep
//! it for the life of the program.

use std::io;
use std::path::Path;

use h264_config::agent::Rotation;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{self, RollingFileAppender};

/// Rolling log files named `PREFIX.PERIOD.log` in `dir` (created), keeping the newest `keep`.
pub fn rolling_file(
    dir: &Path,
    prefix: &str,
    rotation: Rotation,
    keep: usize,
) -> io::Result<RollingFileAppender> {
    std::fs::create_dir_all(dir)?;
    let rotation = match rotation {
        Rotation::Daily => rolling::Rotation::DAILY,
        Rotation::Hourly => rolling::Rotation::HOURLY,
        Rotation::Minutely => rolling::Rotation::MINUTELY,
    };
    RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(keep.max(1))
        .build(dir)
        .map_err(io::Error::other)
}

/// The same files behind a writer thread; the guard must outlive every log line.
pub fn non_blocking(
    dir: &Path,
    prefix: &str,
    rotation: Rotation,
    keep: usize,
) -> io::Result<(NonBlocking, WorkerGuard)> {
    let files = rolling_file(dir, prefix, rotation, keep)?;
    Ok(NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("h264-log-writer")
        .finish(files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Today's UTC date as `YYYY-MM-DD` (days since 1970 to the civil calendar).
    fn today() -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_are_named_by_the_utc_period_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Files of earlier days, oldest first; and a file that is not a log of ours.
        for day in 18..=22 {
            std::fs::write(
                dir.path().join(format!("h264-agent.2026-11-{day}.log")),
                "old\n",
            )
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::write(dir.path().join("notes.txt"), "kept\n").unwrap();
        let mut logs = rolling_file(dir.path(), "h264-agent", Rotation::Daily, 3).unwrap();
        writeln!(logs, "a line of today").unwrap();
        writeln!(logs, "a second line").unwrap();
        logs.flush().unwrap();
        let current = format!("h264-agent.{}.log", today());
        assert_eq!(
            names(dir.path()),
            [
                "h264-agent.2026-11-21.log",
                "h264-agent.2026-11-22.log",
                current.as_str(),
                "notes.txt"
            ]
        );
        let text = std::fs::read_to_string(dir.path().join(&current)).unwrap();
        assert_eq!(text, "a line of today\na second line\n");
    }

    #[test]
    fn hourly_and_minutely_names_carry_the_hour_and_minute() {
        for (rotation, parts) in [(Rotation::Hourly, 4), (Rotation::Minutely, 5)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut writer, guard) = non_blocking(dir.path(), "h264-agent", rotation, 2).unwrap();
            writeln!(writer, "through the writer thread").unwrap();
            drop(guard);
            let names = names(dir.path());
            assert_eq!(names.len(), 1, "{names:?}");
            let period = names[0]
                .strip_prefix("h264-agent.")
                .and_then(|n| n.strip_suffix(".log"))
                .unwrap();
            assert!(period.starts_with(&today()[..8]), "{period}");
            assert_eq!(period.split('-').count(), parts, "{period}");
            let text = std::fs::read_to_string(dir.path().join(&names[0])).unwrap();
            assert_eq!(text, "through the writer thread\n");
        }
    }
}
