//! `h264-history-bench`: the job history's query benchmark (benches/README.md). It fills a
//! controller database (a real `controller.db` in a temporary state folder, through the store
//! the controller uses) with `--records` job attempts from `--agents` agents spread over
//! `--days` days (5 % unsuccessful, 30 revisions, a few file names repeated across agents),
//! then times each query `fleetctl report` and `fleetctl jobs` (and the console's history page)
//! make, `--repeat` times each, and prints the median and the slowest. Each report is timed
//! twice side by side: read from the per-day rollup (what the controller does) and by a scan of
//! the attempts (the reference, what it did before the rollup), and the two must agree.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use h264_controller::store::{GroupBy, JobQuery, Store};
use h264_proto::v1::JobAttempt;

/// Times the job history's queries over a large history.
#[derive(Parser, Debug)]
struct Args {
    /// Job attempts stored.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Agents they come from.
    #[arg(long, default_value_t = 1000)]
    agents: u64,
    /// Days they spread over (ending now).
    #[arg(long, default_value_t = 60)]
    days: u64,
    /// Runs of each query.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record(i: u64, args: &Args, now: i64) -> (String, JobAttempt) {
    // A cheap, deterministic scramble, so agents, times and outcomes interleave.
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let agent = format!("studio-{:04}", h % args.agents);
    let span_ms = args.days * 86_400_000;
    let ended = now - (h >> 20) as i64 % span_ms as i64;
    let outcome = match h % 100 {
        0..=2 => "failed",
        3 | 4 => "retrying",
        _ => "converted",
    };
    let converted = outcome == "converted";
    let media = 600.0 + (h % 3000) as f64;
    let speed = 0.5 + (h % 400) as f64 / 40.0;
    (
        agent,
        JobAttempt {
            id: format!("bench-{i}"),
            ended_at_ms: ended,
            file: format!("/srv/recordings/channel-{}/show-{}.ts", h % 40, i % 200_000),
            generation: 1 + (h % 30),
            outcome: outcome.into(),
            failed_stage: if converted { "" } else { "transcode" }.into(),
            message: if converted {
                ""
            } else {
                "ffmpeg exited with status 1"
            }
            .into(),
            attempt: 1,
            mode: if h.is_multiple_of(7) {
                "remux"
            } else {
                "encode"
            }
            .into(),
            bytes_in: 2_000_000_000,
            bytes_out: if converted { 700_000_000 } else { 0 },
            media_secs: media,
            wall_secs: media / speed,
            captions: if h.is_multiple_of(5) {
                "none"
            } else {
                "srt (ffmpeg)"
            }
            .into(),
            ..JobAttempt::default()
        },
    )
}

fn time<T>(label: &str, repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        last = Some(f()?);
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "{label:<58} median {:>8.1} ms   max {:>8.1} ms",
        ms(median),
        ms(max)
    );
    last.context("no run")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile_dir()?;
    let store = Store::open(&dir, 10_000).context("opening the store")?;
    let now = now_ms();
    let t = Instant::now();
    let mut i = 0;
    while i < args.records {
        let n = (args.records - i).min(5000);
        let batch: Vec<_> = (i..i + n).map(|k| record(k, &args, now)).collect();
        store.insert_history(&batch)?;
        i += n;
    }
    let took = t.elapsed();
    println!(
        "stored {} attempts from {} agents over {} days in {:.1} s ({:.0} records/s, 5000 per transaction)",
        args.records,
        args.agents,
        args.days,
        took.as_secs_f64(),
        args.records as f64 / took.as_secs_f64()
    );
    let day = 86_400_000;
    let r = args.repeat;
    for (label, by) in [
        ("report --since 30d", GroupBy::All),
        ("report --since 30d --by agent", GroupBy::Agent),
        ("report --since 30d --by revision", GroupBy::Revision),
        ("report --since 30d --by day", GroupBy::Day),
        ("report --since 30d --by stage", GroupBy::Stage),
    ] {
        let scan = time(&format!("{label} (scan of the attempts)"), r, || {
            Ok(store.report_by_scan(now - 30 * day, by)?)
        })?;
        let rep = time(&format!("{label} (rollup)"), r, || {
            Ok(store.report(now - 30 * day, by)?)
        })?;
        let (a, b) = (
            scan.total.clone().unwrap_or_default(),
            rep.total.clone().unwrap_or_default(),
        );
        anyhow::ensure!(
            a.attempts == b.attempts
                && a.converted == b.converted
                && a.unsuccessful == b.unsuccessful
                && a.bytes_out == b.bytes_out
                && a.speed_p95 == b.speed_p95
                && scan.rows.len() == rep.rows.len(),
            "{label}: the rollup and the scan disagree"
        );
        if by == GroupBy::All {
            let t = rep.total.unwrap_or_default();
            println!(
                "  ({} attempts in the window, {:.0} media hours, speed p50 {:.2}x p95 {:.2}x)",
                t.attempts, t.media_hours, t.speed_p50, t.speed_p95
            );
        }
    }
    let q = |f: &dyn Fn(&mut JobQuery)| {
        let mut q = JobQuery {
            limit: 100,
            ..JobQuery::default()
        };
        f(&mut q);
        q
    };
    let queries = [
        ("jobs (newest 100)", q(&|_| {})),
        (
            "jobs --since 7d --limit 500 (console history page)",
            q(&|q| {
                q.since_ms = now - 7 * day;
                q.limit = 500;
            }),
        ),
        ("jobs --failed", q(&|q| q.failed_only = true)),
        (
            "jobs --agent studio-0042",
            q(&|q| q.agent_id = Some("studio-0042".into())),
        ),
        (
            "jobs --file '*show-123456.ts' (one file, all agents)",
            q(&|q| q.file_glob = Some("*show-123456.ts".into())),
        ),
        (
            "jobs --agent studio-0042 --failed --since 7d",
            q(&|q| {
                q.agent_id = Some("studio-0042".into());
                q.failed_only = true;
                q.since_ms = now - 7 * day;
            }),
        ),
    ];
    for (label, query) in queries {
        time(label, r, || Ok(store.jobs(&query)?))?;
    }
    time("prune (nothing older than keep)", r, || {
        Ok(store.prune_history(now - 90 * day)?)
    })?;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("h264-history-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
