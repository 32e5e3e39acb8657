//! `fleetctl report`: aggregates of the job history over a window, in one pass.
//!
//! One `GROUP BY` over the window gives, per group and per speed bucket (1/20 of real time
//! wide), the counts and sums; the rows of a group are then folded together here, and the
//! speed percentiles are read from the buckets (so they are exact to 0.05x). One scan of the
//! table, whatever the grouping, and no row is sent to Rust one by one.

use std::collections::BTreeMap;

use h264_proto::v1::{ReportReply, ReportRow};
use rusqlite::params;

use super::history::UNSUCCESSFUL;
use super::{Store, StoreError};

/// Speed buckets per 1x of real time.
const BUCKETS_PER_X: f64 = 20.0;

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
             FROM history WHERE ended_at_ms >= ?1
             GROUP BY k, b",
            key = by.key_sql()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut groups: BTreeMap<String, Fold> = BTreeMap::new();
        let mut rows = stmt.query(params![since_ms]).map_err(|e| self.err(e))?;
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
        let mut total = Fold::default();
        for fold in groups.values() {
            total.merge(fold);
        }
        let rows = match by {
            GroupBy::All => Vec::new(),
            _ => groups.into_iter().map(|(k, f)| f.finish(k)).collect(),
        };
        Ok(ReportReply {
            rows,
            total: Some(total.finish("all".into())),
            since_ms,
        })
    }
}

impl Store {
    /// Converted attempts since `since_ms` per speed bucket (a quarter of real time wide):
    /// each bucket's lower bound and count, slowest first.
    pub fn speed_histogram(&self, since_ms: i64) -> Result<Vec<(f64, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT CAST(media_secs / wall_secs * 4 AS INTEGER) AS b, count(*)
                 FROM history WHERE ended_at_ms >= ?1 AND outcome = 'converted' AND wall_secs > 0
                 GROUP BY b ORDER BY b",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![since_ms], |r| {
                Ok((r.get::<_, i64>(0)? as f64 / 4.0, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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

    #[test]
    fn groupings_are_named() {
        assert_eq!(GroupBy::parse("").unwrap(), GroupBy::All);
        assert_eq!(GroupBy::parse("day").unwrap(), GroupBy::Day);
        assert!(GroupBy::parse("week")
            .unwrap_err()
            .contains("agent, revision"));
    }
}
