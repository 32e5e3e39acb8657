//! `fleetctl agent pause|resume --agent HOST:PORT` straight to a real agent (security review
//! M3): as root, fleetctl reads the agent's control token from the file the agent names and
//! the pause works; as another user (uid 65534 through `setpriv`), it cannot read the 0600 token
//! in the 0700 state folder, and the agent refuses the pause. The agent listens on port 0 and
//! publishes the address it bound in its state folder, where `--agent-state-dir` finds it.

use crate::bins;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use h264_testkit::wait::wait_for;

fn fleetctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .output()
        .unwrap()
}

/// Whether an operator's pause holds the agent (the disk guard of a full test machine may hold
/// it too: that is not what is looked at).
fn paused(addr: &str) -> bool {
    let out = fleetctl(&["agent", "stats", "--agent", addr, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["paused"] == true && v["paused_by"] == "manual"
}

#[test]
fn pause_as_another_user_is_refused_and_as_root_works() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("agent.toml");
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = '{}'\ncontrol = \"127.0.0.1:0\"\n[[watch]]\nsource = '{}'\noutput = '{}'\n",
            state.display(),
            dir.path().join("in").display(),
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let mut agent = Command::new(bins::workspace_bin("h264-agent"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the control API",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let out = fleetctl(&[
                "agent",
                "ping",
                "--agent-state-dir",
                state.to_str().unwrap(),
            ]);
            out.status.success().then_some(())
        },
    )
    .unwrap();
    let addr = std::fs::read_to_string(state.join("control.addr")).unwrap();
    let addr = addr.trim();
    assert_ne!(addr, "127.0.0.1:0", "the address really bound");
    // Another user: a real uid through setpriv (the tests run as root).
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_fleetctl"))
        .args(["agent", "pause", "--cancel-running", "--agent", addr])
        .output()
        .expect("setpriv (util-linux) runs fleetctl as uid 65534");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(stderr.contains("control.token"), "{stderr}");
    assert!(!paused(addr), "another user paused the agent");
    // Nor can that user find the agent through its private state folder.
    let other = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_fleetctl"))
        .args([
            "agent",
            "pause",
            "--agent-state-dir",
            state.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(stderr.contains("control.addr"), "{stderr}");
    assert!(!paused(addr), "another user paused the agent");
    // The agent's own user (root here) pauses and resumes.
    let out = fleetctl(&["agent", "pause", "--agent", addr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(paused(addr));
    let out = fleetctl(&["agent", "resume", "--agent", addr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!paused(addr));
    // The same as root, through the state folder alone (address and token from there).
    let by_state =
        |verb: &str| fleetctl(&["agent", verb, "--agent-state-dir", state.to_str().unwrap()]);
    let out = by_state("pause");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(paused(addr));
    let out = by_state("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!paused(addr));
    let _ = agent.kill();
    let _ = agent.wait();
}
