//! Revisions and the assignment log.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{set_fleet_target, Store, StoreError};
use crate::model::{Desired, Revision};

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Revision> {
    Ok(Revision {
        generation: r.get::<_, i64>(0)? as u64,
        sha256: r.get(1)?,
        name: r.get(2)?,
        canonical: r.get(3)?,
        created_at_ms: r.get(4)?,
        signed: None,
    })
}

const COLUMNS: &str = "generation, sha256, name, canonical, created_at_ms";

impl Store {
    /// Every revision, oldest first.
    pub fn revisions(&self) -> Result<Vec<Revision>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM revisions ORDER BY generation"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Stores a revision for `canonical` unless the latest one has the same SHA256; a new
    /// revision becomes the fleet-wide target. Returns the revision holding the spec and
    /// whether it was created.
    pub fn apply_revision(
        &self,
        sha256: &str,
        name: &str,
        canonical: &[u8],
        now_ms: i64,
    ) -> Result<(Revision, bool), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let latest = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM revisions ORDER BY generation DESC LIMIT 1"),
                [],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(latest) = latest.as_ref().filter(|l| l.sha256 == sha256) {
            return Ok((latest.clone(), false));
        }
        let revision = Revision {
            generation: latest.map_or(1, |l| l.generation + 1),
            sha256: sha256.to_owned(),
            name: name.to_owned(),
            canonical: canonical.to_vec(),
            created_at_ms: now_ms,
            signed: None,
        };
        tx.execute(
            &format!("INSERT INTO revisions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                revision.generation as i64,
                revision.sha256,
                revision.name,
                revision.canonical,
                revision.created_at_ms
            ],
        )
        .map_err(|e| self.err(e))?;
        set_fleet_target(
            &tx,
            Desired {
                generation: revision.generation,
                rollback: false,
            },
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok((revision, true))
    }

    /// Logs an apply or assign decision; `fleet_target` is set when it concerned every agent.
    pub fn record_assignment(
        &self,
        generation: u64,
        target: &str,
        rollback: bool,
        agents: usize,
        fleet_target: Option<Desired>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO assignments (at_ms, generation, target, rollback, agents)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                crate::model::now_ms(),
                generation as i64,
                target,
                rollback,
                agents as i64
            ],
        )
        .map_err(|e| self.err(e))?;
        if let Some(t) = fleet_target {
            set_fleet_target(&tx, t).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_twice_is_one_revision_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 100).unwrap();
            let (a, created) = store.apply_revision("aa", "studios", b"{}", 1).unwrap();
            assert!(created);
            assert_eq!(a.generation, 1);
            let (again, created) = store.apply_revision("aa", "renamed", b"{}", 2).unwrap();
            assert!(!created);
            assert_eq!(again, a);
            let (b, created) = store.apply_revision("bb", "studios", b"{1}", 3).unwrap();
            assert!(created);
            assert_eq!(b.generation, 2);
            // Back to the first spec: a new revision (a roll-forward), not the old one.
            let (c, created) = store.apply_revision("aa", "studios", b"{}", 4).unwrap();
            assert!(created);
            assert_eq!(c.generation, 3);
            store
                .record_assignment(1, "agent=a", true, 1, None)
                .unwrap();
        }
        let store = Store::open(dir.path(), 100).unwrap();
        let all = store.revisions().unwrap();
        assert_eq!(
            all.iter().map(|r| r.generation).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            store.fleet_target().unwrap(),
            Some(Desired {
                generation: 3,
                rollback: false
            })
        );
    }
}
