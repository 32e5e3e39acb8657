//! fleetctl's controller verbs through the real binaries: a real `h264-controller` on a free
//! loopback port, fleetctl run as a process, and a protocol-speaking test agent where an agent
//! is needed. Output, JSON shapes and exit codes (0 ok, 1 refused, 2 invalid, 3 unreachable).

use crate::bins;
use crate::controller;
use crate::fake_agent;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use controller::ControllerProcess;
use fake_agent::{hello, FakeAgent};
use h264_proto::v1::{HeldRoot, StatsReply};
use serde_json::Value;

/// The controller binary of this build.
fn controller_bin() -> PathBuf {
    bins::workspace_bin("h264-controller")
}

fn start() -> (tempfile::TempDir, ControllerProcess) {
    let dir = tempfile::tempdir().unwrap();
    let c = ControllerProcess::start(&controller_bin(), &dir.path().join("state"));
    (dir, c)
}

fn fleetctl(controller: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", controller)
        .env(
            "FLEETCTL_TOKEN_FILE",
            controller::token_file_for(controller),
        )
        .output()
        .expect("fleetctl runs")
}

/// Runs fleetctl, checks its exit code, returns (stdout, stderr).
fn expect(controller: &str, code: i32, args: &[&str]) -> (String, String) {
    let out = fleetctl(controller, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "fleetctl {args:?}:\n{o}{e}");
    (o, e)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn write_manifest(dir: &Path, name: &str, crf: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: {crf}\n"),
    )
    .unwrap();
    path
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn apply_creates_one_revision_per_spec_and_dry_run_none() {
    let (dir, c) = start();
    let url = c.url();
    let f = write_manifest(dir.path(), "fleet.yaml", 22);
    let f = f.to_str().unwrap();

    let (out, _) = expect(&url, 0, &["apply", "-f", f, "--dry-run"]);
    assert!(out.contains("would create a new revision"), "{out}");
    let (out, _) = expect(&url, 0, &["get", "revisions", "-o", "json"]);
    assert_eq!(
        json(&out),
        Value::Array(vec![]),
        "a dry run creates nothing"
    );

    let (out, _) = expect(&url, 0, &["apply", "-f", f]);
    assert!(out.contains("revision 1 created"), "{out}");
    let (out, _) = expect(&url, 0, &["apply", "-f", f, "-o", "json"]);
    let v = json(&out);
    assert_eq!(
        (v["created"].as_bool(), v["generation"].as_u64()),
        (Some(false), Some(1))
    );
    let (out, _) = expect(&url, 0, &["apply", "-f", f]);
    assert!(out.contains("unchanged"), "{out}");
    let (out, _) = expect(&url, 0, &["apply", "-f", f, "--dry-run"]);
    assert!(out.contains("unchanged from revision 1"), "{out}");

    let g = write_manifest(dir.path(), "fleet2.yaml", 23);
    let (out, _) = expect(&url, 0, &["apply", "-f", g.to_str().unwrap()]);
    assert!(out.contains("revision 2 created"), "{out}");
    let (out, _) = expect(&url, 0, &["get", "revisions", "-o", "json"]);
    let revs = json(&out);
    let gens: Vec<u64> = revs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(gens, [2, 1]);
    assert_eq!(revs[0]["sha256"].as_str().unwrap().len(), 64);
    let (out, _) = expect(&url, 0, &["get", "revisions", "-o", "yaml"]);
    assert!(out.contains("- generation: 2"), "{out}");
    let (out, _) = expect(&url, 0, &["get", "revisions"]);
    assert!(out.starts_with("GENERATION"), "{out}");
}

#[test]
fn invalid_manifest_exits_2_with_every_problem_and_applies_nothing() {
    let (dir, c) = start();
    let url = c.url();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: 70\n    presett: fast\n",
    )
    .unwrap();
    let (_, err) = expect(&url, 2, &["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("bad.yaml:7: spec.transcode.crf"), "{err}");
    assert!(err.contains("presett"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    let (out, _) = expect(&url, 0, &["get", "revisions", "-o", "json"]);
    assert_eq!(json(&out), Value::Array(vec![]));
    // Missing file: invalid input too.
    expect(
        &url,
        2,
        &[
            "apply",
            "-f",
            dir.path().join("none.yaml").to_str().unwrap(),
        ],
    );
    // Invalid even without a controller: checked before connecting.
    expect(
        "http://127.0.0.1:1",
        2,
        &["apply", "-f", f.to_str().unwrap()],
    );
}

#[test]
fn exit_codes_for_unreachable_refused_and_invalid() {
    let (dir, c) = start();
    let url = c.url();
    let f = write_manifest(dir.path(), "fleet.yaml", 22);
    let (_, err) = expect("http://127.0.0.1:1", 3, &["get", "agents"]);
    assert!(
        err.contains("cannot reach the controller at http://127.0.0.1:1"),
        "{err}"
    );
    expect(
        "http://127.0.0.1:1",
        3,
        &["apply", "-f", f.to_str().unwrap()],
    );
    expect(
        "http://127.0.0.1:1",
        3,
        &["agent", "ping", "--agent", "127.0.0.1:1"],
    );
    let (_, err) = expect(&url, 1, &["describe", "agent", "nobody"]);
    assert!(err.contains("no agent `nobody`"), "{err}");
    expect(&url, 1, &["assign", "--revision", "7"]);
    expect(&url, 1, &["agent", "stats", "nobody"]);
    expect(&url, 2, &["get", "agents", "--selector", "oops"]);
    expect(
        &url,
        2,
        &[
            "assign",
            "--revision",
            "1",
            "--agent",
            "a",
            "--selector",
            "k=v",
        ],
    );
    expect(&url, 2, &["agent", "pause"]);
    expect(&url, 2, &["status", "--timeout", "5s"]);
    // The flag wins over the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(["--controller", &url, "get", "agents"])
        .env("FLEETCTL_CONTROLLER", "http://127.0.0.1:1")
        .env("FLEETCTL_TOKEN_FILE", c.token_file())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn agents_describe_assign_and_agent_verbs_through_the_controller() {
    let (dir, c) = start();
    let url = c.url();
    let rt = rt();
    let f = write_manifest(dir.path(), "fleet.yaml", 22);
    expect(&url, 0, &["apply", "-f", f.to_str().unwrap()]);
    let g = write_manifest(dir.path(), "fleet2.yaml", 23);
    expect(&url, 0, &["apply", "-f", g.to_str().unwrap()]);

    let mut paris = rt
        .block_on(FakeAgent::connect(
            &url,
            hello("paris-1", &[("site", "paris")], 0, "local"),
        ))
        .unwrap();
    let lyon = rt
        .block_on(FakeAgent::connect(
            &url,
            hello("lyon-1", &[("site", "lyon")], 0, "local"),
        ))
        .unwrap();
    // Labels an agent reports are shown, never selected on; the operator's are.
    let (out, _) = expect(&url, 0, &["get", "agents", "-l", "site=paris"]);
    assert!(!out.contains("paris-1"), "{out}");
    expect(&url, 0, &["label", "agent", "paris-1", "site=paris"]);
    expect(&url, 0, &["label", "agent", "lyon-1", "site=lyon", "tier-"]);
    let a = rt.block_on(paris.assignment(Duration::from_secs(5)));
    assert_eq!(a.generation, 2);
    rt.block_on(paris.ack(&a));
    let stats = StatsReply {
        queue_depth: 3,
        // An output share that is not mounted (agent/tests/outage.rs has the real one).
        held_roots: vec![HeldRoot {
            path: "/srv/h264".into(),
            kind: "output".into(),
            reason: "No such file or directory (os error 2)".into(),
            since_ms: 1_700_000_000_000,
        }],
        ..Default::default()
    };
    rt.block_on(paris.stats(2, stats));
    rt.block_on(paris.event("failed", "news.ts", "ffmpeg exited 1"));

    let deadline = Instant::now() + Duration::from_secs(10);
    let agents = loop {
        let (out, _) = expect(&url, 0, &["get", "agents", "-o", "json"]);
        let v = json(&out);
        if v[1]["sync"] == "synced" && v[1]["stats"]["queue_depth"] == 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "paris-1 never synced: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(agents.as_array().unwrap().len(), 2);
    assert_eq!(agents[0]["id"], "lyon-1");
    assert_eq!(agents[1]["running_generation"], 2);

    let (out, _) = expect(&url, 0, &["get", "agents", "-l", "site=paris"]);
    assert!(out.contains("paris-1") && !out.contains("lyon-1"), "{out}");
    assert!(out.starts_with("AGENT"), "{out}");
    let (out, _) = expect(&url, 0, &["describe", "agent", "paris-1"]);
    assert!(out.contains("sync:") && out.contains("synced"), "{out}");
    assert!(out.contains("ffmpeg exited 1"), "{out}");
    let (out, _) = expect(&url, 0, &["describe", "agent", "paris-1", "-o", "yaml"]);
    assert!(out.contains("id: paris-1"), "{out}");

    // An older generation without --rollback: assigned, with a warning.
    let (out, err) = expect(
        &url,
        0,
        &["assign", "--revision", "1", "--agent", "paris-1"],
    );
    assert!(
        out.contains("revision 1 assigned to 1 agent: paris-1"),
        "{out}"
    );
    assert!(err.contains("--rollback"), "{err}");
    let a = rt.block_on(paris.assignment(Duration::from_secs(5)));
    assert!(!a.rollback);
    let (out, err) = expect(
        &url,
        0,
        &[
            "assign",
            "--revision",
            "1",
            "--selector",
            "site=paris",
            "--rollback",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        json(&out)["agents"],
        serde_json::json!(["paris-1"]),
        "{err}"
    );

    let (out, _) = expect(&url, 0, &["agent", "stats", "paris-1", "-o", "json"]);
    assert_eq!(json(&out)["queue_depth"], 3);
    assert_eq!(json(&out)["held_roots"][0]["path"], "/srv/h264");
    let (out, _) = expect(&url, 0, &["agent", "stats", "paris-1"]);
    assert!(
        out.contains("held roots") && out.contains("/srv/h264"),
        "{out}"
    );
    assert!(out.contains("1 root missing"), "{out}");
    let (out, _) = expect(&url, 0, &["describe", "agent", "paris-1"]);
    assert!(out.contains("1 root missing"), "{out}");
    let (out, _) = expect(&url, 0, &["status"]);
    assert!(out.contains("1 root missing"), "{out}");
    let (out, _) = expect(&url, 0, &["agent", "errors", "paris-1"]);
    assert!(out.contains("news.ts") && out.contains("failed"), "{out}");
    let (_, err) = expect(&url, 1, &["agent", "stats", "lyon-1"]);
    assert!(err.contains("has not sent stats"), "{err}");
    drop(lyon);
}

#[test]
fn agent_pause_through_the_controller_waits_for_the_agents_confirmation() {
    let (_dir, c) = start();
    let url = c.url();
    let rt = rt();
    let mut agent = rt
        .block_on(FakeAgent::connect(&url, hello("studio-p", &[], 0, "local")))
        .unwrap();
    rt.block_on(agent.stats(0, StatsReply::default()));
    let child = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(["--controller", &url, "agent", "pause", "studio-p"])
        .env("FLEETCTL_TOKEN_FILE", c.token_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cmd = rt.block_on(agent.command(Duration::from_secs(10)));
    assert!(cmd.body.is_some());
    rt.block_on(agent.stats(
        0,
        StatsReply {
            paused: true,
            paused_by: "manual".into(),
            ..Default::default()
        },
    ));
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("paused"), "{text}");
}

/// `status --watch -o json` prints one line per snapshot; an agent's disconnect shows within
/// a few seconds.
#[test]
fn status_watch_shows_a_disconnect_within_seconds() {
    let (_dir, c) = start();
    let url = c.url();
    let rt = rt();
    let agent = rt
        .block_on(FakeAgent::connect(&url, hello("studio-w", &[], 0, "local")))
        .unwrap();
    rt.block_on(agent.stats(
        0,
        StatsReply {
            queue_depth: 2,
            ..Default::default()
        },
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .env("FLEETCTL_TOKEN_FILE", c.token_file())
        .args([
            "--controller",
            &url,
            "status",
            "--watch",
            "--timeout",
            "8s",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let connected = |line: &str| json(line)["agents"][0]["connected"].as_bool();
    // Connected first.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, line) = rx
            .recv_timeout(deadline - Instant::now())
            .expect("a snapshot");
        // The session's first stats report can follow its connection by a snapshot.
        let queue_depth = &json(&line)["agents"][0]["stats"]["queue_depth"];
        if connected(&line) == Some(true) && !queue_depth.is_null() {
            assert_eq!(*queue_depth, 2);
            break;
        }
    }
    let dropped = Instant::now();
    drop(agent);
    let seen = loop {
        let left = Duration::from_secs(3).saturating_sub(dropped.elapsed());
        let (at, line) = rx
            .recv_timeout(left)
            .expect("the disconnect shows in status --watch within 3 s");
        if connected(&line) == Some(false) {
            break at;
        }
    };
    assert!(seen - dropped < Duration::from_secs(3));
    // --timeout ends the watch with exit 0.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn status_table_for_people() {
    let (_dir, c) = start();
    let url = c.url();
    let rt = rt();
    let _agent = rt
        .block_on(FakeAgent::connect(&url, hello("studio-t", &[], 0, "local")))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (out, _) = expect(&url, 0, &["status"]);
        let header = out.lines().nth(1).unwrap_or_default();
        for col in [
            "AGENT",
            "CONNECTED",
            "GENERATION",
            "SYNC",
            "QUEUE",
            "RUNNING",
            "CONVERTED",
            "FAILED",
            "DISK",
        ] {
            assert!(header.contains(col), "{out}");
        }
        if out.contains("studio-t  yes") {
            assert!(out.contains("1 agents, 1 connected"), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
