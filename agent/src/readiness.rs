//! Readiness: has the recorder really finished writing this file, and is it valid media?
//!
//! Layered as the recorders demand. Cheap checks run in every reconcile: size and modification
//! time unchanged for `stable_for` ([`Stability`]), a modification time older than the grace
//! period, and no process holding the file open for writing ([`open_for_writing`]). The
//! expensive checks run in the job's first stage ([`validate`]): ffprobe must find a video stream
//! (of the programme asked for, in a multiplex) that is not scrambled, with a duration above the
//! minimum; a transport stream cut off mid-packet is trimmed to its whole packets (or refused).
//! The damage the transcode's own FFmpeg reports must stay within the tolerance (see
//! [`crate::damage`]).
//!
//! Stability is measured from the file's modification time or from the moment the agent first
//! saw the current size and time, whichever is later: a file untouched for an hour is stable at
//! once, and a file still growing is not stable until `stable_for` after its last change.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use h264_config::agent::{PartialPacket, Program, Readiness};
use tokio_util::sync::CancellationToken;

use crate::key::{Fingerprint, SourceKey};
use crate::probe::{probe_programme_json, Choice, MediaInfo, ProbeError};

/// What the cheap checks say about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Size and time have been stable long enough and nobody writes to it.
    Ready,
    /// Not yet; look again after the given delay.
    Wait {
        /// Why not yet.
        reason: WaitReason,
        /// When to look again.
        recheck_in: Duration,
    },
}

/// Why a file is not ready yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Its size or time changed since the last look.
    Changing,
    /// Unchanged, but not for `readiness.stable_for` yet.
    NotStableLongEnough,
    /// Modified within `readiness.mtime_grace`.
    ModifiedRecently,
    /// A process holds it open for writing (described).
    OpenForWriting(String),
}

impl WaitReason {
    /// Whether something is still writing it (`--once` skips such a file rather than wait).
    pub fn is_busy(&self) -> bool {
        matches!(self, WaitReason::Changing | WaitReason::OpenForWriting(_))
    }
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::Changing => f.write_str("still growing or changing"),
            WaitReason::NotStableLongEnough => f.write_str("not stable long enough"),
            WaitReason::ModifiedRecently => f.write_str("modified too recently"),
            WaitReason::OpenForWriting(writer) => write!(f, "open for writing by {writer}"),
        }
    }
}

/// Tracks when each file's current fingerprint was first seen, and when the agent first noticed
/// the file at all (for the job trace's `readiness.wait_secs`).
#[derive(Debug, Default)]
pub struct Stability {
    seen: HashMap<SourceKey, (Fingerprint, Instant)>,
    /// When each file was first noticed; `None` once a job took the wait.
    noticed: HashMap<SourceKey, Option<Instant>>,
}

impl Stability {
    /// Records the current fingerprint and says whether it has been stable for `stable_for`.
    /// Returns the time left when not, and whether the fingerprint changed since the last look.
    pub fn observe(
        &mut self,
        key: &SourceKey,
        fp: Fingerprint,
        mtime: SystemTime,
        stable_for: Duration,
    ) -> (Option<Duration>, bool) {
        let now = Instant::now();
        let age = SystemTime::now()
            .duration_since(mtime)
            .unwrap_or(Duration::ZERO);
        let (changed, since) = match self.seen.get(key) {
            Some((old, since)) if *old == fp => (false, *since),
            Some(_) => (true, now),
            // First look: the file has been unchanged at least since its modification time.
            None => (false, now.checked_sub(age).unwrap_or(now)),
        };
        self.seen.insert(key.clone(), (fp, since));
        self.noticed.entry(key.clone()).or_insert(Some(now));
        let stable = now.duration_since(since);
        if stable >= stable_for {
            (None, changed)
        } else {
            (Some(stable_for - stable), changed)
        }
    }

    /// Forgets a key (deleted, or finished).
    pub fn forget(&mut self, key: &SourceKey) {
        self.seen.remove(key);
        self.noticed.remove(key);
    }

    /// How long ago the agent first noticed `key` (since it was last forgotten), once: later
    /// calls return `None` until the key is forgotten, so only a file's first job after it
    /// became ready reports the wait, not its retries.
    pub fn take_wait(&mut self, key: &SourceKey) -> Option<Duration> {
        self.noticed.get_mut(key)?.take().map(|at| at.elapsed())
    }
}

/// The cheap checks, in order: stability and the modification-time grace here (quick, no
/// I/O: the caller may hold the record's lock), then [`check_writers`].
pub fn settle_stability(
    stability: &mut Stability,
    key: &SourceKey,
    meta: &std::fs::Metadata,
    cfg: &Readiness,
) -> Settled {
    let fp = Fingerprint::of(meta);
    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let (left, changed) = stability.observe(key, fp, mtime, cfg.stable_for.get());
    if let Some(left) = left {
        let reason = if changed {
            WaitReason::Changing
        } else {
            WaitReason::NotStableLongEnough
        };
        return Settled::Wait {
            reason,
            recheck_in: left,
        };
    }
    let age = SystemTime::now()
        .duration_since(mtime)
        .unwrap_or(Duration::ZERO);
    let grace = cfg.mtime_grace.get();
    if age < grace {
        return Settled::Wait {
            reason: WaitReason::ModifiedRecently,
            recheck_in: grace - age,
        };
    }
    Settled::Ready
}

/// The last check, when `readiness.open_file_check` is on: nobody holds the file open for
/// writing. It may walk every process's open files (`/proc/*/fd`): call it without holding a
/// lock other tasks wait on.
pub fn check_writers(key: &SourceKey, cfg: &Readiness) -> Settled {
    if cfg.open_file_check {
        if let Some(writer) = open_for_writing(&key.path()) {
            return Settled::Wait {
                reason: WaitReason::OpenForWriting(writer),
                recheck_in: Duration::from_secs(1),
            };
        }
    }
    Settled::Ready
}

/// Which process holds `path` open for writing, if any (described for the log).
#[cfg(target_os = "linux")]
pub fn open_for_writing(path: &Path) -> Option<String> {
    let target = std::fs::canonicalize(path).ok()?;
    let procs = std::fs::read_dir("/proc").ok()?;
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if link != target {
                continue;
            }
            let info = entry.path().join("fdinfo").join(fd.file_name());
            if std::fs::read_to_string(info).is_ok_and(|text| fdinfo_writable(&text)) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("process {pid} ({})", comm.trim()));
            }
        }
    }
    None
}

/// Whether an `fdinfo` text's `flags:` (octal) open the file for writing (O_WRONLY or O_RDWR).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn fdinfo_writable(text: &str) -> bool {
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| flags & 0o3 != 0)
}

/// Which process holds `path` open for writing, if any: on Windows, an open that shares nothing
/// fails with a sharing violation while a recorder still has the file.
#[cfg(windows)]
pub fn open_for_writing(path: &Path) -> Option<String> {
    use std::os::windows::fs::OpenOptionsExt;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    match std::fs::OpenOptions::new()
        .read(true)
        .share_mode(0)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION) => {
            Some("another process (sharing violation)".into())
        }
        _ => None,
    }
}

/// Elsewhere there is no portable way to ask; size and time stability carry the load.
#[cfg(not(any(target_os = "linux", windows)))]
pub fn open_for_writing(_path: &Path) -> Option<String> {
    None
}

/// Why a recording is not valid media (not retried until the file changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A recording the quick checks passed, and how FFmpeg is to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// What ffprobe says, for the programme converted, with the durations measured.
    pub info: MediaInfo,
    /// A transport stream that ended mid-packet, trimmed to its whole packets.
    pub trim: Option<Trim>,
    /// Its caption tracks and start time, from the same ffprobe run.
    pub captions: crate::captions::Plan,
}

/// A cut tail dropped: FFmpeg reads the source up to its last whole packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// Bytes FFmpeg reads, from the start.
    pub keep: u64,
    /// Bytes of the cut packet, dropped.
    pub dropped: u64,
    /// The packet size (188, 192 or 204).
    pub packet: u64,
}

impl Trim {
    /// The warning, as the log, the trace and the alert give it.
    pub fn warning(&self) -> String {
        format!(
            "ended mid-packet: {} bytes dropped (the last {}-byte packet was cut short; the {} \
             bytes of whole packets before it are converted)",
            self.dropped, self.packet, self.keep
        )
    }
}

/// The quick checks of the job's first stage: not empty, readable by ffprobe, the programme
/// asked for (in a multiplex), not scrambled, a video stream, whole packets (a cut tail is
/// trimmed or refused, as `partial_packet` says), a video duration over the minimum.
/// [`validate_deep`] does the rest.
pub async fn validate(
    ffprobe: &Path,
    path: &Path,
    cfg: &Readiness,
    program: Option<&Program>,
    cancel: &CancellationToken,
) -> Result<Result<Ready, Invalid>, crate::plumbing::child::RunError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return Ok(Err(Invalid("the file is empty (0 bytes)".into())));
    }
    let timeout = cfg.probe_timeout.get();
    let choice = match program {
        None => Choice::FirstWithVideo,
        Some(Program::Number(n)) => Choice::Number(*n),
        Some(Program::Name(name)) => Choice::Name(name.clone()),
    };
    let (mut info, json) = match probe_programme_json(ffprobe, path, &choice, timeout, cancel).await
    {
        Ok(probed) => probed,
        Err(ProbeError::Unreadable(why)) => {
            return Ok(Err(Invalid(format!(
                "not a readable video recording: {why}"
            ))))
        }
        Err(ProbeError::NoSuchProgramme(why)) => return Ok(Err(Invalid(why))),
        Err(ProbeError::Run(e)) => return Err(e),
    };
    let of_programme = match &info.program {
        Some(p) => format!(", programme {p}"),
        None => String::new(),
    };
    let mut trim = None;
    // FFmpeg reads a transport stream whose packets this cannot find (junk before the first
    // packets), so such a file is left to it.
    let layout = if info.format_name.split(',').any(|f| f == "mpegts") {
        crate::ts::layout_of(path).map_err(io_error)?
    } else {
        None
    };
    if let Some(layout) = layout {
        if let Some(why) = scrambled(path, layout, &info).await? {
            return Ok(Err(Invalid(format!("scrambled: {why}{of_programme}"))));
        }
        let tail = layout.tail(size);
        if tail > 0 {
            if cfg.partial_packet == PartialPacket::Fail {
                return Ok(Err(Invalid(format!(
                    "truncated: the transport stream ends in the middle of a packet (its last \
                     {tail} bytes are not a whole {}-byte packet); the recording was cut off \
                     (readiness.partial_packet = \"fail\")",
                    layout.packet
                ))));
            }
            trim = Some(Trim {
                keep: size - tail,
                dropped: tail,
                packet: layout.packet,
            });
        }
    }
    if info.video.is_none() {
        let why = if !info.audio.is_empty() {
            format!(
                "audio-only: no video stream, {} audio stream(s) (container {}{of_programme})",
                info.audio.len(),
                info.format_name
            )
        } else if info.other_streams > 0 {
            format!(
                "data-only: no video or audio stream, {} data stream(s) (container {}{of_programme})",
                info.other_streams, info.format_name
            )
        } else {
            format!(
                "no video or audio stream (container {}{of_programme})",
                info.format_name
            )
        };
        return Ok(Err(Invalid(why)));
    }
    let fragmented =
        info.format_name.contains("mp4") && crate::probe::is_fragmented_mp4(path).unwrap_or(false);
    if fragmented {
        crate::probe::measure_fragmented(ffprobe, path, &mut info, timeout, cancel).await?;
    }
    let min = cfg.min_duration.get().as_secs_f64();
    let secs = info.video_secs();
    if secs < min {
        return Ok(Err(Invalid(format!(
            "duration {secs:.2}s is below the minimum of {min:.2}s (readiness.min_duration)"
        ))));
    }
    Ok(Ok(Ready {
        info,
        trim,
        captions: crate::captions::plan_from_probe(&json),
    }))
}

/// Reading the transport stream's packets failed.
fn io_error(source: std::io::Error) -> crate::plumbing::child::RunError {
    crate::plumbing::child::RunError::Io {
        program: "the transport stream check".into(),
        source,
    }
}

/// Why the programme's video or audio is scrambled (most of its packets in the samples), if
/// it is.
async fn scrambled(
    path: &Path,
    layout: crate::ts::Layout,
    info: &MediaInfo,
) -> Result<Option<String>, crate::plumbing::child::RunError> {
    let mut named: Vec<(String, u16)> = Vec::new();
    if let Some(pid) = info.video.as_ref().and_then(|v| v.pid) {
        named.push(("the video".into(), pid));
    }
    for (i, a) in info.audio.iter().enumerate() {
        if let Some(pid) = a.pid {
            named.push((format!("audio stream {}", i + 1), pid));
        }
    }
    if named.is_empty() {
        return Ok(None);
    }
    let pids: Vec<u16> = named.iter().map(|(_, pid)| *pid).collect();
    let path = path.to_path_buf();
    let counts = tokio::task::spawn_blocking(move || crate::ts::scrambling(&path, layout, &pids))
        .await
        .map_err(|e| io_error(std::io::Error::other(e)))?
        .map_err(io_error)?;
    let hit: Vec<String> = named
        .iter()
        .zip(&counts)
        .filter(|(_, c)| c.mostly_scrambled())
        .map(|((what, pid), c)| {
            format!(
                "{what} (PID {pid:#x}: {} of {} packets)",
                c.scrambled, c.packets
            )
        })
        .collect();
    Ok((!hit.is_empty()).then(|| {
        format!(
            "{} is encrypted (conditional access); it cannot be converted without the \
             broadcaster's keys",
            hit.join(" and ")
        )
    }))
}

/// The check that reads the start of the recording beside the transcode: whether its first
/// frames carry closed captions (the video of the programme converted, in a multiplex). The
/// recording's damage is no longer read in a second pass: the transcode counts it in its own
/// FFmpeg log (see [`crate::damage`]).
pub async fn validate_deep(
    ffprobe: &Path,
    path: &Path,
    info: &MediaInfo,
    cfg: &Readiness,
    cancel: &CancellationToken,
) -> Result<bool, crate::plumbing::child::RunError> {
    let timeout = cfg.probe_timeout.get();
    let stream = match (&info.program, &info.video) {
        (Some(_), Some(video)) => video.index.to_string(),
        _ => "v:0".to_owned(),
    };
    crate::probe::has_closed_captions_in(ffprobe, path, &stream, timeout, cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_a_file_being_written_is_busy() {
        let cases = [
            (WaitReason::Changing, "still growing or changing", true),
            (
                WaitReason::NotStableLongEnough,
                "not stable long enough",
                false,
            ),
            (WaitReason::ModifiedRecently, "modified too recently", false),
            (
                WaitReason::OpenForWriting("pid 7 (recorder)".into()),
                "open for writing by pid 7 (recorder)",
                true,
            ),
        ];
        for (reason, text, busy) in cases {
            assert_eq!(
                (reason.to_string().as_str(), reason.is_busy()),
                (text, busy)
            );
        }
    }

    #[test]
    fn fdinfo_flags() {
        assert!(fdinfo_writable("pos:\t0\nflags:\t0100001\nmnt_id:\t1\n"));
        assert!(fdinfo_writable("pos:\t0\nflags:\t02\n"));
        assert!(!fdinfo_writable("pos:\t0\nflags:\t0100000\n"));
    }

    #[test]
    fn old_files_are_stable_at_once_and_changes_restart_the_clock() {
        let mut s = Stability::default();
        let key = SourceKey::new(Arc::from(Path::new("/in")), "a.ts".into());
        let fp = Fingerprint {
            size: 1,
            mtime_ns: 1,
            inode: 1,
        };
        let old = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(
            s.observe(&key, fp, old, Duration::from_secs(10)),
            (None, false)
        );
        assert!(s.take_wait(&key).is_some());
        assert_eq!(
            s.take_wait(&key),
            None,
            "only the first job reports the wait"
        );
        let grown = Fingerprint { size: 2, ..fp };
        let (left, changed) = s.observe(&key, grown, SystemTime::now(), Duration::from_secs(10));
        assert!(changed);
        assert!(left.unwrap() > Duration::from_secs(9));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_our_own_writer() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.ts");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"x").unwrap();
        assert!(open_for_writing(&path).is_some());
        drop(f);
        assert!(open_for_writing(&path).is_none());
        let _reader = std::fs::File::open(&path).unwrap();
        assert!(open_for_writing(&path).is_none(), "readers do not count");
    }
}
