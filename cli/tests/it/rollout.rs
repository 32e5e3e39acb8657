//! `fleetctl rollout` verbs through the real binaries, on a controller without agents (cohorts
//! are empty, so steps pass on their ACK gate at once and stop at `pause: {}`): output, JSON
//! and exit codes.

use crate::bins;
use crate::controller;

use std::process::{Command, Output};

use controller::ControllerProcess;
use serde_json::Value;

fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .output()
        .expect("fleetctl runs")
}

fn expect(url: &str, code: i32, args: &[&str]) -> (String, String) {
    let out = fleetctl(url, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "fleetctl {args:?}:\n{o}{e}");
    (o, e)
}

fn status(url: &str) -> Value {
    let out = fleetctl(url, &["rollout", "status", "-o", "json"]);
    serde_json::from_slice(&out.stdout).expect("JSON status")
}

#[test]
fn rollout_verbs_steer_a_rollout_and_exit_codes_say_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let c = ControllerProcess::start(
        &bins::workspace_bin("h264-controller"),
        &dir.path().join("state"),
    );
    let url = c.url();
    let (out, _) = expect(&url, 0, &["rollout", "status"]);
    assert_eq!(out, "no rollout\n");
    for crf in [22, 23] {
        let f = dir.path().join(format!("fleet-{crf}.yaml"));
        std::fs::write(
            &f,
            format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: s}}\nspec:\n  transcode: {{crf: {crf}}}\n"),
        )
        .unwrap();
        expect(&url, 0, &["apply", "-f", f.to_str().unwrap()]);
    }
    // Revision 2 is stable (applied without a rollout); roll revision 1 out.
    expect(&url, 1, &["rollout", "start", "--revision", "9"]);
    expect(
        &url,
        2,
        &[
            "rollout",
            "start",
            "--revision",
            "1",
            "--steps",
            "percent:0",
        ],
    );
    // Steps given on the command line follow the manifest's rules (cohorts only grow).
    let (_, err) = expect(
        &url,
        2,
        &[
            "rollout",
            "start",
            "--revision",
            "1",
            "--steps",
            "percent:50,percent:25,percent:100",
        ],
    );
    assert!(err.contains("not above the previous step"), "{err}");
    let (_, err) = expect(
        &url,
        2,
        &[
            "rollout",
            "start",
            "--revision",
            "1",
            "--max-unavailable",
            "200%",
        ],
    );
    assert!(err.contains("--max-unavailable `200%`"), "{err}");
    expect(&url, 2, &["rollout", "start", "--revision", "2"]);
    let steps = "canary:1,pause:{},percent:100";
    let (out, _) = expect(
        &url,
        0,
        &[
            "rollout",
            "start",
            "--revision",
            "1",
            "--steps",
            steps,
            "--max-unavailable",
            "1",
            "--max-lost",
            "2m",
        ],
    );
    assert!(out.contains("phase:   Paused"), "{out}");
    assert!(out.contains("waiting for a human"), "{out}");
    assert!(out.contains("ack"), "the gate table: {out}");
    let s = status(&url);
    assert_eq!(
        (s["phase"].as_str(), s["step"].as_u64()),
        (Some("Paused"), Some(1))
    );
    assert_eq!(s["stable_generation"], 2);

    expect(&url, 0, &["rollout", "pause"]);
    assert!(status(&url)["reason"]
        .as_str()
        .unwrap()
        .contains("operator"));
    expect(&url, 0, &["rollout", "resume"]);
    assert_eq!(status(&url)["step"], 1, "the same step again");
    expect(&url, 1, &["rollout", "undo"]); // still running
    expect(&url, 0, &["rollout", "promote"]);
    assert_eq!(status(&url)["phase"], "Succeeded");
    expect(
        &url,
        0,
        &["rollout", "status", "--watch", "--timeout", "5s"],
    );

    let (out, _) = expect(&url, 0, &["rollout", "undo"]);
    assert!(out.contains("RolledBack"), "{out}");
    assert!(out.contains("undone by the operator"), "{out}");
    expect(&url, 1, &["rollout", "status"]);

    expect(&url, 0, &["rollout", "retry"]);
    let s = status(&url);
    assert_eq!(
        (s["id"].as_u64(), s["phase"].as_str()),
        (Some(2), Some("Paused"))
    );
    expect(
        &url,
        1,
        &["rollout", "status", "--watch", "--timeout", "1s"],
    );
    expect(&url, 0, &["rollout", "abort"]);
    let (_, err) = expect(&url, 1, &["rollout", "status", "--watch"]);
    assert!(err.contains("Aborted"), "{err}");
}
