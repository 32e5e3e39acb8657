//! `fleetctl status [--watch] [--timeout DURATION]`: the fleet at a glance, fed by the
//! controller's `WatchFleet` stream (the full state first, then every change, at most four
//! times a second).
//!
//! Without `--watch` it prints the first snapshot and exits. With it, on a terminal the table
//! is redrawn in place; otherwise (a pipe, a log) every snapshot is printed in turn after a
//! `fleet at TIME` line, and with `-o json` each snapshot is one line of JSON, so that scripts
//! can follow it. `--timeout` stops watching after that long (exit 0).

use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use clap::Args;
use h264_proto::v1::{FleetSnapshot, WatchFleetRequest};
use serde::Serialize;

use super::client::{self, Failure, EXIT_UNREACHABLE};
use super::output::{time, Format, OutputArg, Table};
use super::views::AgentView;

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Keep watching: print the fleet again on every change.
    #[arg(short, long)]
    pub watch: bool,
    /// Stop watching after this long (e.g. `30s`, `5m`).
    #[arg(long, value_parser = humantime::parse_duration, requires = "watch")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Debug, Serialize)]
struct SnapshotView {
    at: String,
    at_ms: i64,
    agents: Vec<AgentView>,
}

/// Runs `status`.
pub fn run(controller: &client::Connect, args: StatusArgs) -> u8 {
    client::run("status", status(controller, args))
}

async fn status(controller: &client::Connect, args: StatusArgs) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let mut stream = client::call(&what, admin.watch_fleet(WatchFleetRequest {})).await?;
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let live = std::io::stdout().is_terminal() && args.out.output == Format::Table;
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, stream.message()).await.ok(),
                None => Some(stream.message().await),
            }
        };
        let snapshot = match next.await {
            None => return Ok(()),
            Some(Ok(Some(s))) => s,
            Some(Ok(None)) => {
                return Err(Failure::new(
                    EXIT_UNREACHABLE,
                    format!("{what} ended the watch (shutting down?)"),
                ))
            }
            Some(Err(status)) => return Err(Failure::from_status(&what, &status)),
        };
        print_snapshot(&snapshot, args.out.output, args.watch, live);
        if !args.watch {
            return Ok(());
        }
    }
}

fn print_snapshot(s: &FleetSnapshot, format: Format, watching: bool, live: bool) {
    let view = SnapshotView {
        at: time(s.at_ms),
        at_ms: s.at_ms,
        agents: s.agents.iter().map(AgentView::from).collect(),
    };
    let mut out = std::io::stdout().lock();
    let _ = match format {
        Format::Json if watching => {
            writeln!(out, "{}", serde_json::to_string(&view).unwrap_or_default())
        }
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        ),
        Format::Yaml => write!(
            out,
            "---\n{}",
            yaml_serde::to_string(&view).unwrap_or_default()
        ),
        Format::Table | Format::Csv => {
            let connected = view.agents.iter().filter(|a| a.connected).count();
            let clear = if live { "\x1b[H\x1b[2J" } else { "" };
            write!(
                out,
                "{clear}fleet at {}: {} agents, {connected} connected\n{}{}",
                view.at,
                view.agents.len(),
                table(&view.agents),
                if live || !watching { "" } else { "\n" }
            )
        }
    };
    let _ = out.flush();
}

fn table(agents: &[AgentView]) -> String {
    let mut t = Table::new(&[
        "AGENT",
        "CONNECTED",
        "GENERATION",
        "SYNC",
        "QUEUE",
        "RUNNING",
        "CONVERTED",
        "FAILED",
        "DISK",
    ]);
    for a in agents {
        let s = a.stats.as_ref();
        let dash = || "-".to_string();
        t.row(vec![
            a.id.clone(),
            a.connected_text(),
            a.generation_text(),
            a.sync.clone(),
            s.map_or_else(dash, |s| s.queue_depth.to_string()),
            s.map_or_else(dash, |s| s.running_text()),
            s.map_or_else(dash, |s| s.journal.converted.to_string()),
            s.map_or_else(dash, |s| s.journal.failed.to_string()),
            s.map_or_else(dash, |s| s.disk_text()),
        ]);
    }
    t.render()
}
