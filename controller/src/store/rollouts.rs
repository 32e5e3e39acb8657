//! Rollout rows: one per rollout, its whole state as JSON (written at every phase or step
//! change, read back at start-up so that a rollout continues where it was).

use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};

impl Store {
    /// Saves (or replaces) rollout `id`'s state.
    pub fn save_rollout(&self, id: u64, generation: u64, state: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO rollouts (id, generation, state, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![id as i64, generation as i64, state, crate::model::now_ms()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The newest rollout's state, if any.
    pub fn latest_rollout(&self) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT state FROM rollouts ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Rollout `id`'s state, if the store has it.
    pub fn rollout(&self, id: u64) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT state FROM rollouts WHERE id = ?1",
                params![id as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
