//! `fleetctl report [--since 7d] [--by agent|revision|day|stage] -o table|json|csv`: what the
//! fleet converted and failed, hours of media, bytes in and out (space saved), speed p50/p95,
//! failure rate and caption coverage, from the controller's job history.

use std::time::Duration;

use clap::{Args, ValueEnum};
use h264_proto::v1::{ReportReply, ReportRequest, ReportRow};
use serde::Serialize;

use super::client::{self, Failure};
use super::output::{time, Table, TabularFormat};

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// One row per agent.
    Agent,
    /// One row per configuration generation.
    Revision,
    /// One row per UTC day.
    Day,
    /// One row per failed stage (`-`: attempts that did not fail).
    Stage,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::Agent => "agent",
            By::Revision => "revision",
            By::Day => "day",
            By::Stage => "stage",
        }
    }
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window: attempts that ended within this long, e.g. `7d`, `30d`, `12h`.
    #[arg(long, default_value = "7d", value_parser = parse_since)]
    pub since: Duration,
    /// One row per agent, revision, day or failed stage (default: the total only).
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TabularFormat::Table)]
    pub output: TabularFormat,
}

/// Reads a window like `7d` (at least a second).
pub fn parse_since(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| d.as_secs() >= 1)
        .ok_or_else(|| format!("`{text}` is not a duration like 7d, 12h or 30m"))
}

/// The start of a window of length `d` ending now, in Unix milliseconds.
pub fn since_ms(d: Duration) -> i64 {
    (super::views::now_ms() - d.as_millis().min(i64::MAX as u128) as i64).max(1)
}

/// One row, as printed.
#[derive(Debug, Serialize)]
pub struct RowView {
    pub key: String,
    pub attempts: u64,
    pub converted: u64,
    pub failed: u64,
    pub unsuccessful: u64,
    pub failure_rate: f64,
    pub media_hours: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub bytes_saved: i64,
    pub speed_p50: f64,
    pub speed_p95: f64,
    pub with_captions: u64,
    pub captions_lost: u64,
    pub caption_coverage: f64,
}

impl From<&ReportRow> for RowView {
    fn from(r: &ReportRow) -> Self {
        Self {
            key: r.key.clone(),
            attempts: r.attempts,
            converted: r.converted,
            failed: r.failed,
            unsuccessful: r.unsuccessful,
            failure_rate: r.failure_rate,
            media_hours: r.media_hours,
            bytes_in: r.bytes_in,
            bytes_out: r.bytes_out,
            bytes_saved: r.bytes_in as i64 - r.bytes_out as i64,
            speed_p50: r.speed_p50,
            speed_p95: r.speed_p95,
            with_captions: r.with_captions,
            captions_lost: r.captions_lost,
            caption_coverage: r.caption_coverage,
        }
    }
}

/// The report, as printed.
#[derive(Debug, Serialize)]
pub struct ReportView {
    pub since: String,
    pub by: Option<&'static str>,
    pub rows: Vec<RowView>,
    pub total: RowView,
}

impl ReportView {
    fn of(reply: &ReportReply, by: Option<By>) -> Self {
        Self {
            since: time(reply.since_ms),
            by: by.map(By::name),
            rows: reply.rows.iter().map(RowView::from).collect(),
            total: RowView::from(&reply.total.clone().unwrap_or_default()),
        }
    }
}

/// Runs `report`.
pub fn run(controller: &client::Connect, args: ReportArgs) -> u8 {
    client::run("report", report(controller, args))
}

async fn report(controller: &client::Connect, args: ReportArgs) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let request = ReportRequest {
        since_ms: since_ms(args.since),
        by: args.by.map(By::name).unwrap_or_default().to_owned(),
    };
    let reply = client::call(&what, admin.report(request)).await?;
    let view = ReportView::of(&reply, args.by);
    let csv = args.output == TabularFormat::Csv;
    args.output.emit(&view, |v| table(v, csv));
    Ok(())
}

/// A byte count for people (`1.5 GB`), or exact for CSV.
fn bytes(n: i64, exact: bool) -> String {
    if exact {
        return n.to_string();
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v.abs() >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn table(view: &ReportView, csv: bool) -> Table {
    let first = view.by.unwrap_or("").to_ascii_uppercase();
    let mut t = Table::new(&[
        if first.is_empty() { "WINDOW" } else { &first },
        "CONVERTED",
        "FAILED",
        "ATTEMPTS",
        "FAIL RATE",
        "MEDIA H",
        "BYTES IN",
        "BYTES OUT",
        "SAVED",
        "SPEED P50",
        "SPEED P95",
        "CAPTIONS",
    ]);
    let pct = |r: f64| {
        if csv {
            format!("{r:.4}")
        } else {
            format!("{:.1}%", r * 100.0)
        }
    };
    let speed = |s: f64| {
        if csv {
            format!("{s:.2}")
        } else {
            format!("{s:.2}x")
        }
    };
    let mut line = |key: String, r: &RowView| {
        t.row(vec![
            key,
            r.converted.to_string(),
            r.failed.to_string(),
            r.attempts.to_string(),
            pct(r.failure_rate),
            format!("{:.2}", r.media_hours),
            bytes(r.bytes_in as i64, csv),
            bytes(r.bytes_out as i64, csv),
            bytes(r.bytes_saved, csv),
            speed(r.speed_p50),
            speed(r.speed_p95),
            pct(r.caption_coverage),
        ]);
    };
    for r in &view.rows {
        line(r.key.clone(), r);
    }
    let total = if view.by.is_some() {
        "TOTAL".to_string()
    } else {
        format!("since {}", view.since)
    };
    line(total, &view.total);
    t
}
