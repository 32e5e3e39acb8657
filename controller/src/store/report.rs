//! `fleetctl report`: aggregates of the job history over a window.
//!
//! The whole days of the window are read from the per-day rollup ([`super::rollup`]): about a
//! thousand rows per day for a thousand agents, whatever the number of attempts. The part of
//! the window before its first midnight is read from `history` with one `GROUP BY` per group
//! and speed bucket (1/20 of real time wide). The rows of a group are folded together here, and
//! the speed percentiles are read from the buckets (so they are exact to 0.05x). Every count
//! and byte sum is exact.

use std::collections::BTreeMap;

use h264_proto::v1::{ReportReply, ReportRow};
use rusqlite::params;

use super::history::UNSUCCESSFUL;
use super::rollup::{self, Sums, BUCKETS_PER_X, DAY_MS};
use super::{Store, StoreError};

/// How a report is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row.
    All,
    /// Per agent.
    Agent,
    /// Per configuration generation.
    Revision,
    /// Per UTC day.
    Day,
    /// Per failed stage (`-` for attempts that did not fail).
    Stage,
}

impl GroupBy {
    /// Reads `""`, `agent`, `revision`, `day` or `stage`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Ok(match text {
            "" | "all" => GroupBy::All,
            "agent" => GroupBy::Agent,
            "revision" => GroupBy::Revision,
            "day" => GroupBy::Day,
            "stage" => GroupBy::Stage,
            other => {
                return Err(format!(
                    "cannot group a report by `{}`: use agent, revision, day or stage",
                    other.escape_debug()
                ))
            }
        })
    }

    /// The rollup's grouping and the SQL of the key its rows report.
    fn rollup_sql(self) -> (&'static str, &'static str) {
        match self {
            GroupBy::All => ("all", "'all'"),
            GroupBy::Day => ("all", "strftime('%Y-%m-%d', day * 86400, 'unixepoch')"),
            GroupBy::Agent => ("agent", "key"),
            GroupBy::Revision => ("revision", "key"),
            GroupBy::Stage => ("stage", "key"),
        }
    }

    fn key_sql(self) -> &'static str {
        match self {
            GroupBy::All => "'all'",
            GroupBy::Agent => "agent_id",
            GroupBy::Revision => "CAST(generation AS TEXT)",
            GroupBy::Day => "strftime('%Y-%m-%d', ended_at_ms / 1000, 'unixepoch')",
            GroupBy::Stage => "CASE failed_stage WHEN '' THEN '-' ELSE failed_stage END",
        }
    }
}

/// A group being folded: its row and its speed histogram.
#[derive(Default)]
struct Fold {
    row: ReportRow,
    speeds: BTreeMap<i64, u64>,
}

impl Fold {
    fn add(&mut self, other: &ReportRow, bucket: Option<i64>) {
        let r = &mut self.row;
        r.attempts += other.attempts;
        r.converted += other.converted;
        r.failed += other.failed;
        r.unsuccessful += other.unsuccessful;
        r.media_hours += other.media_hours;
        r.bytes_in += other.bytes_in;
        r.bytes_out += other.bytes_out;
        r.with_captions += other.with_captions;
        r.captions_lost += other.captions_lost;
        if let Some(b) = bucket {
            *self.speeds.entry(b).or_default() += other.converted;
        }
    }

    fn add_sums(&mut self, s: &Sums) {
        let n = |v: i64| v.max(0) as u64;
        let part = ReportRow {
            attempts: n(s.attempts),
            converted: n(s.converted),
            failed: n(s.failed),
            unsuccessful: n(s.unsuccessful),
            media_hours: s.media_secs / 3600.0,
            bytes_in: n(s.bytes_in),
            bytes_out: n(s.bytes_out),
            with_captions: n(s.with_captions),
            captions_lost: n(s.captions_lost),
            ..ReportRow::default()
        };
        self.add(&part, None);
        for (b, c) in &s.speeds {
            *self.speeds.entry(*b).or_default() += c;
        }
    }

    fn merge(&mut self, other: &Fold) {
        self.add(&other.row, None);
        for (b, n) in &other.speeds {
            *self.speeds.entry(*b).or_default() += n;
        }
    }

    fn finish(mut self, key: String) -> ReportRow {
        let r = &mut self.row;
        r.key = key;
        let tried = r.converted + r.unsuccessful;
        r.failure_rate = ratio(r.unsuccessful, tried);
        r.caption_coverage = ratio(r.with_captions, r.converted);
        r.speed_p50 = percentile(&self.speeds, 0.50);
        r.speed_p95 = percentile(&self.speeds, 0.95);
        self.row
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The `p` quantile of a bucketed histogram, at the middle of its bucket.
fn percentile(speeds: &BTreeMap<i64, u64>, p: f64) -> f64 {
    let n: u64 = speeds.values().sum();
    if n == 0 {
        return 0.0;
    }
    let rank = ((p * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (b, count) in speeds {
        seen += count;
        if seen >= rank {
            return (*b as f64 + 0.5) / BUCKETS_PER_X;
        }
    }
    0.0
}

impl Store {
    /// The report over the attempts that ended at or after `since_ms`, grouped by `by`.
    pub fn report(&self, since_ms: i64, by: GroupBy) -> Result<ReportReply, StoreError> {
        Ok(reply(self.report_groups(since_ms, by)?, since_ms, by))
    }

    /// The same report read from `history` alone, without the rollup: the reference the
    /// rollup is checked against (tests) and the benchmark's baseline.
    pub fn report_by_scan(&self, since_ms: i64, by: GroupBy) -> Result<ReportReply, StoreError> {
        let mut groups = BTreeMap::new();
        let conn = self.conn();
        self.scan_groups(&conn, since_ms, i64::MAX, by, &mut groups)?;
        Ok(reply(groups, since_ms, by))
    }
}

/// The reply of folded groups: their rows (none for [`GroupBy::All`]) and their total.
fn reply(groups: BTreeMap<String, Fold>, since_ms: i64, by: GroupBy) -> ReportReply {
    let mut total = Fold::default();
    for fold in groups.values() {
        total.merge(fold);
    }
    let rows = match by {
        GroupBy::All => Vec::new(),
        _ => groups.into_iter().map(|(k, f)| f.finish(k)).collect(),
    };
    ReportReply {
        rows,
        total: Some(total.finish("all".into())),
        since_ms,
    }
}

impl Store {
    /// The folded groups of a report: the window's whole days from the rollup, the part
    /// before its first midnight from `history`.
    fn report_groups(
        &self,
        since_ms: i64,
        by: GroupBy,
    ) -> Result<BTreeMap<String, Fold>, StoreError> {
        let first_day = since_ms.div_euclid(DAY_MS) + i64::from(since_ms.rem_euclid(DAY_MS) != 0);
        let midnight = first_day.saturating_mul(DAY_MS);
        let mut groups: BTreeMap<String, Fold> = BTreeMap::new();
        let conn = self.conn();
        if since_ms < midnight {
            self.scan_groups(&conn, since_ms, midnight, by, &mut groups)?;
        }
        let (dim, key) = by.rollup_sql();
        let sql = format!(
            "SELECT {key}, attempts, converted, failed, unsuccessful, media_secs, bytes_in,
                bytes_out, with_captions, captions_lost, speeds
             FROM history_rollup WHERE dim = ?1 AND day >= ?2"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![dim, first_day])
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let key: String = r.get(0).map_err(|e| self.err(e))?;
            let sums = rollup::sums_at(r, 1).map_err(|e| self.err(e))?;
            groups.entry(key).or_default().add_sums(&sums);
        }
        Ok(groups)
    }

    /// Folds the attempts that ended in `[from_ms, to_ms)` into `groups`, from `history`.
    fn scan_groups(
        &self,
        conn: &rusqlite::Connection,
        from_ms: i64,
        to_ms: i64,
        by: GroupBy,
        groups: &mut BTreeMap<String, Fold>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT {key} AS k,
                CASE WHEN outcome = 'converted' AND wall_secs > 0
                    THEN CAST(media_secs / wall_secs * {BUCKETS_PER_X} AS INTEGER) END AS b,
                count(*),
                sum(outcome = 'converted'),
                sum(outcome = 'failed'),
                sum(outcome IN {UNSUCCESSFUL}),
                total(CASE WHEN outcome = 'converted' THEN media_secs END),
                sum(CASE WHEN outcome = 'converted' THEN bytes_in ELSE 0 END),
                sum(CASE WHEN outcome = 'converted' THEN bytes_out ELSE 0 END),
                sum(outcome = 'converted' AND captions LIKE '%(%'),
                sum(outcome = 'converted' AND captions_lost)
             FROM history WHERE ended_at_ms >= ?1 AND ended_at_ms < ?2
             GROUP BY k, b",
            key = by.key_sql()
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![from_ms, to_ms])
            .map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let get = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            let key: String = r.get(0).map_err(|e| self.err(e))?;
            let bucket: Option<i64> = r.get(1).map_err(|e| self.err(e))?;
            let part = (|| {
                Ok::<_, rusqlite::Error>(ReportRow {
                    attempts: get(2)?,
                    converted: get(3)?,
                    failed: get(4)?,
                    unsuccessful: get(5)?,
                    media_hours: r.get::<_, f64>(6)? / 3600.0,
                    bytes_in: get(7)?,
                    bytes_out: get(8)?,
                    with_captions: get(9)?,
                    captions_lost: get(10)?,
                    ..ReportRow::default()
                })
            })()
            .map_err(|e| self.err(e))?;
            groups.entry(key).or_default().add(&part, bucket);
        }
        Ok(())
    }

    /// Converted attempts since `since_ms` per speed bucket (a quarter of real time wide):
    /// each bucket's lower bound and count, slowest first.
    pub fn speed_histogram(&self, since_ms: i64) -> Result<Vec<(f64, u64)>, StoreError> {
        let mut total = Fold::default();
        for fold in self.report_groups(since_ms, GroupBy::All)?.values() {
            total.merge(fold);
        }
        // A 1/20x bucket lies wholly inside one quarter-x bucket: b / 5 (rounded down).
        let mut quarters: BTreeMap<i64, u64> = BTreeMap::new();
        for (b, n) in total.speeds {
            *quarters.entry(b.div_euclid(5)).or_default() += n;
        }
        Ok(quarters
            .into_iter()
            .map(|(q, n)| (q as f64 / 4.0, n))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut h = BTreeMap::new();
        h.insert(20, 50); // 1.0x-1.05x
        h.insert(100, 45); // 5x
        h.insert(400, 5); // 20x
        assert_eq!(percentile(&h, 0.5), 20.5 / 20.0);
        assert_eq!(percentile(&h, 0.95), 100.5 / 20.0);
        assert_eq!(percentile(&h, 0.96), 400.5 / 20.0);
        assert_eq!(percentile(&BTreeMap::new(), 0.5), 0.0);
    }

    use h264_proto::v1::JobAttempt;

    /// Attempts spread over ten days before `now`, every outcome, agent, revision and stage.
    fn attempts(from: u64, n: u64, now: i64) -> Vec<(String, JobAttempt)> {
        (from..from + n)
            .map(|i| {
                let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let outcome = [
                    "converted",
                    "converted",
                    "failed",
                    "retrying",
                    "conflict",
                    "cancelled",
                ][(h % 6) as usize];
                let media = 60.0 + (h % 900) as f64;
                (
                    format!("agent-{}", h % 7),
                    JobAttempt {
                        id: format!("a-{i}"),
                        ended_at_ms: now - ((h >> 16) % (10 * DAY_MS as u64)) as i64,
                        file: format!("/rec/{i}.ts"),
                        generation: 1 + h % 4,
                        outcome: outcome.into(),
                        failed_stage: if outcome == "converted" { "" } else { "verify" }.into(),
                        bytes_in: 1000 + h % 5000,
                        bytes_out: 300 + h % 700,
                        media_secs: media,
                        wall_secs: if h % 11 == 0 {
                            0.0
                        } else {
                            media / (0.3 + (h % 97) as f64 / 7.0)
                        },
                        captions: if h % 3 == 0 { "srt (ffmpeg)" } else { "none" }.into(),
                        captions_lost: h % 13 == 0,
                        ..JobAttempt::default()
                    },
                )
            })
            .collect()
    }

    fn assert_same(a: &ReportReply, b: &ReportReply, what: &str) {
        let rows = |r: &ReportReply| {
            let mut v = r.rows.clone();
            v.extend(r.total.clone());
            v
        };
        let (a, b) = (rows(a), rows(b));
        assert_eq!(a.len(), b.len(), "{what}: groups");
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x.media_hours - y.media_hours).abs() < 1e-9,
                "{what}: {x:?} vs {y:?}"
            );
            let (mut x, mut y) = (x.clone(), y.clone());
            x.media_hours = 0.0;
            y.media_hours = 0.0;
            assert_eq!(x, y, "{what}");
        }
    }

    /// The rollup gives the report a scan of every attempt gives, after inserts (a record
    /// delivered twice included), after pruning inside a day, and after a rebuild at open.
    #[test]
    fn the_rollup_matches_a_scan_of_the_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_780_000_123_456;
        let check = |s: &Store, what: &str| {
            for since in [
                0,
                now - 3 * DAY_MS,
                now - 7 * DAY_MS - 1234,
                (now - 7 * DAY_MS).div_euclid(DAY_MS) * DAY_MS,
            ] {
                for by in [
                    GroupBy::All,
                    GroupBy::Agent,
                    GroupBy::Revision,
                    GroupBy::Day,
                    GroupBy::Stage,
                ] {
                    let fast = s.report(since, by).unwrap();
                    let scan = s.report_by_scan(since, by).unwrap();
                    assert_same(&fast, &scan, &format!("{what}, since {since}, {by:?}"));
                }
            }
            let hist = s.speed_histogram(now - 5 * DAY_MS).unwrap();
            let converted: u64 = hist.iter().map(|h| h.1).sum();
            let total = s
                .report_by_scan(now - 5 * DAY_MS, GroupBy::All)
                .unwrap()
                .total
                .unwrap();
            assert!(
                converted <= total.converted && converted > 0,
                "{what}: speed histogram"
            );
        };
        {
            let s = Store::open(dir.path(), 10).unwrap();
            s.insert_history(&attempts(0, 3000, now)).unwrap();
            assert_eq!(s.insert_history(&attempts(2500, 1000, now)).unwrap(), 500);
            check(&s, "after inserts");
            let pruned = s.prune_history(now - 6 * DAY_MS - 5_000_000).unwrap();
            assert!(pruned > 0);
            check(&s, "after pruning");
            // As a controller without the rollup would leave it: attempts the rollup lacks.
            s.conn()
                .execute(
                    "DELETE FROM history WHERE id IN ('a-1', 'a-2', 'a-3000')",
                    [],
                )
                .unwrap();
        }
        let s = Store::open(dir.path(), 10).unwrap();
        check(&s, "after the rebuild at open");
    }

    #[test]
    fn groupings_are_named() {
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::All);
        assert_eq!(GroupBy::parse("day").unwrap(), GroupBy::Day);
        assert!(GroupBy::parse("week")
            .unwrap_err()
            .contains("agent, revision"));
    }
}
