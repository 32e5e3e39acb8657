//! The job history outbox: one record per job attempt, kept in `state_dir/history-outbox.sqlite3`
//! until the controller ACKs it, so an agent that was offline (or restarted) delivers what it
//! kept when it reconnects.
//!
//! # Theory of operation
//! A job calls [`attempt_ended`] when an attempt ends; the record is written (one short
//! statement behind a `std::sync::Mutex`, never held across an `.await`) with the id
//! `EPOCH-SEQ`: `EPOCH` is random, made with the file, and `SEQ` its row number, so an id is
//! stable across restarts and never reused, even if the file is deleted. The session task
//! ([`Delivery`]) sends one batch of at most [`BATCH`] records at a time, the next when the
//! controller ACKs it (the controller stores each id once, so a batch sent twice is harmless);
//! a batch not ACKed within [`ACK_WAIT`] (the controller was behind, or the session broke) is
//! sent again from the oldest record kept. The outbox holds at most [`MAX_KEPT`] records; past
//! that the oldest are dropped, with a warning. Without `[controller] endpoint` there is no
//! outbox: nobody would collect it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use h264_proto::v1::agent_message::Body;
use h264_proto::v1::{AgentMessage, HistoryBatch, JobAttempt};
use prost::Message as _;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, Notify};

/// The outbox's file name inside `state_dir`.
pub const FILE_NAME: &str = "history-outbox.sqlite3";
/// Records kept at most while the controller is away (the oldest are dropped past it).
pub const MAX_KEPT: i64 = 100_000;
/// Records per batch.
pub const BATCH: usize = 200;
/// How long a batch may wait for its ACK before it is sent again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// An outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[error("job history outbox {path}: {source}; check agent.state_dir and its permissions")]
pub struct OutboxError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// The outbox.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    epoch: String,
    conn: Mutex<Connection>,
    /// Woken when a record is added.
    pub added: Notify,
}

impl Outbox {
    /// Opens (or creates) the outbox in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, OutboxError> {
        let path = state_dir.join(FILE_NAME);
        let err = |source| OutboxError {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                record BLOB NOT NULL);",
        )
        .map_err(err)?;
        let epoch: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        let epoch = match epoch {
            Some(e) => e,
            None => {
                let e = format!("{:016x}", rand::random::<u64>());
                conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?1)", [&e])
                    .map_err(err)?;
                e
            }
        };
        Ok(Self {
            path,
            epoch,
            conn: Mutex::new(conn),
            added: Notify::new(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> OutboxError {
        OutboxError {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `record` (its id is set here) until the controller ACKs it.
    pub fn push(&self, mut record: JobAttempt) -> Result<(), OutboxError> {
        record.id.clear();
        {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO outbox (record) VALUES (?1)",
                [record.encode_to_vec()],
            )
            .map_err(|e| self.err(e))?;
            let seq = conn.last_insert_rowid();
            let dropped = conn
                .execute("DELETE FROM outbox WHERE seq <= ?1", [seq - MAX_KEPT])
                .map_err(|e| self.err(e))?;
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    kept = MAX_KEPT,
                    "job history outbox full: the oldest records were dropped undelivered"
                );
            }
        }
        self.added.notify_one();
        Ok(())
    }

    /// Up to `limit` records after `seq`, oldest first, with their ids.
    pub fn after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, JobAttempt)>, OutboxError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT seq, record FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![seq, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, bytes) = row.map_err(|e| self.err(e))?;
            match JobAttempt::decode(bytes.as_slice()) {
                Ok(mut r) => {
                    r.id = format!("{}-{seq}", self.epoch);
                    out.push((seq, r));
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "an unreadable history record is skipped")
                }
            }
        }
        Ok(out)
    }

    /// Drops the records the controller ACKed (ids of another epoch are ignored).
    pub fn remove(&self, ids: &[String]) -> Result<usize, OutboxError> {
        let prefix = format!("{}-", self.epoch);
        let conn = self.conn();
        let mut n = 0;
        for id in ids {
            if let Some(seq) = id.strip_prefix(&prefix).and_then(|s| s.parse::<i64>().ok()) {
                n += conn
                    .execute("DELETE FROM outbox WHERE seq = ?1", [seq])
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(n)
    }

    /// How many records wait for delivery.
    pub fn len(&self) -> Result<u64, OutboxError> {
        self.conn()
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        self.len().map(|n| n == 0)
    }
}

/// Opens the outbox when the agent has a controller to deliver to; a failure is logged and the
/// agent runs without history delivery.
pub fn open_for(config: &h264_config::AgentConfig) -> Option<Outbox> {
    config.controller.endpoint.as_ref()?;
    match Outbox::open(&config.agent.state_dir) {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::error!(error = %e, "job history will not reach the controller");
            None
        }
    }
}

/// Keeps the record of an attempt that ended (the hook jobs call); `None` (no attempt was
/// made) does nothing.
pub fn attempt_ended(outbox: Option<&Outbox>, record: Option<JobAttempt>) {
    let (Some(outbox), Some(record)) = (outbox, record) else {
        return;
    };
    if let Err(e) = outbox.push(record) {
        tracing::error!(error = %e, "the attempt's history record was not kept");
    }
}

/// One session's delivery of the outbox: a batch in flight at most (module docs).
#[derive(Debug, Default)]
pub struct Delivery {
    cursor: i64,
    in_flight: Option<Instant>,
}

impl Delivery {
    /// Sends the next batch unless one is in flight or nothing waits.
    pub async fn next(
        &mut self,
        outbox: &Outbox,
        tx: &mpsc::Sender<AgentMessage>,
    ) -> Result<(), super::SessionError> {
        if let Some(sent) = self.in_flight {
            if sent.elapsed() < ACK_WAIT {
                return Ok(());
            }
            tracing::debug!("a history batch was not ACKed in time; sending again");
            self.cursor = 0;
            self.in_flight = None;
        }
        let records = match outbox.after(self.cursor, BATCH) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job history outbox");
                return Ok(());
            }
        };
        let Some(last) = records.last().map(|(seq, _)| *seq) else {
            return Ok(());
        };
        let batch = HistoryBatch {
            records: records.into_iter().map(|(_, r)| r).collect(),
        };
        let message = AgentMessage {
            body: Some(Body::History(batch)),
        };
        tx.send(message)
            .await
            .map_err(|_| super::SessionError::Closed)?;
        self.cursor = last;
        self.in_flight = Some(Instant::now());
        Ok(())
    }

    /// The controller stored these records: drop them, and send the next batch.
    pub async fn acked(
        &mut self,
        outbox: &Outbox,
        ids: &[String],
        tx: &mpsc::Sender<AgentMessage>,
    ) -> Result<(), super::SessionError> {
        if let Err(e) = outbox.remove(ids) {
            tracing::warn!(error = %e, "cannot drop ACKed records from the history outbox");
        }
        self.in_flight = None;
        self.next(outbox, tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file: &str) -> JobAttempt {
        JobAttempt {
            file: file.into(),
            outcome: "converted".into(),
            ..JobAttempt::default()
        }
    }

    #[test]
    fn records_keep_their_ids_across_reopen_until_acked() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.push(record("/a.ts")).unwrap();
        outbox.push(record("/b.ts")).unwrap();
        let first = outbox.after(0, 10).unwrap();
        assert_eq!(first.len(), 2);
        drop(outbox);
        let outbox = Outbox::open(dir.path()).unwrap();
        let again = outbox.after(0, 10).unwrap();
        assert_eq!(
            first.iter().map(|(_, r)| &r.id).collect::<Vec<_>>(),
            again.iter().map(|(_, r)| &r.id).collect::<Vec<_>>()
        );
        assert_eq!(
            outbox
                .remove(&[again[0].1.id.clone(), "other-1".into()])
                .unwrap(),
            1
        );
        let left = outbox.after(0, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.file, "/b.ts");
        assert_eq!(outbox.after(left[0].0, 10).unwrap().len(), 0);
    }
}
