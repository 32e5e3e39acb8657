//! Helpers of the rollout end-to-end tests (`rollout_e2e`, `shadow_e2e`): a controller that
//! e-mails its alerts to a test SMTP server, `fleetctl` against it, manifests applied, polls of
//! agents and of the rollout with a deadline.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use h264_testkit::smtp::SmtpSink;
use h264_testkit::wait::wait_for;
use serde_json::Value;

use crate::bins;
use crate::controller::{self, ControllerProcess};

/// The controller, with `[alerts.email]` to `sink` (alerts retried quickly).
pub fn controller(dir: &Path, sink: &SmtpSink) -> ControllerProcess {
    let config = dir.join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nretry_backoff = \"200ms\"\nretry_backoff_max = \"1s\"\n\
             [alerts.email]\nsmtp = \"{}\"\nfrom = \"h264-controller@example.org\"\n\
             to = [\"ops@example.org\"]\ntimeout = \"5s\"\n",
            sink.url()
        ),
    )
    .unwrap();
    let bin = bins::workspace_bin("h264-controller");
    ControllerProcess::start_with_config(&bin, &dir.join("state"), Some(&config))
}

/// Runs `fleetctl` with `args` against the controller at `url`, with its admin token.
pub fn fleetctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .output()
        .unwrap()
}

/// Its stdout as JSON (null when it is not).
pub fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Waits until every agent of `ids` satisfies `check` (a generous ceiling: ten agents start
/// at once on a small machine).
pub fn wait_agents(url: &str, ids: &[&str], what: &str, check: impl Fn(&Value) -> bool) {
    let listed = || {
        json(&fleetctl(url, &["get", "agents", "-o", "json"]))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    wait_for(
        what,
        Duration::from_secs(60),
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

/// Applies a manifest whose `spec:` is `spec` (indented by two spaces).
pub fn apply(url: &str, dir: &Path, spec: &str) {
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

/// Labels `id` a canary (the operator's label; an agent's own claim is not trusted).
pub fn label_canary(url: &str, id: &str) {
    let out = fleetctl(url, &["label", "agent", id, "canary=true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fleetctl rollout status -o json`.
pub fn rollout_status(url: &str) -> Value {
    json(&fleetctl(url, &["rollout", "status", "-o", "json"]))
}

/// Waits (at most `within`) until the rollout's status satisfies `check`; returns it.
pub fn wait_rollout(
    url: &str,
    what: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, within, Duration::from_millis(50), || {
        let s = rollout_status(url);
        check(&s).then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e}; last: {:#}", rollout_status(url)))
}
