//! Job history end to end, all real: an `h264-agent` converting with the real FFmpeg while its
//! controller is down keeps the records of its attempts (a conversion and a failure), delivers
//! them when the controller is back, and `fleetctl jobs` and `fleetctl report` find them.

use crate::bins;
use crate::controller;
use crate::fleet_agent;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use controller::ControllerProcess;
use fleet_agent::FleetAgent;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::wait_for;
use serde_json::Value;

/// Disk thresholds in bytes, so a shared build machine's nearly full disk does not pause
/// intake (the default critical level is 5 %).
const DISK: &str = "[disk]\nwarn = \"2GB\"\ncritical = \"1GB\"\n";

fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn an_offline_agent_delivers_its_history_and_the_cli_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let bin = bins::workspace_bin("h264-controller");
    let mut c = ControllerProcess::start(&bin, &dir.path().join("state"));
    let url = c.url();
    let agent = FleetAgent::start_with("studio-h", &url, false, &[], DISK);
    wait_for(
        "the agent to connect",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let agents = json(&fleetctl(&url, &["get", "agents", "-o", "json"]));
            (agents[0]["connected"] == true).then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));

    // The controller goes away; the agent converts one recording and fails on another.
    c.kill();
    Fixture::H264Ts.copy_to(&agent.input, "news,=1.ts");
    Fixture::TextAsVideo.copy_to(&agent.input, "broken.ts");
    let out = agent.dir.path().join("h264").join("news,=1.mp4");
    wait_for(
        "the conversion",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || out.exists().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let outbox = agent
        .dir
        .path()
        .join("state")
        .join("history-outbox.sqlite3");
    assert!(outbox.exists(), "the records wait on disk");

    // Back: the agent reconnects and delivers both records.
    c.start_again();
    let jobs = wait_for(
        "the history to arrive",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let jobs = json(&fleetctl(&url, &["jobs", "-o", "json"]));
            let list = jobs["jobs"].as_array().cloned().unwrap_or_default();
            (list.len() >= 2).then_some(list)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let converted = jobs
        .iter()
        .find(|j| j["outcome"] == "converted")
        .unwrap_or_else(|| panic!("{jobs:?}"));
    assert_eq!(converted["agent"], "studio-h");
    assert!(converted["file"].as_str().unwrap().ends_with("news,=1.ts"));
    assert_eq!(converted["mode"], "encode");
    assert!(converted["media_secs"].as_f64().unwrap() > 0.5);
    assert!(converted["bytes_out"].as_u64().unwrap() > 0);
    assert!(converted["speed"].as_f64().unwrap() > 0.0);
    let failed = jobs
        .iter()
        .find(|j| j["outcome"] == "failed")
        .unwrap_or_else(|| panic!("{jobs:?}"));
    assert!(failed["file"].as_str().unwrap().ends_with("broken.ts"));
    assert!(!failed["failed_stage"].as_str().unwrap().is_empty());

    // Filters.
    let only_failed = json(&fleetctl(&url, &["jobs", "--failed", "-o", "json"]));
    assert_eq!(only_failed["jobs"].as_array().unwrap().len(), 1);
    let by_file = json(&fleetctl(
        &url,
        &[
            "jobs", "--file", "*news*", "--agent", "studio-h", "-o", "json",
        ],
    ));
    assert_eq!(by_file["jobs"].as_array().unwrap().len(), 1);
    let table = fleetctl(&url, &["jobs"]);
    assert!(table.status.success());
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("ENDED") && text.contains("broken.ts"),
        "{text}"
    );

    // Reports.
    let report = json(&fleetctl(
        &url,
        &["report", "--since", "1d", "--by", "agent", "-o", "json"],
    ));
    assert_eq!(report["rows"][0]["key"], "studio-h");
    assert_eq!(report["total"]["converted"], 1);
    assert_eq!(report["total"]["failed"], 1);
    assert_eq!(report["total"]["failure_rate"], 0.5);
    assert!(report["total"]["media_hours"].as_f64().unwrap() > 0.0);
    let csv = fleetctl(&url, &["report", "--by", "day", "-o", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("DAY,CONVERTED,FAILED,ATTEMPTS,FAIL RATE"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let csv = fleetctl(&url, &["jobs", "--file", "*news*", "-o", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.contains("\"") && !csv.contains(",=1.ts,"),
        "quoted: {csv}"
    );
    let bad = fleetctl(&url, &["report", "--since", "soon"]);
    assert_eq!(bad.status.code(), Some(2));

    // Delivered records leave the outbox.
    wait_for(
        "the outbox to empty",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || (outbox_len(&outbox) == 0).then_some(()),
    )
    .unwrap();
}

fn outbox_len(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap()
}
