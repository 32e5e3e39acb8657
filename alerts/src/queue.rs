//! The dead-letter queue: every e-mail is written here before any delivery attempt, one JSON
//! file per message, and removed once the SMTP server accepted it.
//!
//! # Theory of operation
//! A file is named `<ms>-<seq>-<id>.json`, all zero-padded: `<ms>-<seq>` orders the queue (the
//! Unix time in milliseconds the message was queued and a sequence number, so the names sort
//! oldest first), `<id>` is a sequence number never reused. A summary takes the order of the
//! oldest message it replaces, so it sorts first and goes out first.
//! Every write is atomic (`h264_support::write_atomic`: a `.<name>.<pid>.tmp`, fsync, rename, fsync of the folder): a crash leaves
//! the old file or the new one, never half of one; leftover temporaries are removed at load.
//! A file that does not parse is logged and renamed to `<name>.json.damaged`, never retried.
//!
//! The messages are also held in memory, behind a `std` mutex that is held for a few file
//! operations and never across an `.await`. When a file cannot be written (full disk: the very
//! moment a disk alert matters), the message is kept in memory only, delivered all the same,
//! and written again at its next failure.
//!
//! The queue holds at most `limit` messages. Past it, the oldest are replaced by one summary
//! message that lists their subjects and times (a summary that is itself replaced passes its
//! list on). The summary is written before the files it replaces are removed, so a crash in
//! between duplicates a subject but loses none.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The queue's folder under the program's state directory.
pub const DIR_NAME: &str = "alerts-queue";

/// One queued e-mail, as stored in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The alert kind's name (`file_failed`...) or `queue_summary`.
    pub kind: String,
    /// When the message was queued (Unix milliseconds).
    pub created_ms: u64,
    /// The e-mail's subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// The e-mail's `Message-ID`, the same on every attempt.
    pub message_id: String,
    /// Failed delivery attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (Unix milliseconds).
    #[serde(default)]
    pub next_attempt_ms: u64,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// For a summary: the messages it replaced.
    #[serde(default)]
    pub stands_for: Vec<Dropped>,
}

/// A message that a summary replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// When it was queued (Unix milliseconds).
    pub created_ms: u64,
    /// Its subject.
    pub subject: String,
}

/// What [`Queue::open`] found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Messages loaded.
    pub loaded: usize,
    /// Files that did not parse, moved aside to these paths.
    pub damaged: Vec<PathBuf>,
    /// Temporaries of interrupted writes, removed.
    pub temporaries: usize,
}

#[derive(Debug)]
struct Slot {
    message: Message,
    on_disk: bool,
}

#[derive(Debug, Default)]
struct Inner {
    slots: BTreeMap<String, Slot>,
    next_seq: u64,
}

/// The queue of undelivered messages.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// Unix milliseconds of `t`.
pub fn unix_ms(t: SystemTime) -> u64 {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl Queue {
    /// Opens (creates) the queue in `dir` and loads what an earlier run left. A next-attempt
    /// time further ahead than `max_delay` (the clock was changed) is brought back to it.
    /// Fails only when the folder cannot be created or listed; bad files are logged and
    /// skipped.
    pub fn open(dir: &Path, max_delay: Duration) -> io::Result<(Queue, LoadReport)> {
        std::fs::create_dir_all(dir)?;
        let mut report = LoadReport::default();
        let mut inner = Inner::default();
        let latest = unix_ms(SystemTime::now()).saturating_add(unix_millis(max_delay));
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if file.starts_with('.') && file.ends_with(".tmp") {
                match std::fs::remove_file(&path) {
                    Ok(()) => report.temporaries += 1,
                    Err(error) => tracing::warn!(path = %path.display(), %error,
                        "alert queue: cannot remove an interrupted write"),
                }
                continue;
            }
            let Some(name) = file.strip_suffix(".json") else {
                continue;
            };
            match load(&path, name) {
                Ok((seq, mut message)) => {
                    message.next_attempt_ms = message.next_attempt_ms.min(latest);
                    inner.next_seq = inner.next_seq.max(seq + 1);
                    let slot = Slot {
                        message,
                        on_disk: true,
                    };
                    inner.slots.insert(name.to_owned(), slot);
                    report.loaded += 1;
                }
                Err(reason) => {
                    // Moved aside, or at least skipped: a bad file never stops the agent.
                    let aside = path.with_file_name(format!("{file}.damaged"));
                    match std::fs::rename(&path, &aside) {
                        Ok(()) => tracing::error!(path = %path.display(),
                            moved_to = %aside.display(), %reason,
                            "alert queue: damaged message file moved aside"),
                        Err(error) => tracing::error!(path = %path.display(), %reason, %error,
                            "alert queue: damaged message file skipped (cannot move it aside)"),
                    }
                    report.damaged.push(aside);
                }
            }
        }
        let queue = Queue {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
        };
        Ok((queue, report))
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `message`. When that makes more than `limit` messages (at least 2: a summary and
    /// the newest), the oldest are replaced by `summarize(replaced)`; returns what it replaced.
    pub fn push(
        &self,
        message: Message,
        limit: usize,
        summarize: impl FnOnce(&[Dropped]) -> Message,
    ) -> Vec<Dropped> {
        let mut inner = self.lock();
        let name = self.insert(&mut inner, message, None);
        tracing::debug!(
            name,
            depth = inner.slots.len(),
            "alert queue: message queued"
        );
        let limit = limit.max(2);
        if inner.slots.len() <= limit {
            return Vec::new();
        }
        let excess = inner.slots.len() - limit + 1;
        let victims: Vec<String> = inner.slots.keys().take(excess).cloned().collect();
        let mut dropped = Vec::new();
        for name in &victims {
            let m = &inner.slots[name].message;
            if m.stands_for.is_empty() {
                dropped.push(Dropped {
                    created_ms: m.created_ms,
                    subject: m.subject.clone(),
                });
            } else {
                dropped.extend(m.stands_for.iter().cloned());
            }
        }
        let mut summary = summarize(&dropped);
        summary.stands_for = dropped.clone();
        let order = victims[0]
            .rsplit_once('-')
            .map_or("", |(o, _)| o)
            .to_owned();
        self.insert(&mut inner, summary, Some(&order));
        for name in &victims {
            if let Some(slot) = inner.slots.remove(name) {
                if slot.on_disk {
                    remove(&self.dir, name);
                }
            }
        }
        sync_dir(&self.dir);
        dropped
    }

    /// Adds a message under a new name (sorted at `order`, `<ms>-<seq>`, or as the newest)
    /// and writes it.
    fn insert(&self, inner: &mut Inner, message: Message, order: Option<&str>) -> String {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let name = match order {
            Some(order) => format!("{order}-{seq:010}"),
            None => format!("{:016}-{seq:010}-{seq:010}", message.created_ms),
        };
        let on_disk = match write_atomic(&self.dir, &name, &message) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), name, %error,
                    "alert queue: cannot write the message; keeping it in memory only");
                false
            }
        };
        inner.slots.insert(name.clone(), Slot { message, on_disk });
        name
    }

    /// Messages whose next attempt is due at `now_ms` (`u64::MAX`: all), oldest first.
    pub fn due(&self, now_ms: u64) -> Vec<(String, Message)> {
        let inner = self.lock();
        let due = inner
            .slots
            .iter()
            .filter(|(_, s)| s.message.next_attempt_ms <= now_ms);
        due.map(|(n, s)| (n.clone(), s.message.clone())).collect()
    }

    /// The earliest next-attempt time (Unix milliseconds), if any message waits.
    pub fn next_due_ms(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .slots
            .values()
            .map(|s| s.message.next_attempt_ms)
            .min()
    }

    /// The server accepted message `name`: removes it.
    pub fn delivered(&self, name: &str) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.remove(name) {
            if slot.on_disk {
                remove(&self.dir, name);
                sync_dir(&self.dir);
            }
        }
    }

    /// Delivery of `name` failed: records the attempt and when to try again. A message that a
    /// summary replaced meanwhile stays gone.
    pub fn failed(&self, name: &str, attempts: u32, next_attempt_ms: u64, error: String) {
        let mut inner = self.lock();
        let Some(slot) = inner.slots.get_mut(name) else {
            return;
        };
        slot.message.attempts = attempts;
        slot.message.next_attempt_ms = next_attempt_ms;
        slot.message.last_error = Some(error);
        match write_atomic(&self.dir, name, &slot.message) {
            Ok(()) => slot.on_disk = true,
            Err(error) => tracing::warn!(dir = %self.dir.display(), name, %error,
                "alert queue: cannot record the failed attempt"),
        }
    }
}

fn unix_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a message file; `name` must be `<ms>-<seq>-<id>`. Returns its id.
fn load(path: &Path, name: &str) -> Result<(u64, Message), String> {
    let fields: Vec<&str> = name.split('-').collect();
    let numeric = |f: &&str| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit());
    let seq = (fields.len() == 3 && fields.iter().all(numeric))
        .then(|| fields[2].parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| "the name is not <time>-<sequence>-<id>.json".to_owned())?;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let message = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok((seq, message))
}

fn write_atomic(dir: &Path, name: &str, message: &Message) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(message)?;
    h264_support::write_atomic(&dir.join(format!("{name}.json")), &bytes)
}

/// Makes a rename or removal in `dir` durable (best effort: the caller has nothing better to do
/// when it fails).
fn sync_dir(dir: &Path) {
    let _ = h264_support::sync_dir(dir);
}

fn remove(dir: &Path, name: &str) {
    let path = dir.join(format!("{name}.json"));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(path = %path.display(), %error,
            "alert queue: cannot remove a delivered message file (it will be sent again)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(subject: &str, created_ms: u64) -> Message {
        Message {
            kind: "file_failed".into(),
            created_ms,
            subject: subject.into(),
            text: format!("text of {subject}"),
            html: format!("<p>{subject}</p>"),
            message_id: format!("<{subject}@test>"),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            stands_for: Vec::new(),
        }
    }

    fn summary(dropped: &[Dropped]) -> Message {
        message(&format!("{} dropped", dropped.len()), 99)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn messages_survive_a_reopen_with_their_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = Queue::open(dir.path(), HOUR).unwrap();
        q.push(message("one", 1), 10, summary);
        q.push(message("two", 2), 10, summary);
        let (name, _) = q.due(u64::MAX).remove(0);
        let next = unix_ms(SystemTime::now()) + 60_000;
        q.failed(&name, 3, next, "connection refused".into());
        assert!(files(dir.path()).iter().all(|f| f.ends_with(".json")));

        let (q, report) = Queue::open(dir.path(), HOUR).unwrap();
        assert_eq!(report.loaded, 2);
        let all = q.due(u64::MAX);
        assert_eq!(all[0].1.subject, "one");
        assert_eq!(all[0].1.attempts, 3);
        assert_eq!(all[0].1.next_attempt_ms, next);
        assert_eq!(all[0].1.last_error.as_deref(), Some("connection refused"));
        assert_eq!(q.next_due_ms(), Some(0), "\"two\" is due now");
        assert_eq!(q.due(next - 1).len(), 1);
        q.delivered(&all[1].0);
        assert_eq!(q.len(), 1);
        assert_eq!(files(dir.path()).len(), 1);
    }

    #[test]
    fn past_the_limit_the_oldest_become_one_summary() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = Queue::open(dir.path(), HOUR).unwrap();
        // All in the same millisecond: the order comes from the sequence numbers.
        for n in 1..=3 {
            assert!(q.push(message(&format!("m{n}"), 7), 3, summary).is_empty());
        }
        let dropped = q.push(message("m4", 7), 3, summary);
        assert_eq!(dropped.len(), 2);
        let dropped = q.push(message("m5", 7), 3, summary);
        let subjects: Vec<&str> = dropped.iter().map(|d| d.subject.as_str()).collect();
        assert_eq!(
            subjects,
            ["m1", "m2", "m3"],
            "a replaced summary passes its list on"
        );
        assert_eq!(files(dir.path()).len(), 3);
        let all = q.due(u64::MAX);
        assert_eq!(all[0].1.subject, "3 dropped", "the summary sorts first");
        assert_eq!(all[0].1.stands_for, dropped);
        assert_eq!(all[1].1.subject, "m4");
        assert_eq!(all[2].1.subject, "m5");
    }

    #[test]
    fn damaged_files_are_moved_aside_and_temporaries_removed() {
        let dir = tempfile::tempdir().unwrap();
        let torn = "0000000000000001-0000000000-0000000000.json";
        std::fs::write(dir.path().join(torn), "{ not json").unwrap();
        std::fs::write(dir.path().join("whatever.json"), "{}").unwrap();
        std::fs::write(
            dir.path().join(".0000000000000002-0000000001.json.tmp"),
            "{",
        )
        .unwrap();
        let (q, report) = Queue::open(dir.path(), HOUR).unwrap();
        assert_eq!(q.len(), 0);
        assert_eq!(report.damaged.len(), 2);
        assert_eq!(report.temporaries, 1);
        assert_eq!(
            files(dir.path()),
            [
                "0000000000000001-0000000000-0000000000.json.damaged",
                "whatever.json.damaged"
            ]
        );
        // The damaged files stay put and the queue works on.
        q.push(message("fresh", 5), 10, summary);
        let (q, report) = Queue::open(dir.path(), HOUR).unwrap();
        assert_eq!((q.len(), report.damaged.len()), (1, 0));
    }

    #[test]
    fn a_next_attempt_far_ahead_is_brought_back() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = Queue::open(dir.path(), HOUR).unwrap();
        q.push(message("m", 1), 10, summary);
        let name = q.due(u64::MAX).remove(0).0;
        q.failed(&name, 1, u64::MAX / 2, "later".into());
        let (q, _) = Queue::open(dir.path(), Duration::from_secs(60)).unwrap();
        let limit = unix_ms(SystemTime::now()) + 60_000;
        assert!(q.next_due_ms().unwrap() <= limit);
    }

    #[test]
    fn a_failure_recorded_after_a_summary_replaced_the_message_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (q, _) = Queue::open(dir.path(), HOUR).unwrap();
        q.push(message("m1", 1), 2, summary);
        let first = q.due(u64::MAX).remove(0).0;
        q.push(message("m2", 2), 2, summary);
        q.push(message("m3", 3), 2, summary);
        q.failed(&first, 1, 0, "late".into());
        q.delivered(&first);
        assert_eq!(files(dir.path()).len(), 2);
        assert!(!files(dir.path()).contains(&format!("{first}.json")));
    }
}
