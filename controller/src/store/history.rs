//! The job history: one row per attempt an agent reported (`history`), keyed by the agent and
//! the record's id so a record delivered twice is stored once (`INSERT OR IGNORE`), pruned by
//! age (`[history] keep`), and the two queries over it: the attempts that match filters
//! (`fleetctl jobs`, the console's history page) and the aggregates of `fleetctl report`
//! ([`super::report`]).
//!
//! Indexes: by end time (the window of every query), by agent and end time (`--agent`), and a
//! partial index of the unsuccessful attempts by end time (`--failed`, which would otherwise
//! walk every successful attempt to find a rare failure).
//!
//! Every insert and prune also updates the per-day rollup the reports read
//! ([`super::rollup`]), in the same transaction.

use std::collections::HashMap;

use h264_proto::v1::JobAttempt;
use rusqlite::{params, params_from_iter, Row};

use super::rollup::{self, Deltas, Fact};
use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    agent_id TEXT NOT NULL,
    id TEXT NOT NULL,
    ended_at_ms INTEGER NOT NULL,
    file TEXT NOT NULL,
    generation INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    failed_stage TEXT NOT NULL,
    message TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    rung TEXT NOT NULL,
    mode TEXT NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    media_secs REAL NOT NULL,
    wall_secs REAL NOT NULL,
    queue_secs REAL NOT NULL,
    stage_secs TEXT NOT NULL,
    captions TEXT NOT NULL,
    captions_lost INTEGER NOT NULL,
    PRIMARY KEY (agent_id, id)
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (ended_at_ms);
CREATE INDEX IF NOT EXISTS history_by_agent ON history (agent_id, ended_at_ms);
CREATE INDEX IF NOT EXISTS history_failed ON history (ended_at_ms)
    WHERE outcome IN ('failed', 'retrying', 'conflict');
";

/// The outcomes that count as an unsuccessful attempt (SQL list, also in the partial index).
pub(super) const UNSUCCESSFUL: &str = "('failed', 'retrying', 'conflict')";

/// The most attempts one `ListJobs` answers.
pub const MAX_JOBS: u32 = 10_000;
/// Rows deleted per statement when pruning, so that ingest never waits long for the lock.
const PRUNE_CHUNK: usize = 5_000;

/// Filters of [`Store::jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    /// Only this agent.
    pub agent_id: Option<String>,
    /// Only unsuccessful attempts.
    pub failed_only: bool,
    /// Only files matching this glob (SQLite `GLOB`).
    pub file_glob: Option<String>,
    /// Only attempts that ended at or after this time (Unix ms).
    pub since_ms: i64,
    /// At most this many.
    pub limit: u32,
}

fn finite(v: f64) -> f64 {
    if v.is_finite() && v >= 0.0 {
        v
    } else {
        0.0
    }
}

impl Store {
    /// Stores records of `agent_id` in one transaction; a record whose id is stored already is
    /// left as it is. Returns how many were new.
    pub fn insert_history(&self, batch: &[(String, JobAttempt)]) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut added = 0;
        let mut deltas = Deltas::default();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO history (agent_id, id, ended_at_ms, file, generation,
                        outcome, failed_stage, message, attempt, rung, mode, bytes_in, bytes_out,
                        media_secs, wall_secs, queue_secs, stage_secs, captions, captions_lost)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16, ?17, ?18, ?19)",
                )
                .map_err(|e| self.err(e))?;
            for (agent, r) in batch {
                let stages: HashMap<&String, f64> =
                    r.stage_secs.iter().map(|(k, v)| (k, finite(*v))).collect();
                let fact = Fact {
                    ended_at_ms: r.ended_at_ms,
                    agent_id: agent,
                    generation: r.generation as i64,
                    outcome: &r.outcome,
                    failed_stage: &r.failed_stage,
                    media_secs: finite(r.media_secs),
                    wall_secs: finite(r.wall_secs),
                    bytes_in: r.bytes_in.min(i64::MAX as u64) as i64,
                    bytes_out: r.bytes_out.min(i64::MAX as u64) as i64,
                    captions: &r.captions,
                    captions_lost: r.captions_lost,
                };
                let new = insert
                    .execute(params![
                        agent,
                        r.id,
                        fact.ended_at_ms,
                        r.file,
                        fact.generation,
                        r.outcome,
                        r.failed_stage,
                        r.message,
                        r.attempt,
                        r.rung,
                        r.mode,
                        fact.bytes_in,
                        fact.bytes_out,
                        fact.media_secs,
                        fact.wall_secs,
                        finite(r.queue_secs),
                        serde_json::to_string(&stages).unwrap_or_else(|_| "{}".into()),
                        r.captions,
                        r.captions_lost,
                    ])
                    .map_err(|e| self.err(e))?;
                if new > 0 {
                    deltas.add(&fact);
                }
                added += new;
            }
        }
        deltas.apply(&tx).map_err(|e| self.err(e))?;
        rollup::add_covered(&tx, added as i64).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(added)
    }

    /// Deletes the attempts that ended before `before_ms`, a chunk at a time (each chunk in
    /// one transaction with its rollup change); returns how many.
    pub fn prune_history(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(|e| self.err(e))?;
            let n = tx
                .execute(
                    "DELETE FROM history WHERE rowid IN
                        (SELECT rowid FROM history WHERE ended_at_ms < ?1 LIMIT ?2)",
                    params![before_ms, PRUNE_CHUNK as i64],
                )
                .map_err(|e| self.err(e))?;
            if n > 0 {
                rollup::pruned(&tx, before_ms, n as i64).map_err(|e| self.err(e))?;
            }
            tx.commit().map_err(|e| self.err(e))?;
            total += n;
            if n < PRUNE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// The attempts that match `q`, newest first, and whether more matched than its limit.
    pub fn jobs(&self, q: &JobQuery) -> Result<(Vec<JobAttempt>, bool), StoreError> {
        let mut sql = String::from(
            "SELECT agent_id, id, ended_at_ms, file, generation, outcome, failed_stage, message,
                attempt, rung, mode, bytes_in, bytes_out, media_secs, wall_secs, queue_secs,
                stage_secs, captions, captions_lost
             FROM history WHERE ended_at_ms >= ?",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![q.since_ms.into()];
        if let Some(agent) = &q.agent_id {
            sql.push_str(" AND agent_id = ?");
            args.push(agent.clone().into());
        }
        if q.failed_only {
            sql.push_str(" AND outcome IN ");
            sql.push_str(UNSUCCESSFUL);
        }
        if let Some(glob) = &q.file_glob {
            sql.push_str(" AND file GLOB ?");
            args.push(glob.clone().into());
        }
        let limit = q.limit.clamp(1, MAX_JOBS);
        sql.push_str(" ORDER BY ended_at_ms DESC, id DESC LIMIT ?");
        args.push((i64::from(limit) + 1).into());
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows: Vec<JobAttempt> = stmt
            .query_map(params_from_iter(args), attempt_of)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let truncated = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, truncated))
    }

    /// How many attempts are stored.
    pub fn history_len(&self) -> Result<u64, StoreError> {
        self.conn()
            .query_row("SELECT count(*) FROM history", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

fn attempt_of(r: &Row<'_>) -> rusqlite::Result<JobAttempt> {
    let stages: String = r.get(16)?;
    Ok(JobAttempt {
        agent_id: r.get(0)?,
        id: r.get(1)?,
        ended_at_ms: r.get(2)?,
        file: r.get(3)?,
        generation: r.get::<_, i64>(4)? as u64,
        outcome: r.get(5)?,
        failed_stage: r.get(6)?,
        message: r.get(7)?,
        attempt: r.get(8)?,
        rung: r.get(9)?,
        mode: r.get(10)?,
        bytes_in: r.get::<_, i64>(11)? as u64,
        bytes_out: r.get::<_, i64>(12)? as u64,
        media_secs: r.get(13)?,
        wall_secs: r.get(14)?,
        queue_secs: r.get(15)?,
        stage_secs: serde_json::from_str(&stages).unwrap_or_default(),
        captions: r.get(17)?,
        captions_lost: r.get(18)?,
    })
}
