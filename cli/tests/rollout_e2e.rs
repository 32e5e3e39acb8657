//! A rollout end to end, all real: one `h264-controller`, three `h264-agent` processes with the
//! real FFmpeg, and `fleetctl rollout`. A revision whose FFmpeg arguments fail every file fails
//! the canary's gate, and every agent ends back on the stable generation.

#[path = "support/bins.rs"]
mod bins;
#[path = "../../controller/tests/support/controller.rs"]
mod controller;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use controller::ControllerProcess;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::wait_for;
use serde_json::Value;

struct Agent {
    dir: tempfile::TempDir,
    input: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Agent {
    fn new(id: &str, endpoint: &str, canary: bool) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("incoming"), dir.path().join("h264"));
        std::fs::create_dir_all(&input).unwrap();
        let config = dir.path().join("agent.toml");
        let labels = if canary {
            "{ site = \"e2e\", canary = \"true\" }"
        } else {
            "{ site = \"e2e\" }"
        };
        std::fs::write(
            &config,
            format!(
                "[agent]\nid = \"{id}\"\nstate_dir = '{}'\ncontrol = \"127.0.0.1:{}\"\n\
                 [[watch]]\nsource = '{}'\noutput = '{}'\n\
                 [readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
                 [transcode]\npreset = \"ultrafast\"\ncrf = 30\nremux = false\n\
                 [controller]\nendpoint = \"{endpoint}\"\nlabels = {labels}\n\
                 reconnect_backoff = \"200ms\"\nreconnect_backoff_max = \"1s\"\nstats_interval = \"1s\"\n",
                dir.path().join("state").display(),
                free_port(),
                input.display(),
                output.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let child = Command::new(bins::workspace_bin("h264-agent", "h264-agent"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent {
            dir,
            input,
            child: Some(child),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn wait_agents(url: &str, ids: &[&str], what: &str, check: impl Fn(&Value) -> bool) {
    let listed = || {
        json(&fleetctl(url, &["get", "agents", "-o", "json"]))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let all = listed();
            ids.iter()
                .all(|id| all.iter().any(|a| a["id"] == *id && check(a)))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:#?}", listed()));
}

fn apply(url: &str, dir: &Path, spec: &str) {
    let manifest = dir.join("fleet.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: e2e}}\nspec:\n{spec}"),
    )
    .unwrap();
    let out = fleetctl(url, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const IDS: [&str; 3] = ["e2e-a", "e2e-b", "e2e-c"];

#[test]
fn a_revision_that_fails_every_file_is_stopped_on_the_canary_and_rolled_back() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let bin = bins::workspace_bin("h264-controller", "h264-controller");
    let c = ControllerProcess::start(&bin, &dir.path().join("state"));
    let url = c.url();
    let agents: Vec<Agent> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| Agent::new(id, &url, i == 0))
        .collect();
    wait_agents(&url, &IDS, "three connected agents", |a| {
        a["connected"] == true
    });

    // The stable revision.
    apply(&url, dir.path(), "  transcode: {crf: 23}\n");
    wait_agents(&url, &IDS, "every agent on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });

    // The bad one, rolled out: the labelled canary gets it first.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 23, max_attempts: 1, extra_args: [\"-no_such_option\", \"1\"]}\n  rollout:\n    steps: [{canary: 1}, {pause: 60s}, {percent: 100}]\n    analysis: {max_failure_rate: 0.05, min_jobs: 1, ack_deadline: 20s}\n",
    );
    wait_for(
        "the canary to run generation 2 (the soak)",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let s = json(&fleetctl(&url, &["rollout", "status", "-o", "json"]));
            (s["step"] == 1 && s["cohort"]["synced"] == 1).then_some(())
        },
    )
    .unwrap();
    Fixture::H264Ts.copy_to(&agents[0].input, "bad.ts");

    let out = fleetctl(&url, &["rollout", "status", "--watch", "--timeout", "60s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{err}\n{}",
        agents[0].log()
    );
    assert!(err.contains("RolledBack"), "{err}");
    assert!(text.contains("failure_rate"), "{text}");
    assert!(text.contains("1 failed of 1 jobs"), "{text}");
    assert!(text.contains("FAILED"), "{text}");

    wait_agents(&url, &IDS, "every agent back on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let s = json(&fleetctl(&url, &["rollout", "status", "-o", "json"]));
    assert_eq!(s["phase"], "RolledBack");
    assert_eq!(s["stable_generation"], 1);
    assert!(c.log_text().contains("ALERT"), "the alert is logged");
}
