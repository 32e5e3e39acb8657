//! Trust state: API tokens (hashed), the audit trail, operator labels of agents, revision
//! signatures, and forgetting agents and old revisions.
//!
//! These tables were added after schema version 1 and are created when missing, so an older
//! database opens as it is (its agents have no operator labels until an operator sets them).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Store, StoreError};

/// The trust tables (created when missing).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    verb TEXT NOT NULL,
    arguments TEXT NOT NULL,
    generation INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_ms);
CREATE TABLE IF NOT EXISTS agent_labels (
    agent_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
CREATE TABLE IF NOT EXISTS revision_signatures (
    generation INTEGER PRIMARY KEY,
    signer_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
";

/// One entry of the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its number (0 before it is stored).
    pub id: u64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Token name, certificate identity, or `controller`.
    pub who: String,
    /// The caller's role (`automated` for the controller's own decisions).
    pub role: String,
    /// The verb, e.g. `apply`, `rollout.undo`, `rollout.rollback`.
    pub verb: String,
    /// The arguments, JSON.
    pub arguments: String,
    /// The revision concerned (0: none).
    pub generation: u64,
    /// Its SHA256 (empty: none).
    pub sha256: String,
    /// `ok` or the error.
    pub result: String,
}

/// A stored token: its name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its name (shown in the audit trail).
    pub name: String,
    /// Its role (`viewer`, `operator`, `admin`).
    pub role: String,
}

fn insert_token(
    conn: &Connection,
    name: &str,
    role: &str,
    hash: &str,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO tokens (name, role, hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![name, role, hash, now_ms],
    )
}

/// Adds a token to the database in `dir` while a controller may be running on it (no folder
/// lock: SQLite serializes the write). For `h264-controller token create`.
pub fn add_token_offline(
    dir: &Path,
    name: &str,
    role: &str,
    hash: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let path = dir.join("controller.db");
    let sql = |source| StoreError::Sqlite {
        path: path.clone(),
        source,
    };
    if !path.exists() {
        return Err(StoreError::Folder {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no controller.db here: start h264-controller with this --state-dir once first",
            ),
        });
    }
    let conn = Connection::open(&path).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    conn.execute_batch(SCHEMA).map_err(sql)?;
    insert_token(&conn, name, role, hash, now_ms).map_err(sql)?;
    Ok(())
}

impl Store {
    /// Stores a token's hash; an error if the name is taken.
    pub fn add_token(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        insert_token(&self.conn(), name, role, hash, now_ms).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// How many tokens exist.
    pub fn token_count(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Every token, by hash.
    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT hash, name, role FROM tokens")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    TokenRecord {
                        name: r.get(1)?,
                        role: r.get(2)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Appends to the audit trail (durably: the write is synchronous) and returns its id.
    pub fn audit(&self, r: &AuditRecord) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at_ms, who, role, verb, arguments, generation, sha256, result) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                r.at_ms,
                r.who,
                r.role,
                r.verb,
                r.arguments,
                r.generation as i64,
                r.sha256,
                r.result
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid() as u64)
    }

    /// The audit entries at or after `since_ms`, oldest first, at most the newest `limit`.
    pub fn audit_since(&self, since_ms: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, at_ms, who, role, verb, arguments, generation, sha256, result FROM \
                 (SELECT * FROM audit WHERE at_ms >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![since_ms, limit], |r| {
                Ok(AuditRecord {
                    id: r.get::<_, i64>(0)? as u64,
                    at_ms: r.get(1)?,
                    who: r.get(2)?,
                    role: r.get(3)?,
                    verb: r.get(4)?,
                    arguments: r.get(5)?,
                    generation: r.get::<_, i64>(6)? as u64,
                    sha256: r.get(7)?,
                    result: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every agent's operator labels.
    pub fn operator_labels(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT agent_id, key, value FROM agent_labels")
            .map_err(|e| self.err(e))?;
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (agent, k, v) = row.map_err(|e| self.err(e))?;
            out.entry(agent).or_default().insert(k, v);
        }
        Ok(out)
    }

    /// Replaces an agent's operator labels.
    pub fn set_operator_labels(
        &self,
        agent: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM agent_labels WHERE agent_id = ?1", [agent])
            .map_err(|e| self.err(e))?;
        for (k, v) in labels {
            tx.execute(
                "INSERT INTO agent_labels (agent_id, key, value) VALUES (?1, ?2, ?3)",
                params![agent, k, v],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets an agent: its row, labels and events.
    pub fn delete_agent(&self, agent: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for sql in [
            "DELETE FROM agents WHERE id = ?1",
            "DELETE FROM agent_labels WHERE agent_id = ?1",
            "DELETE FROM events WHERE agent_id = ?1",
        ] {
            tx.execute(sql, [agent]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The signature of revision `generation`: (signer key, signature).
    pub fn revision_signature(
        &self,
        generation: u64,
    ) -> Result<Option<(String, String)>, StoreError> {
        self.conn()
            .query_row(
                "SELECT signer_key, signature FROM revision_signatures WHERE generation = ?1",
                [generation as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every revision signature, by generation.
    pub fn revision_signatures(&self) -> Result<BTreeMap<u64, (String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT generation, signer_key, signature FROM revision_signatures")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, (r.get(1)?, r.get(2)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records (or replaces) the signature of revision `generation`.
    pub fn set_revision_signature(
        &self,
        generation: u64,
        signer_key: &str,
        signature: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO revision_signatures (generation, signer_key, signature) \
                 VALUES (?1, ?2, ?3)",
                params![generation as i64, signer_key, signature],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes revisions `generations` (and their signatures).
    pub fn delete_revisions(&self, generations: &[u64]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for g in generations {
            for sql in [
                "DELETE FROM revisions WHERE generation = ?1",
                "DELETE FROM revision_signatures WHERE generation = ?1",
            ] {
                tx.execute(sql, [*g as i64]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}
