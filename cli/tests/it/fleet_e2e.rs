//! The fleet end to end, all real: one `h264-controller`, three `h264-agent` processes converting
//! with the real FFmpeg, and `fleetctl`, over gRPC on loopback.

use crate::bins;
use crate::controller;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use controller::ControllerProcess;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::wait_for;
use serde_json::Value;

/// One agent installation: its folders, its config, its process.
struct Agent {
    id: String,
    dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn new(id: &str, endpoint: &str) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("incoming"), dir.path().join("h264"));
        std::fs::create_dir_all(&input).unwrap();
        let config = dir.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nid = \"{id}\"\nstate_dir = '{}'\ncontrol = \"127.0.0.1:0\"\n\
                 [[watch]]\nsource = '{}'\noutput = '{}'\n\
                 [readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
                 [transcode]\npreset = \"ultrafast\"\ncrf = 30\nremux = false\n\
                 [controller]\nendpoint = \"{endpoint}\"\nlabels = {{ site = \"e2e\" }}\n\
                 reconnect_backoff = \"200ms\"\nreconnect_backoff_max = \"1s\"\nstats_interval = \"1s\"\n",
                dir.path().join("state").display(),
                input.display(),
                output.display()
            ),
        )
        .unwrap();
        let mut agent = Agent {
            id: id.into(),
            dir,
            input,
            output,
            config,
            child: None,
        };
        agent.start();
        agent
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = Command::new(bins::workspace_bin("h264-agent"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Drops a recording in and waits for its MP4.
    fn convert(&self, name: &str) -> PathBuf {
        Fixture::H264Ts.copy_to(&self.input, name);
        let out = self.output.join(Path::new(name).with_extension("mp4"));
        wait_for(
            &format!("{} to convert {name}", self.id),
            Duration::from_secs(60),
            Duration::from_millis(50),
            || out.exists().then(|| out.clone()),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The address its control API bound (port 0), from `control.addr` in its state folder.
    fn control(&self) -> String {
        let file = self.dir.path().join("state").join("control.addr");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        text.trim().to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// x264's settings string in an MP4 names the CRF it encoded with.
fn x264_crf(mp4: &Path) -> Option<String> {
    let bytes = std::fs::read(mp4).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let settings = &text[text.find("x264 - core")?..];
    let crf = &settings[settings.find(" crf=")? + 5..];
    Some(crf.split_whitespace().next()?.to_string())
}

fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .output()
        .unwrap()
}

fn listed(url: &str) -> Vec<Value> {
    let out = fleetctl(url, &["get", "agents", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array().cloned().unwrap_or_default()
}

/// Waits until every agent of `ids` satisfies `check` in `fleetctl get agents`.
fn wait_agents(url: &str, ids: &[&str], what: &str, check: impl Fn(&Value) -> bool) -> Vec<Value> {
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let all = listed(url);
            let ok = ids
                .iter()
                .all(|id| all.iter().any(|a| a["id"] == *id && check(a)));
            ok.then_some(all)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:#?}", listed(url)))
}

fn apply(url: &str, dir: &Path, spec: &str) -> Output {
    let manifest = dir.join("fleet.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: e2e}}\nspec:\n{spec}"),
    )
    .unwrap();
    fleetctl(url, &["apply", "-f", manifest.to_str().unwrap()])
}

const IDS: [&str; 3] = ["e2e-a", "e2e-b", "e2e-c"];

fn fleet() -> (tempfile::TempDir, ControllerProcess, Vec<Agent>) {
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let bin = bins::workspace_bin("h264-controller");
    let c = ControllerProcess::start(&bin, &dir.path().join("state"));
    let agents: Vec<Agent> = IDS.iter().map(|id| Agent::new(id, &c.url())).collect();
    wait_agents(&c.url(), &IDS, "three connected agents", |a| {
        a["connected"] == true
    });
    (dir, c, agents)
}

#[test]
fn a_revision_reaches_every_agent_and_changes_what_it_does() {
    let (dir, c, agents) = fleet();
    let before = agents[0].convert("before.ts");
    assert_eq!(x264_crf(&before).as_deref(), Some("30.0"));

    let out = apply(&c.url(), dir.path(), "  transcode: {crf: 23}\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_agents(&c.url(), &IDS, "every agent synced on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    for (i, agent) in agents.iter().enumerate() {
        let after = agent.convert(&format!("after-{i}.ts"));
        assert_eq!(x264_crf(&after).as_deref(), Some("23.0"), "{}", agent.id);
    }
    assert_eq!(
        x264_crf(&before).as_deref(),
        Some("30.0"),
        "published files are not touched"
    );
}

#[test]
fn a_revision_every_agent_refuses_changes_nothing_and_is_not_pushed_again() {
    let (dir, c, mut agents) = fleet();
    let good = apply(&c.url(), dir.path(), "  transcode: {crf: 23}\n");
    assert!(good.status.success());
    wait_agents(&c.url(), &IDS, "generation 1 everywhere", |a| {
        a["running_generation"] == 1
    });

    // Valid for the controller, impossible for the agents: none of them has CCExtractor.
    let bad = apply(
        &c.url(),
        dir.path(),
        "  captions: {formats: [bin], tool: ccextractor}\n",
    );
    assert!(
        bad.status.success(),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let refused = wait_agents(&c.url(), &IDS, "every agent to refuse generation 2", |a| {
        a["sync"] == "error"
    });
    for a in refused
        .iter()
        .filter(|a| IDS.contains(&a["id"].as_str().unwrap_or("")))
    {
        assert_eq!(a["running_generation"], 1, "{a}");
        assert!(
            a["sync_error"]
                .as_str()
                .unwrap_or("")
                .contains("capability"),
            "{a}"
        );
    }
    let out = agents[0].convert("still-23.ts");
    assert_eq!(
        x264_crf(&out).as_deref(),
        Some("23.0"),
        "the agent kept generation 1"
    );

    // A reconnect does not bring the refused revision back.
    agents[1].kill();
    agents[1].start();
    std::thread::sleep(Duration::from_secs(3));
    let b = listed(&c.url())
        .into_iter()
        .find(|a| a["id"] == "e2e-b")
        .unwrap();
    assert_eq!(b["running_generation"], 1, "{b}");
}

#[test]
fn agents_outlive_the_controller_and_come_back_to_it() {
    let (dir, mut c, mut agents) = fleet();
    assert!(apply(&c.url(), dir.path(), "  transcode: {crf: 23}\n")
        .status
        .success());
    wait_agents(&c.url(), &IDS, "generation 1 everywhere", |a| {
        a["running_generation"] == 1
    });

    c.kill();
    let out = agents[0].convert("while-down.ts");
    assert_eq!(
        x264_crf(&out).as_deref(),
        Some("23.0"),
        "converting on last-known-good"
    );
    // Restarted while the controller is down: last-known-good, not the local file (CRF 30).
    agents[1].kill();
    agents[1].start();
    let out = agents[1].convert("restarted.ts");
    assert_eq!(
        x264_crf(&out).as_deref(),
        Some("23.0"),
        "{}",
        agents[1].log()
    );

    c.start_again();
    wait_agents(&c.url(), &IDS, "every agent back and synced", |a| {
        a["connected"] == true && a["sync"] == "synced" && a["running_generation"] == 1
    });
}

#[test]
fn fleetctl_talks_to_one_agent_directly() {
    let (_dir, _c, agents) = fleet();
    let a = &agents[0];
    let control = a.control();
    let direct = |args: &[&str]| {
        let mut all = vec!["agent"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--agent", &control, "-o", "json"]);
        let out = fleetctl("http://127.0.0.1:1", &all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(direct(&["ping"])["agent_id"], "e2e-a");
    direct(&["pause"]);
    assert_eq!(direct(&["stats"])["paused"], true);
    direct(&["resume"]);
    assert_eq!(direct(&["stats"])["paused"], false);
    Fixture::TextAsVideo.copy_to(&a.input, "notes.ts");
    let errors = wait_for(
        "the failure to show",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let e = direct(&["errors"]);
            e.to_string().contains("notes.ts").then_some(e)
        },
    )
    .unwrap();
    assert!(errors.to_string().contains("validate"), "{errors}");
}

#[test]
fn status_watch_shows_a_file_converting_on_a_real_agent() {
    let (dir, c, mut agents) = fleet();
    // Transcodes that last as long as the media (about 3 s): free-form FFmpeg arguments, which
    // only an agent's own file may hold.
    agents[0].kill();
    let text = std::fs::read_to_string(&agents[0].config).unwrap();
    let text = text.replace(
        "remux = false\n",
        "remux = false\nlocal_ffmpeg_args = [\"-vf\", \"realtime\"]\n",
    );
    std::fs::write(&agents[0].config, text).unwrap();
    agents[0].start();
    let out = apply(&c.url(), dir.path(), "  transcode: {crf: 23}\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_agents(&c.url(), &IDS, "generation 1 everywhere", |a| {
        a["running_generation"] == 1
    });
    let mut watch = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .env("FLEETCTL_TOKEN_FILE", c.token_file())
        .args([
            "--controller",
            &c.url(),
            "status",
            "--watch",
            "--timeout",
            "30s",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    Fixture::H264Ts.copy_to(&agents[0].input, "live.ts");
    let mut seen = None;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let Ok(line) = line else { break };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let agent = v["agents"]
            .as_array()
            .and_then(|all| all.iter().find(|a| a["id"] == "e2e-a"));
        let running = agent
            .map(|a| a["stats"]["running"].clone())
            .unwrap_or(Value::Null);
        let job = &running[0];
        let percent = job["percent"].as_f64().unwrap_or(0.0);
        if job["stage"] == "transcode" && percent > 0.0 && percent < 100.0 {
            seen = Some(job.clone());
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let job = seen.expect("status --watch showed the transcode in progress");
    assert!(
        job["source"].as_str().unwrap_or("").ends_with("live.ts"),
        "{job}"
    );
}
