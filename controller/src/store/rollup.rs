//! The job history's per-day rollup (`history_rollup`): for every UTC day and every grouping
//! `fleetctl report` offers (the whole fleet, per agent, per revision, per failed stage), the
//! report's counters and sums (`dim` = `all`, `agent`, `revision`, `stage`; `--by day` reads
//! `all`) and the speed histogram of its converted attempts, so that a
//! report over 30 days reads about a thousand rows per day instead of every attempt.
//!
//! Exact, not sampled: every counter and byte sum is the same as a scan of `history` would
//! give (media seconds are summed in another order, so the hours may differ in the last bits),
//! and the speed histogram has the same 1/20x buckets as the scan ([`super::report`]). A
//! report whose window starts inside a day reads that day's part from `history` itself.
//!
//! # Theory of operation
//! Kept by the store, in the transaction that changes `history`: [`Store::insert_history`]
//! folds the attempts it actually inserted into one delta per (day, grouping, key) and
//! read-modify-writes those rows; pruning deletes the rollup of the days before the cutoff and
//! rebuilds the cutoff day's from what is left of it. `meta.history_rollup_rows` counts the
//! attempts the rollup covers; when the store opens and that count is missing or differs from
//! `history`'s (a database from before the rollup, or one an older controller wrote to), the
//! rollup is rebuilt from `history` in one pass. All of it runs under the store's connection
//! lock, so a report never sees `history` and the rollup disagree.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Milliseconds per day.
pub(super) const DAY_MS: i64 = 86_400_000;
/// Speed buckets per 1x of real time (the report's histogram).
pub(super) const BUCKETS_PER_X: f64 = 20.0;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history_rollup (
    dim TEXT NOT NULL,
    day INTEGER NOT NULL,
    key TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    converted INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    unsuccessful INTEGER NOT NULL,
    media_secs REAL NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    with_captions INTEGER NOT NULL,
    captions_lost INTEGER NOT NULL,
    speeds BLOB NOT NULL,
    PRIMARY KEY (dim, day, key)
) WITHOUT ROWID;
";

/// What one attempt adds to the report (the columns the report reads).
#[derive(Debug, Clone)]
pub(super) struct Fact<'a> {
    pub ended_at_ms: i64,
    pub agent_id: &'a str,
    pub generation: i64,
    pub outcome: &'a str,
    pub failed_stage: &'a str,
    pub media_secs: f64,
    pub wall_secs: f64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub captions: &'a str,
    pub captions_lost: bool,
}

/// The speed bucket of a converted attempt, as the report's SQL computes it
/// (`CAST(media_secs / wall_secs * 20 AS INTEGER)`, truncated toward zero).
pub(super) fn bucket(outcome: &str, media_secs: f64, wall_secs: f64) -> Option<i64> {
    (outcome == "converted" && wall_secs > 0.0)
        .then(|| (media_secs / wall_secs * BUCKETS_PER_X) as i64)
}

/// Counters and sums of a set of attempts, and the speed histogram of its converted ones.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Sums {
    pub attempts: i64,
    pub converted: i64,
    pub failed: i64,
    pub unsuccessful: i64,
    pub media_secs: f64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub with_captions: i64,
    pub captions_lost: i64,
    pub speeds: BTreeMap<i64, u64>,
}

impl Sums {
    fn add_fact(&mut self, f: &Fact<'_>) {
        let converted = f.outcome == "converted";
        self.attempts += 1;
        self.converted += i64::from(converted);
        self.failed += i64::from(f.outcome == "failed");
        self.unsuccessful += i64::from(matches!(f.outcome, "failed" | "retrying" | "conflict"));
        if converted {
            self.media_secs += f.media_secs;
            self.bytes_in = self.bytes_in.saturating_add(f.bytes_in);
            self.bytes_out = self.bytes_out.saturating_add(f.bytes_out);
            self.with_captions += i64::from(f.captions.contains('('));
            self.captions_lost += i64::from(f.captions_lost);
        }
        if let Some(b) = bucket(f.outcome, f.media_secs, f.wall_secs) {
            *self.speeds.entry(b).or_default() += 1;
        }
    }

    pub fn merge(&mut self, o: &Sums) {
        self.attempts += o.attempts;
        self.converted += o.converted;
        self.failed += o.failed;
        self.unsuccessful += o.unsuccessful;
        self.media_secs += o.media_secs;
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.with_captions += o.with_captions;
        self.captions_lost += o.captions_lost;
        for (b, n) in &o.speeds {
            *self.speeds.entry(*b).or_default() += n;
        }
    }
}

/// The histogram as a blob: (bucket as zigzag varint, count as varint) pairs, buckets rising.
pub(super) fn encode_speeds(speeds: &BTreeMap<i64, u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(speeds.len() * 3);
    for (b, n) in speeds {
        put_varint(&mut out, ((b << 1) ^ (b >> 63)) as u64);
        put_varint(&mut out, *n);
    }
    out
}

/// The histogram of a blob; a truncated blob yields the pairs before the cut.
pub(super) fn decode_speeds(mut bytes: &[u8], into: &mut BTreeMap<i64, u64>) {
    while let (Some(z), Some(n)) = (get_varint(&mut bytes), get_varint(&mut bytes)) {
        let b = ((z >> 1) as i64) ^ -((z & 1) as i64);
        *into.entry(b).or_default() += n;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Deltas to the rollup, per (grouping, day, key).
#[derive(Debug, Default)]
pub(super) struct Deltas {
    map: HashMap<(&'static str, i64, String), Sums>,
}

impl Deltas {
    /// Adds one attempt to the rows of each grouping.
    pub fn add(&mut self, f: &Fact<'_>) {
        let day = f.ended_at_ms.div_euclid(DAY_MS);
        let stage = if f.failed_stage.is_empty() {
            "-"
        } else {
            f.failed_stage
        };
        for (dim, key) in [
            ("all", String::new()),
            ("agent", f.agent_id.to_owned()),
            ("revision", f.generation.to_string()),
            ("stage", stage.to_owned()),
        ] {
            self.map.entry((dim, day, key)).or_default().add_fact(f);
        }
    }

    /// Adds the deltas to the rollup rows (creating the missing ones).
    pub fn apply(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut read = tx.prepare_cached(
            "SELECT attempts, converted, failed, unsuccessful, media_secs, bytes_in, bytes_out,
                with_captions, captions_lost, speeds
             FROM history_rollup WHERE dim = ?1 AND day = ?2 AND key = ?3",
        )?;
        let mut write = tx.prepare_cached(
            "INSERT OR REPLACE INTO history_rollup (dim, day, key, attempts, converted, failed,
                unsuccessful, media_secs, bytes_in, bytes_out, with_captions, captions_lost, speeds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for ((dim, day, key), delta) in self.map {
            let mut sums = read
                .query_row(params![dim, day, key], sums_of)
                .optional()?
                .unwrap_or_default();
            sums.merge(&delta);
            write.execute(params![
                dim,
                day,
                key,
                sums.attempts,
                sums.converted,
                sums.failed,
                sums.unsuccessful,
                sums.media_secs,
                sums.bytes_in,
                sums.bytes_out,
                sums.with_captions,
                sums.captions_lost,
                encode_speeds(&sums.speeds),
            ])?;
        }
        Ok(())
    }
}

/// The sums of a rollup row read from column 0 on (the order of [`Deltas::apply`]'s SELECT).
pub(super) fn sums_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Sums> {
    let blob: Vec<u8> = r.get(at + 9)?;
    let mut speeds = BTreeMap::new();
    decode_speeds(&blob, &mut speeds);
    Ok(Sums {
        attempts: r.get(at)?,
        converted: r.get(at + 1)?,
        failed: r.get(at + 2)?,
        unsuccessful: r.get(at + 3)?,
        media_secs: r.get(at + 4)?,
        bytes_in: r.get(at + 5)?,
        bytes_out: r.get(at + 6)?,
        with_captions: r.get(at + 7)?,
        captions_lost: r.get(at + 8)?,
        speeds,
    })
}

fn sums_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Sums> {
    sums_at(r, 0)
}

/// The columns [`fold_history`] reads, in its order.
const FACT_COLUMNS: &str = "ended_at_ms, agent_id, generation, outcome, failed_stage,
    media_secs, wall_secs, bytes_in, bytes_out, captions, captions_lost";

/// Folds the attempts of `history` that ended in `[from_ms, to_ms)` into deltas.
fn fold_history(conn: &Connection, from_ms: i64, to_ms: i64) -> rusqlite::Result<Deltas> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {FACT_COLUMNS} FROM history WHERE ended_at_ms >= ?1 AND ended_at_ms < ?2"
    ))?;
    let mut rows = stmt.query(params![from_ms, to_ms])?;
    let mut deltas = Deltas::default();
    while let Some(r) = rows.next()? {
        let agent: String = r.get(1)?;
        let outcome: String = r.get(3)?;
        let stage: String = r.get(4)?;
        let captions: String = r.get(9)?;
        deltas.add(&Fact {
            ended_at_ms: r.get(0)?,
            agent_id: &agent,
            generation: r.get(2)?,
            outcome: &outcome,
            failed_stage: &stage,
            media_secs: r.get(5)?,
            wall_secs: r.get(6)?,
            bytes_in: r.get(7)?,
            bytes_out: r.get(8)?,
            captions: &captions,
            captions_lost: r.get(10)?,
        });
    }
    Ok(deltas)
}

/// Sets the count of attempts the rollup covers.
pub(super) fn set_covered(conn: &Connection, rows: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('history_rollup_rows', ?1)",
        [rows.to_string()],
    )?;
    Ok(())
}

/// Adds `n` to the count of attempts the rollup covers.
pub(super) fn add_covered(conn: &Connection, n: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + ?1 WHERE key = 'history_rollup_rows'",
        [n],
    )?;
    Ok(())
}

/// Rebuilds the whole rollup from `history` when its count of covered attempts is missing or
/// differs from `history`'s. Returns whether it rebuilt.
pub(super) fn check(conn: &mut Connection) -> rusqlite::Result<bool> {
    let covered: Option<i64> = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'history_rollup_rows'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let rows: i64 = conn.query_row("SELECT count(*) FROM history", [], |r| r.get(0))?;
    if covered == Some(rows) {
        return Ok(false);
    }
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM history_rollup", [])?;
    fold_history(&tx, i64::MIN, i64::MAX)?.apply(&tx)?;
    set_covered(&tx, rows)?;
    tx.commit()?;
    Ok(true)
}

/// After `history` lost the attempts that ended before `before_ms`: drops the rollup of the
/// days before it and rebuilds the day it falls in from what is left of that day.
pub(super) fn pruned(tx: &Transaction<'_>, before_ms: i64, deleted: i64) -> rusqlite::Result<()> {
    let day = before_ms.div_euclid(DAY_MS);
    tx.execute("DELETE FROM history_rollup WHERE day <= ?1", [day])?;
    let start = day.saturating_mul(DAY_MS);
    fold_history(tx, start, start.saturating_add(DAY_MS))?.apply(tx)?;
    add_covered(tx, -deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_histograms_survive_their_blob() {
        let mut h = BTreeMap::new();
        h.insert(0, 1);
        h.insert(21, 300);
        h.insert(i64::MAX, u64::MAX);
        h.insert(-5, 2);
        let mut back = BTreeMap::new();
        decode_speeds(&encode_speeds(&h), &mut back);
        assert_eq!(back, h);
        let blob = encode_speeds(&h);
        let mut cut = BTreeMap::new();
        decode_speeds(&blob[..blob.len() - 1], &mut cut);
        assert!(cut.len() < h.len(), "a truncated blob yields what it holds");
    }

    #[test]
    fn buckets_truncate_like_sql() {
        assert_eq!(bucket("converted", 10.0, 10.0), Some(20));
        assert_eq!(bucket("converted", 10.0, 0.0), None);
        assert_eq!(bucket("failed", 10.0, 1.0), None);
        assert_eq!(bucket("converted", 1.0, 3.0), Some(6));
    }
}
