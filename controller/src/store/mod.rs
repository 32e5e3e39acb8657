//! The controller's state on disk: one SQLite database (`controller.db`, WAL,
//! `synchronous=FULL`) in the state folder, guarded by an exclusive lock on `controller.lock`
//! so that two controllers never share a folder.
//!
//! Tables: `revisions` (immutable, one row per generation), `agents` (one row per agent, the
//! latest of what the registry knows, stats included), `assignments` (a log of every apply and
//! assign decision), `events` (agent events, the newest `events_kept`), `rollouts` (each rollout's state, JSON), `history` (job
//! attempts, [`history`]), `history_rollup` (their per-day sums, [`rollup`]), `meta` (schema version,
//! the fleet-wide target new agents get).
//!
//! Every call is blocking: async callers go through `spawn_blocking` (see [`crate::persist`]).

mod agents;
mod history;
mod report;
mod revisions;
mod rollouts;
mod rollup;
mod trust;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OptionalExtension};

pub use agents::Batch;
pub use history::{JobQuery, MAX_JOBS};
pub use report::GroupBy;
pub use trust::{add_token_offline, AuditRecord, TokenRecord};

use crate::model::Desired;

/// The database schema version this build writes.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revisions (
    generation INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    canonical BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    version TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    desired_generation INTEGER,
    desired_rollback INTEGER NOT NULL,
    acked_generation INTEGER NOT NULL,
    running_generation INTEGER NOT NULL,
    running_sha256 TEXT NOT NULL,
    awaiting_generation INTEGER,
    highest_accepted INTEGER NOT NULL,
    sync_state TEXT NOT NULL,
    sync_error TEXT NOT NULL,
    nacked TEXT NOT NULL,
    stats BLOB
);
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    target TEXT NOT NULL,
    rollback INTEGER NOT NULL,
    agents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    file TEXT NOT NULL,
    stage TEXT NOT NULL,
    message TEXT NOT NULL,
    generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_agent ON events (agent_id, id);
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
";

/// Why the state folder or database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder or lock file cannot be created.
    #[error("cannot use the state folder {}: {source}", path.display())]
    Folder {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another controller holds the folder.
    #[error("the state folder {} is in use by another h264-controller (lock {}); stop it first, or give this one another --state-dir", dir.display(), lock.display())]
    Locked {
        /// The state folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// SQLite failed.
    #[error("database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer controller.
    #[error("database {} has schema version {found}; this h264-controller reads up to {SCHEMA_VERSION}: upgrade it", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// The open database and the folder lock (held as long as the store lives).
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    events_kept: u32,
    _lock: Flock<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Creates the folder if needed, locks it, opens (or creates) the database.
    pub fn open(dir: &Path, events_kept: u32) -> Result<Self, StoreError> {
        let folder = |source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(folder)?;
        let lock_path = dir.join("controller.lock");
        let file = File::create(&lock_path).map_err(folder)?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| StoreError::Locked {
                dir: dir.to_path_buf(),
                lock: lock_path.clone(),
            })?;
        let path = dir.join("controller.db");
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        conn.execute_batch(trust::SCHEMA).map_err(sql)?;
        conn.execute_batch(history::SCHEMA).map_err(sql)?;
        conn.execute_batch(rollup::SCHEMA).map_err(sql)?;
        let found: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        match found.and_then(|v| v.parse::<i64>().ok()) {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: path.clone(),
                    found: v,
                })
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(sql)?;
            }
        }
        let started = std::time::Instant::now();
        if rollup::check(&mut conn).map_err(sql)? {
            tracing::info!(
                took_ms = started.elapsed().as_millis() as u64,
                "job history: the per-day rollup was rebuilt from the stored attempts"
            );
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            events_kept,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The fleet-wide target: what `apply` (or an assign to every agent) last set, given to
    /// agents that register later.
    pub fn fleet_target(&self) -> Result<Option<Desired>, StoreError> {
        let conn = self.conn();
        let get = |key: &str| -> Result<Option<String>, rusqlite::Error> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        };
        let generation = get("fleet_target_generation").map_err(|e| self.err(e))?;
        let rollback = get("fleet_target_rollback").map_err(|e| self.err(e))?;
        Ok(generation
            .and_then(|g| g.parse().ok())
            .map(|generation| Desired {
                generation,
                rollback: rollback.as_deref() == Some("1"),
            }))
    }
}

/// Sets the fleet-wide target inside a transaction.
fn set_fleet_target(conn: &Connection, target: Desired) -> Result<(), rusqlite::Error> {
    let mut put =
        conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
    put.execute(["fleet_target_generation", &target.generation.to_string()])?;
    put.execute([
        "fleet_target_rollback",
        if target.rollback { "1" } else { "0" },
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_store_on_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 100).unwrap();
        let e = Store::open(dir.path(), 100).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }), "{e}");
        assert!(e.to_string().contains("in use by another h264-controller"));
    }
}
