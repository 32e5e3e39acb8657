//! Agent rows and events: written in batches by the persister, read back at start-up.

use prost::Message;
use rusqlite::params;

use super::{Store, StoreError};
use crate::model::{AgentRecord, Desired, EventRecord};

/// What the persister writes in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// Agents whose record changed, as they are now.
    pub agents: Vec<AgentRecord>,
    /// New events, oldest first.
    pub events: Vec<EventRecord>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty() && self.events.is_empty()
    }
}

const COLUMNS: &str = "id, labels, version, capabilities, last_seen_ms, desired_generation, \
     desired_rollback, acked_generation, running_generation, running_sha256, awaiting_generation, \
     highest_accepted, sync_state, sync_error, nacked, stats";

impl Store {
    /// Writes a batch in one transaction and drops the oldest events past `events_kept`.
    pub fn save(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut put = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO agents ({COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ))
                .map_err(|e| self.err(e))?;
            for a in &batch.agents {
                put.execute(params![
                    a.id,
                    serde_json::to_string(&a.reported_labels).unwrap_or_default(),
                    a.version,
                    serde_json::to_string(&a.capabilities).unwrap_or_default(),
                    a.last_seen_ms,
                    a.desired.map(|d| d.generation as i64),
                    a.desired.is_some_and(|d| d.rollback),
                    a.acked_generation as i64,
                    a.running_generation as i64,
                    a.running_sha256,
                    a.awaiting.map(|g| g as i64),
                    a.highest_accepted as i64,
                    a.sync_state().as_str(),
                    a.sync_error(),
                    serde_json::to_string(&a.nacked).unwrap_or_default(),
                    a.stats.as_ref().map(Message::encode_to_vec),
                ])
                .map_err(|e| self.err(e))?;
            }
            let mut add = tx
                .prepare_cached(
                    "INSERT INTO events (agent_id, at_ms, kind, file, stage, message, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| self.err(e))?;
            for e in &batch.events {
                add.execute(params![
                    e.agent_id,
                    e.at_ms,
                    e.kind,
                    e.file,
                    e.stage,
                    e.message,
                    e.generation as i64
                ])
                .map_err(|e| self.err(e))?;
            }
        }
        if !batch.events.is_empty() {
            tx.execute(
                "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
                [i64::from(self.events_kept)],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Every agent, as last saved.
    pub fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {COLUMNS} FROM agents ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let desired: Option<i64> = r.get(5)?;
                let stats: Option<Vec<u8>> = r.get(15)?;
                Ok(AgentRecord {
                    id: r.get(0)?,
                    reported_labels: serde_json::from_str(&r.get::<_, String>(1)?)
                        .unwrap_or_default(),
                    version: r.get(2)?,
                    capabilities: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    last_seen_ms: r.get(4)?,
                    desired: desired.map(|g| Desired {
                        generation: g as u64,
                        rollback: r.get(6).unwrap_or(false),
                    }),
                    acked_generation: r.get::<_, i64>(7)? as u64,
                    running_generation: r.get::<_, i64>(8)? as u64,
                    running_sha256: r.get(9)?,
                    awaiting: r.get::<_, Option<i64>>(10)?.map(|g| g as u64),
                    highest_accepted: r.get::<_, i64>(11)? as u64,
                    nacked: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_default(),
                    stats: stats.and_then(|b| Message::decode(b.as_slice()).ok()),
                    ..AgentRecord::default()
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The newest `limit` events of `agent_id`, oldest first.
    pub fn recent_events(
        &self,
        agent_id: &str,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT agent_id, at_ms, kind, file, stage, message, generation FROM events
                 WHERE agent_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![agent_id, limit as i64], |r| {
                Ok(EventRecord {
                    agent_id: r.get(0)?,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    file: r.get(3)?,
                    stage: r.get(4)?,
                    message: r.get(5)?,
                    generation: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut events: Vec<EventRecord> =
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        events.reverse();
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Nack;
    use h264_proto::v1::StatsReply;

    #[test]
    fn agents_and_events_round_trip_and_events_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 3).unwrap();
        let mut a = AgentRecord {
            id: "a1".into(),
            version: "0.1.0".into(),
            desired: Some(Desired {
                generation: 2,
                rollback: true,
            }),
            running_generation: 1,
            stats: Some(StatsReply {
                queue_depth: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        a.reported_labels.insert("site".into(), "paris".into());
        a.nacked.insert(
            2,
            Nack {
                stage: "hash".into(),
                field: String::new(),
                message: "bad".into(),
                at_ms: 5,
            },
        );
        let events = (0..5)
            .map(|i| EventRecord {
                agent_id: "a1".into(),
                at_ms: i,
                kind: "converted".into(),
                file: format!("f{i}.ts"),
                stage: String::new(),
                message: String::new(),
                generation: 1,
            })
            .collect();
        store
            .save(&Batch {
                agents: vec![a.clone()],
                events,
            })
            .unwrap();
        assert_eq!(store.agents().unwrap(), vec![a]);
        let kept = store.recent_events("a1", 10).unwrap();
        assert_eq!(
            kept.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [2, 3, 4],
            "the newest events_kept remain, oldest first"
        );
    }
}
