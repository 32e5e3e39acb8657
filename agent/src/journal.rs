//! The job journal: one SQLite file (WAL mode) in `state_dir` that records every job transition,
//! so that a crash or `kill -9` loses nothing.
//!
//! # Theory of operation
//! One row per source key (`root`, `rel`) holds the latest state of that source's job; the
//! `events` table keeps the history (failures, conflicts, cancellations) for operators. The
//! connection sits behind a `std::sync::Mutex`; every call is one short statement or transaction
//! and the lock is never held across an `.await`. `synchronous = FULL`: a row that says
//! `succeeded` is on disk before the agent moves on.
//!
//! The calls are synchronous and block (a disk sync, a wait for the lock or for SQLite's busy
//! timeout). Called from async code on a worker of the multi-thread runtime, each call first
//! tells tokio (`block_in_place`), which hands the worker's other tasks (the control API, the
//! session, other jobs' progress) to another thread for as long as the call blocks; the
//! callers stay as they are. Off the runtime, on a current-thread runtime (unit tests) or in
//! `spawn_blocking` the call simply runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::key::{Fingerprint, SourceKey};

/// The state of a source's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// A worker is converting it (or the agent died while it was).
    Running,
    /// The outputs are published and verified.
    Succeeded,
    /// An attempt failed; another is due at `next_attempt_at`.
    Retrying,
    /// Failed for good (invalid or corrupt input, or attempts exhausted); left alone until the
    /// source changes.
    Failed,
    /// Stopped because the source was deleted or changed during the job.
    Cancelled,
    /// Stopped by a shutdown or a crash; redone at the next start.
    Interrupted,
    /// Its output name is taken by another source; left alone until that changes.
    Conflict,
}

impl JobState {
    /// The name stored in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Retrying => "retrying",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
            JobState::Conflict => "conflict",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "retrying" => JobState::Retrying,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            "interrupted" => JobState::Interrupted,
            "conflict" => JobState::Conflict,
            _ => return None,
        })
    }
}

/// One source's job, as the journal has it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The watch root's source folder.
    pub root: String,
    /// The source's path relative to the root.
    pub rel: String,
    /// The source's fingerprint when the job last ran.
    pub fingerprint: Fingerprint,
    /// The output spec the job ran under.
    pub spec_hash: String,
    /// The latest state.
    pub state: JobState,
    /// Attempts made so far for this fingerprint.
    pub attempts: u32,
    /// When the next attempt is due (for `Retrying`).
    pub next_attempt_at: Option<SystemTime>,
    /// The output file.
    pub output: Option<PathBuf>,
    /// `encode` or `remux`, once known.
    pub mode: Option<String>,
    /// The stage that failed (`validate`, `transcode`, `verify`, `publish`).
    pub stage: Option<String>,
    /// The last error message.
    pub error: Option<String>,
    /// Source bytes.
    pub bytes_in: u64,
    /// Output bytes.
    pub bytes_out: u64,
    /// Media duration converted, in seconds.
    pub media_secs: f64,
    /// Wall time of the successful attempt, in seconds.
    pub wall_secs: f64,
    /// What the caption stage did: `not requested`, `none`, or the formats written.
    pub captions: Option<String>,
    /// The rung of the retry ladder the latest attempt ran on (0: standard; see
    /// `transcode::Rung`): the one that converted the file, or that failed it.
    pub rung: u32,
    /// Why captions of the source could not be kept, when they could not (a warning).
    pub caption_warning: Option<String>,
}

/// An attempt the journal recorded as started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The attempt number for this fingerprint and spec (from 1).
    pub attempt: u32,
    /// The rung of the retry ladder it runs on.
    pub rung: u32,
}

/// A journal operation failed.
#[derive(Debug, thiserror::Error)]
#[error("job journal {path}: {source}")]
pub struct JournalError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// The job journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// The journal's file name inside `state_dir`.
pub const FILE_NAME: &str = "journal.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    root TEXT NOT NULL,
    rel TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    spec_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    output TEXT,
    mode TEXT,
    stage TEXT,
    error TEXT,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    media_secs REAL NOT NULL DEFAULT 0,
    wall_secs REAL NOT NULL DEFAULT 0,
    captions TEXT,
    rung INTEGER NOT NULL DEFAULT 0,
    next_rung INTEGER NOT NULL DEFAULT 0,
    caption_warning TEXT,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (root, rel)
);
CREATE INDEX IF NOT EXISTS jobs_output ON jobs(output);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    root TEXT NOT NULL,
    rel TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage TEXT,
    message TEXT NOT NULL
);
";

/// Runs `f`, which blocks, so that it holds up no other task (see the module doc): on a worker
/// of a multi-thread runtime through `block_in_place`, anywhere else directly (a current-thread
/// runtime cannot hand its tasks over, and `block_in_place` would panic there).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl Journal {
    /// Opens (or creates) the journal in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let path = state_dir.join(FILE_NAME);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        migrate(&conn).map_err(err)?;
        Ok(Journal {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, JournalError> {
        blocking(|| {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn).map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
        })
    }

    /// Runs `f` in a transaction of its own, or in the enclosing [`Journal::bulk`] one.
    fn tx<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, JournalError> {
        self.with(|c| {
            if !c.is_autocommit() {
                return f(c);
            }
            let tx = c.unchecked_transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` inside one transaction, so that many records cost one disk sync (imports,
    /// benchmarks). Every call inside `f` joins it.
    pub fn bulk<T>(&self, f: impl FnOnce() -> T) -> T {
        let _ = self.with(|c| c.execute_batch("BEGIN"));
        let out = f();
        let _ = self.with(|c| c.execute_batch("COMMIT"));
        out
    }

    /// The record of one source, if any.
    pub fn get(&self, key: &SourceKey) -> Result<Option<JobRecord>, JournalError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE root = ?1 AND rel = ?2"),
                params![key.root_str(), key.rel_str()],
                row_to_record,
            )
            .optional()
        })
    }

    /// Every record, ordered by root and path.
    pub fn all(&self) -> Result<Vec<JobRecord>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY root, rel"))?;
            let rows = stmt.query_map([], row_to_record)?;
            rows.collect()
        })
    }

    /// The source that published `output`, if the journal knows one.
    pub fn owner_of(&self, output: &Path) -> Result<Option<(String, String)>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT root, rel FROM jobs WHERE output = ?1 AND state = 'succeeded' LIMIT 1",
                params![output.to_string_lossy()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Records that an attempt starts. A new fingerprint or spec resets the attempt counter and
    /// the retry ladder; otherwise the attempt runs on the rung the last one climbed to.
    pub fn start(
        &self,
        key: &SourceKey,
        fp: &Fingerprint,
        spec_hash: &str,
        output: &Path,
    ) -> Result<Started, JournalError> {
        self.tx(|tx| {
            let previous: Option<(i64, i64, i64, String, u32, u32)> = tx
                .query_row(
                    "SELECT size, mtime_ns, inode, spec_hash, attempts, next_rung FROM jobs
                     WHERE root = ?1 AND rel = ?2",
                    params![key.root_str(), key.rel_str()],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .optional()?;
            let same = previous.as_ref().is_some_and(|(s, m, i, h, ..)| {
                Fingerprint::from_db(*s, *m, *i) == *fp && h == spec_hash
            });
            let (attempt, rung) = match previous {
                Some(p) if same => (p.4 + 1, p.5),
                _ => (1, 0),
            };
            tx.execute(
                "INSERT INTO jobs (root, rel, size, mtime_ns, inode, spec_hash, state, attempts,
                    next_attempt_ms, output, mode, stage, error, rung, next_rung, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, NULL, ?8, NULL, NULL, NULL, ?10,
                    ?10, ?9)
                 ON CONFLICT (root, rel) DO UPDATE SET size = ?3, mtime_ns = ?4, inode = ?5,
                    spec_hash = ?6, state = 'running', attempts = ?7, next_attempt_ms = NULL,
                    output = ?8, mode = NULL, stage = NULL, error = NULL, rung = ?10,
                    next_rung = ?10, updated_ms = ?9",
                params![
                    key.root_str(),
                    key.rel_str(),
                    fp.size as i64,
                    fp.mtime_ns,
                    fp.inode as i64,
                    spec_hash,
                    attempt,
                    output.to_string_lossy(),
                    now_ms(),
                    rung
                ],
            )?;
            Ok(Started { attempt, rung })
        })
    }

    /// Makes the next attempt of `key` run on rung `rung` of the retry ladder.
    pub fn climb(&self, key: &SourceKey, rung: u32) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET next_rung = ?3 WHERE root = ?1 AND rel = ?2",
                params![key.root_str(), key.rel_str(), rung],
            )?;
            Ok(())
        })
    }

    /// Records an event for the operator about `key` that changes no state (a conversion that
    /// needed a tolerant rung of the retry ladder, a cut tail dropped).
    pub fn note(
        &self,
        key: &SourceKey,
        kind: &str,
        stage: &str,
        message: &str,
    ) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO events (at_ms, root, rel, kind, stage, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    now_ms(),
                    key.root_str(),
                    key.rel_str(),
                    kind,
                    stage,
                    message
                ],
            )?;
            Ok(())
        })
    }

    /// Records a successful job.
    pub fn succeed(&self, key: &SourceKey, done: &Completed) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'succeeded', mode = ?3, stage = NULL, error = NULL,
                    bytes_in = ?4, bytes_out = ?5, media_secs = ?6, wall_secs = ?7,
                    next_attempt_ms = NULL, updated_ms = ?8, captions = ?9,
                    caption_warning = ?10
                 WHERE root = ?1 AND rel = ?2",
                params![
                    key.root_str(),
                    key.rel_str(),
                    done.mode,
                    done.bytes_in as i64,
                    done.bytes_out as i64,
                    done.media_secs,
                    done.wall_secs,
                    now_ms(),
                    done.captions,
                    done.caption_warning
                ],
            )?;
            Ok(())
        })
    }

    /// Records a job that did not succeed, and an event for the operator.
    pub fn finish_unsuccessful(
        &self,
        key: &SourceKey,
        state: JobState,
        stage: &str,
        message: &str,
        next_attempt_at: Option<SystemTime>,
    ) -> Result<(), JournalError> {
        self.tx(|tx| {
            tx.execute(
                "UPDATE jobs SET state = ?3, stage = ?4, error = ?5, next_attempt_ms = ?6,
                    updated_ms = ?7
                 WHERE root = ?1 AND rel = ?2",
                params![
                    key.root_str(),
                    key.rel_str(),
                    state.as_str(),
                    stage,
                    message,
                    next_attempt_at.map(to_ms),
                    now_ms()
                ],
            )?;
            tx.execute(
                "INSERT INTO events (at_ms, root, rel, kind, stage, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    now_ms(),
                    key.root_str(),
                    key.rel_str(),
                    state.as_str(),
                    stage,
                    message
                ],
            )?;
            Ok(())
        })
    }

    /// Records that a source's output name is taken by another source.
    pub fn record_conflict(
        &self,
        key: &SourceKey,
        fp: &Fingerprint,
        spec_hash: &str,
        output: &Path,
        message: &str,
    ) -> Result<(), JournalError> {
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO jobs (root, rel, size, mtime_ns, inode, spec_hash, state, attempts,
                    output, stage, error, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'conflict', 0, ?7, 'reconcile', ?8, ?9)
                 ON CONFLICT (root, rel) DO UPDATE SET size = ?3, mtime_ns = ?4, inode = ?5,
                    spec_hash = ?6, state = 'conflict', attempts = 0, output = ?7,
                    stage = 'reconcile', error = ?8, updated_ms = ?9",
                params![
                    key.root_str(),
                    key.rel_str(),
                    fp.size as i64,
                    fp.mtime_ns,
                    fp.inode as i64,
                    spec_hash,
                    output.to_string_lossy(),
                    message,
                    now_ms()
                ],
            )?;
            tx.execute(
                "INSERT INTO events (at_ms, root, rel, kind, stage, message)
                 VALUES (?1, ?2, ?3, 'conflict', 'reconcile', ?4)",
                params![now_ms(), key.root_str(), key.rel_str(), message],
            )?;
            Ok(())
        })
    }

    /// Marks every job left `running` by a previous process as `interrupted`; returns them.
    pub fn recover_interrupted(&self) -> Result<Vec<JobRecord>, JournalError> {
        let running: Vec<JobRecord> = self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM jobs WHERE state = 'running'"
            ))?;
            let rows = stmt.query_map([], row_to_record)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        for job in &running {
            let key = SourceKey::from_strings(&job.root, &job.rel);
            self.finish_unsuccessful(
                &key,
                JobState::Interrupted,
                "transcode",
                "the agent stopped during this job (crash, kill or power loss); it will be redone",
                None,
            )?;
        }
        Ok(running)
    }

    /// Counters over every job the journal holds.
    pub fn totals(&self) -> Result<Totals, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*),
                    COALESCE(SUM(state = 'succeeded'), 0), COALESCE(SUM(state = 'failed'), 0),
                    COALESCE(SUM(state = 'cancelled'), 0), COALESCE(SUM(state = 'conflict'), 0),
                    COALESCE(SUM(CASE WHEN state = 'succeeded' THEN bytes_in END), 0),
                    COALESCE(SUM(CASE WHEN state = 'succeeded' THEN bytes_out END), 0),
                    COALESCE(SUM(CASE WHEN state = 'succeeded' THEN media_secs END), 0),
                    COALESCE(SUM(CASE WHEN state = 'succeeded' THEN wall_secs END), 0),
                    COALESCE(SUM(captions = 'none'), 0),
                    COALESCE(SUM(captions LIKE '%(%'), 0),
                    (SELECT COUNT(*) FROM events WHERE kind = 'retrying'),
                    COALESCE(SUM(state = 'succeeded' AND caption_warning IS NOT NULL), 0)
                 FROM jobs",
                [],
                |r| {
                    Ok(Totals {
                        jobs: r.get::<_, i64>(0)? as u64,
                        succeeded: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                        cancelled: r.get::<_, i64>(3)? as u64,
                        conflicts: r.get::<_, i64>(4)? as u64,
                        bytes_in: r.get::<_, i64>(5)? as u64,
                        bytes_out: r.get::<_, i64>(6)? as u64,
                        media_secs: r.get(7)?,
                        wall_secs: r.get(8)?,
                        no_captions: r.get::<_, i64>(9)? as u64,
                        captions_extracted: r.get::<_, i64>(10)? as u64,
                        retried: r.get::<_, i64>(11)? as u64,
                        captions_lost: r.get::<_, i64>(12)? as u64,
                    })
                },
            )
        })
    }

    /// The most recent events, newest first.
    pub fn recent_events(&self, limit: u32) -> Result<Vec<Event>, JournalError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT at_ms, root, rel, kind, stage, message FROM events
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(Event {
                    at: from_ms(r.get(0)?),
                    root: r.get(1)?,
                    rel: r.get(2)?,
                    kind: r.get(3)?,
                    stage: r.get(4)?,
                    message: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// Brings a journal written by an older agent up to the current schema.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_captions: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'captions'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_captions {
        conn.execute_batch("ALTER TABLE jobs ADD COLUMN captions TEXT")?;
    }
    let has_rung: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'rung'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_rung {
        conn.execute_batch(
            "ALTER TABLE jobs ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE jobs ADD COLUMN next_rung INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    let has_warning: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'caption_warning'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_warning {
        conn.execute_batch("ALTER TABLE jobs ADD COLUMN caption_warning TEXT")?;
    }
    Ok(())
}

/// Counters over the whole journal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Sources the journal knows.
    pub jobs: u64,
    /// Converted.
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled (source deleted or changed).
    pub cancelled: u64,
    /// Output name taken by another source.
    pub conflicts: u64,
    /// Source bytes of the converted ones.
    pub bytes_in: u64,
    /// Output bytes of the converted ones.
    pub bytes_out: u64,
    /// Media seconds converted.
    pub media_secs: f64,
    /// Wall seconds spent converting them.
    pub wall_secs: f64,
    /// Converted recordings without captions.
    pub no_captions: u64,
    /// Converted recordings with caption sidecars.
    pub captions_extracted: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Converted recordings whose captions could not all be kept (each with a warning).
    pub captions_lost: u64,
}

/// Facts about a successful job.
#[derive(Debug, Clone)]
pub struct Completed {
    /// `encode` or `remux`.
    pub mode: &'static str,
    /// Source bytes.
    pub bytes_in: u64,
    /// Output bytes.
    pub bytes_out: u64,
    /// Media duration, in seconds.
    pub media_secs: f64,
    /// Wall time, in seconds.
    pub wall_secs: f64,
    /// What the caption stage did.
    pub captions: String,
    /// Why some of the source's captions could not be kept, if so.
    pub caption_warning: Option<String>,
    /// Wall time of the FFmpeg transcode (verification included), in seconds.
    pub transcode_secs: f64,
    /// CPU time of the FFmpeg transcode (user + system), in seconds; 0 when unknown.
    pub transcode_cpu_secs: f64,
    /// Wall time the caption stage added after the transcode, in seconds.
    pub captions_secs: f64,
    /// Wall time of the caption extraction itself (it may overlap the transcode), in seconds.
    pub captions_work_secs: f64,
}

/// An event for the operator (a failure, a conflict, a cancellation).
#[derive(Debug, Clone)]
pub struct Event {
    /// When it happened.
    pub at: SystemTime,
    /// The watch root.
    pub root: String,
    /// The source, relative to the root.
    pub rel: String,
    /// The job state it led to.
    pub kind: String,
    /// The stage.
    pub stage: Option<String>,
    /// What happened.
    pub message: String,
}

const COLUMNS: &str = "root, rel, size, mtime_ns, inode, spec_hash, state, attempts, \
    next_attempt_ms, output, mode, stage, error, bytes_in, bytes_out, media_secs, wall_secs, \
    captions, rung, caption_warning";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = r.get(6)?;
    Ok(JobRecord {
        root: r.get(0)?,
        rel: r.get(1)?,
        fingerprint: Fingerprint::from_db(r.get(2)?, r.get(3)?, r.get(4)?),
        spec_hash: r.get(5)?,
        state: JobState::parse(&state).unwrap_or(JobState::Interrupted),
        attempts: r.get(7)?,
        next_attempt_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
        output: r.get::<_, Option<String>>(9)?.map(PathBuf::from),
        mode: r.get(10)?,
        stage: r.get(11)?,
        error: r.get(12)?,
        bytes_in: r.get::<_, i64>(13)? as u64,
        bytes_out: r.get::<_, i64>(14)? as u64,
        media_secs: r.get(15)?,
        wall_secs: r.get(16)?,
        captions: r.get(17)?,
        rung: r.get(18)?,
        caption_warning: r.get(19)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal call that blocks (here: on the connection's lock, held by the test) on the
    /// only worker of a multi-thread runtime leaves that runtime free to run other tasks.
    #[test]
    fn a_blocked_call_holds_up_no_other_task() {
        let dir = tempfile::tempdir().unwrap();
        let journal = std::sync::Arc::new(Journal::open(dir.path()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let held = journal.conn.lock().unwrap();
        let blocked = rt.spawn({
            let journal = journal.clone();
            async move { journal.all().map(|all| all.len()) }
        });
        // Give the call time to start blocking on the one worker (not a measurement).
        std::thread::sleep(Duration::from_millis(200));
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move { tx.send("ran").unwrap() });
        let other = rx.recv_timeout(Duration::from_secs(20));
        drop(held);
        assert_eq!(
            other,
            Ok("ran"),
            "another task ran while the journal call blocked"
        );
        assert_eq!(rt.block_on(blocked).unwrap().unwrap(), 0);
    }

    fn fp(size: u64) -> Fingerprint {
        Fingerprint {
            size,
            mtime_ns: 1,
            inode: 2,
        }
    }

    #[test]
    fn attempts_count_per_fingerprint_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = SourceKey::from_strings("/in", "a b.ts");
        let out = Path::new("/out/a b.mp4");
        {
            let j = Journal::open(dir.path()).unwrap();
            assert_eq!(j.start(&key, &fp(1), "h", out).unwrap().attempt, 1);
            j.climb(&key, 1).unwrap();
            j.finish_unsuccessful(&key, JobState::Retrying, "transcode", "boom", None)
                .unwrap();
            let second = j.start(&key, &fp(1), "h", out).unwrap();
            assert_eq!(
                second,
                Started {
                    attempt: 2,
                    rung: 1
                },
                "one rung up"
            );
            assert_eq!(j.get(&key).unwrap().unwrap().rung, 1);
            // The agent dies here; the row stays `running`.
        }
        let j = Journal::open(dir.path()).unwrap();
        let interrupted = j.recover_interrupted().unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(j.get(&key).unwrap().unwrap().state, JobState::Interrupted);
        assert_eq!(
            j.start(&key, &fp(2), "h", out).unwrap(),
            Started {
                attempt: 1,
                rung: 0
            },
            "a changed source starts over, on the first rung"
        );
        j.succeed(
            &key,
            &Completed {
                mode: "encode",
                bytes_in: 1,
                bytes_out: 2,
                media_secs: 3.0,
                wall_secs: 1.0,
                captions: "none".into(),
                caption_warning: None,
                transcode_secs: 1.0,
                transcode_cpu_secs: 0.5,
                captions_secs: 0.0,
                captions_work_secs: 0.0,
            },
        )
        .unwrap();
        assert_eq!(
            j.owner_of(out).unwrap(),
            Some(("/in".into(), "a b.ts".into()))
        );
        assert_eq!(j.recent_events(10).unwrap().len(), 2);
    }
}
