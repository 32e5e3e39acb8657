//! One trace for a rollout, all real: an OTLP/gRPC collector stand-in on loopback
//! (`h264_testkit::otlp`), one `h264-controller` exporting to it (`[telemetry]
//! otlp_endpoint`), two `h264-agent` processes and `fleetctl` exporting to it through
//! `OTEL_EXPORTER_OTLP_ENDPOINT`. `fleetctl rollout start` takes generation 2 to both agents
//! (canary, then 100 %); the collector then holds one trace with spans from fleetctl, the
//! controller and both agents, every parent present: fleetctl's span is the root, the
//! controller's admin span its child, each agent's `assignment.apply` a child of a controller
//! `rollout.push`. The plain `fleetctl apply` before it (no rollout) is one trace too, each
//! agent's apply a child of the controller's `admin.apply`.
//!
//! A second test: with the collector down, fleetctl is not slowed down noticeably.

use crate::bins;
use crate::controller;
use crate::fleet_agent;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use controller::ControllerProcess;
use fleet_agent::FleetAgent;
use h264_testkit::otlp::{broken_parents, unreachable_endpoint, CollectedSpan, Collector};
use h264_testkit::wait::wait_for;
use serde_json::Value;

const IDS: [&str; 2] = ["trace-a", "trace-b"];

fn fleetctl(url: &str, otlp: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .env("FLEETCTL_CONTROLLER", url)
        .env("FLEETCTL_TOKEN_FILE", controller::token_file_for(url))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "fleetctl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn manifest(dir: &Path, name: &str, spec: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata: {{name: trace}}\nspec:\n{spec}"),
    )
    .unwrap();
    path
}

fn wait_agents(url: &str, otlp: &str, what: &str, check: impl Fn(&Value) -> bool) {
    wait_for(
        what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let all = ok(&fleetctl(url, otlp, &["get", "agents", "-o", "json"]));
            let all = all.as_array().cloned().unwrap_or_default();
            IDS.iter()
                .all(|id| all.iter().any(|a| a["id"] == *id && check(a)))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

fn describe(spans: &[CollectedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} {} {} parent={} {:?} {:?}\n",
                s.service,
                s.span_id,
                s.name,
                s.parent_span_id,
                s.resource.get("agent.id"),
                s.attributes
            )
        })
        .collect()
}

#[test]
fn a_rollout_to_two_agents_is_one_trace_from_fleetctl_through_the_controller_to_both_agents() {
    let begun = Instant::now();
    let collector = Collector::start();
    let otlp = collector.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!("[telemetry]\notlp_endpoint = \"{otlp}\"\n"),
    )
    .unwrap();
    let bin = bins::workspace_bin("h264-controller");
    let c = ControllerProcess::start_with_config(&bin, &dir.path().join("state"), Some(&config));
    let url = c.url();
    let agents: Vec<FleetAgent> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            FleetAgent::start(id, &url, i == 0, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)])
        })
        .collect();
    wait_agents(&url, &otlp, "both agents connected", |a| {
        a["connected"] == true
    });
    // The canary is the operator's label (an agent's own claim is not trusted).
    ok(&fleetctl(
        &url,
        &otlp,
        &["label", "agent", IDS[0], "canary=true"],
    ));

    // The stable revision, then generation 2 held at a human's pause (nothing pushed yet).
    let stable = manifest(dir.path(), "stable.yaml", "  transcode: {crf: 23}\n");
    ok(&fleetctl(
        &url,
        &otlp,
        &["apply", "-f", stable.to_str().unwrap()],
    ));
    wait_agents(&url, &otlp, "both agents on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let next = manifest(
        dir.path(),
        "next.yaml",
        "  transcode: {crf: 24}\n  rollout:\n    steps: [{pause: {}}, {percent: 100}]\n",
    );
    ok(&fleetctl(
        &url,
        &otlp,
        &["apply", "-f", next.to_str().unwrap()],
    ));

    // The rollout under test.
    let steps = "canary:1,percent:100";
    let out = fleetctl(
        &url,
        &otlp,
        &[
            "rollout",
            "start",
            "--revision",
            "2",
            "--steps",
            steps,
            "-o",
            "json",
        ],
    );
    let started = ok(&out);
    assert_eq!(started["generation"], 2, "{started:#}");
    wait_for(
        "the rollout to succeed",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let s = ok(&fleetctl(&url, &otlp, &["rollout", "status", "-o", "json"]));
            (s["phase"] == "Succeeded").then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; controller log:\n{}\nagent log:\n{}",
            c.log_text(),
            agents[0].log()
        )
    });

    // fleetctl's span names the trace; wait until both agents' applies are in it.
    let trace = wait_for(
        "the rollout's trace at the collector",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let spans = collector.spans();
            let root = spans
                .iter()
                .find(|s| s.service == "fleetctl" && s.name == "fleetctl rollout start")?;
            let trace: Vec<CollectedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            let applies = |id: &str| {
                trace.iter().any(|s| {
                    s.name == "assignment.apply"
                        && s.resource.get("agent.id").map(String::as_str) == Some(id)
                        && s.attributes.get("outcome").map(String::as_str) == Some("ACK")
                })
            };
            let done = trace.iter().any(|s| {
                s.name == "rollout.step"
                    && s.attributes.get("kind").map(String::as_str) == Some("done")
            });
            (IDS.iter().all(|id| applies(id)) && done).then_some(trace)
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; spans received:\n{}\nagent log:\n{}",
            describe(&collector.spans()),
            agents[0].log()
        )
    });
    let all = describe(&trace);
    eprintln!("the rollout's trace:\n{all}");

    // One trace, every parent in it, the three programs and both agents in it.
    assert_eq!(broken_parents(&trace), Vec::<String>::new(), "{all}");
    for service in ["fleetctl", "h264-controller", "h264-agent"] {
        assert!(
            trace.iter().any(|s| s.service == service),
            "no {service} span:\n{all}"
        );
    }
    let by_id = |id: &str| trace.iter().find(|s| s.span_id == id);
    let root = trace
        .iter()
        .find(|s| s.name == "fleetctl rollout start")
        .unwrap();
    assert_eq!(
        root.parent_span_id, "",
        "fleetctl's span is the root:\n{all}"
    );
    assert_eq!(root.attributes["revision"], "2");
    assert_eq!(root.attributes["steps"], steps);
    assert_eq!(root.attributes["exit_code"], "0");
    let roots: Vec<&CollectedSpan> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root:\n{all}");

    // The controller's side hangs from fleetctl's span.
    let admin = trace
        .iter()
        .find(|s| s.service == "h264-controller" && s.name == "admin.rollout")
        .unwrap_or_else(|| panic!("no admin.rollout span:\n{all}"));
    assert_eq!(admin.parent_span_id, root.span_id, "{all}");
    assert_eq!(admin.attributes["verb"], "start");
    let rollout = trace.iter().find(|s| s.name == "rollout").unwrap();
    assert_eq!(rollout.parent_span_id, admin.span_id, "{all}");
    assert_eq!(rollout.attributes["generation"], "2");
    let steps_seen: Vec<&str> = trace
        .iter()
        .filter(|s| s.name == "rollout.step")
        .inspect(|s| assert_eq!(s.parent_span_id, rollout.span_id, "{all}"))
        .map(|s| s.attributes["kind"].as_str())
        .collect();
    for kind in ["canary", "percent", "done"] {
        assert!(
            steps_seen.contains(&kind),
            "no {kind} step: {steps_seen:?}\n{all}"
        );
    }
    let gates: Vec<&CollectedSpan> = trace.iter().filter(|s| s.name == "rollout.gate").collect();
    assert!(gates.len() >= 2, "an ack gate per cohort step:\n{all}");
    for g in &gates {
        assert_eq!(g.attributes["gate"], "ack", "{all}");
        assert_eq!(g.attributes["result"], "passed", "{all}");
        assert!(g.attributes["measured"].contains("ACKed"), "{all}");
        assert_eq!(by_id(&g.parent_span_id).unwrap().name, "rollout.step");
    }

    // Each agent applied generation 2 under a controller push, in verified stages.
    for id in IDS {
        let apply = trace
            .iter()
            .find(|s| {
                s.name == "assignment.apply"
                    && s.resource.get("agent.id").map(String::as_str) == Some(id)
            })
            .unwrap();
        assert_eq!(apply.service, "h264-agent");
        assert_eq!(apply.attributes["generation"], "2", "{all}");
        assert_eq!(apply.attributes["outcome"], "ACK", "{all}");
        assert_eq!(apply.attributes["sha256"].len(), 64, "{all}");
        let push = by_id(&apply.parent_span_id).unwrap();
        assert_eq!(push.service, "h264-controller", "{all}");
        assert_eq!(push.name, "rollout.push", "{all}");
        assert_eq!(push.attributes["generation"], "2");
        assert!(push.attributes["agent.ids"].contains(id), "{all}");
        for stage in [
            "assignment.verify",
            "assignment.validate",
            "assignment.persist",
            "assignment.swap",
        ] {
            assert!(
                trace
                    .iter()
                    .any(|s| s.name == stage && s.parent_span_id == apply.span_id),
                "{id}: no {stage} under its apply:\n{all}"
            );
        }
    }
    // The canary first: its push is the canary step's.
    let canary_apply = trace
        .iter()
        .find(|s| s.name == "assignment.apply" && s.resource["agent.id"] == IDS[0])
        .unwrap();
    let canary_step = by_id(&by_id(&canary_apply.parent_span_id).unwrap().parent_span_id).unwrap();
    assert_eq!(canary_step.attributes["kind"], "canary", "{all}");

    // A plain apply (no rollout) is traced too: each agent's apply of generation 1 hangs from
    // the admin call that assigned it, under `fleetctl apply`.
    let spans = collector.spans();
    let applied: Vec<&CollectedSpan> = spans
        .iter()
        .filter(|s| s.name == "assignment.apply" && s.attributes["generation"] == "1")
        .collect();
    assert_eq!(applied.len(), 2, "{}", describe(&spans));
    for a in applied {
        let admin = spans
            .iter()
            .find(|s| s.span_id == a.parent_span_id)
            .unwrap();
        assert_eq!(admin.name, "admin.apply", "{}", describe(&spans));
        let fleetctl = spans
            .iter()
            .find(|s| s.span_id == admin.parent_span_id)
            .unwrap();
        assert_eq!(fleetctl.name, "fleetctl apply");
        assert_eq!(fleetctl.attributes["revision"], "1");
    }
    drop(agents);
    drop(c);
    eprintln!("trace test took {:?}", begun.elapsed());
}

#[test]
fn a_collector_that_is_down_does_not_slow_fleetctl_down() {
    let dir = tempfile::tempdir().unwrap();
    let bin = bins::workspace_bin("h264-controller");
    let c = ControllerProcess::start(&bin, &dir.path().join("state"));
    let down = unreachable_endpoint();
    let quick = |otlp: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetctl"));
        cmd.args(["get", "revisions", "-o", "json"])
            .env("FLEETCTL_CONTROLLER", c.url())
            .env("FLEETCTL_TOKEN_FILE", c.token_file());
        if let Some(otlp) = otlp {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp);
        } else {
            cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        }
        let t = Instant::now();
        let out = cmd.output().unwrap();
        (out, t.elapsed())
    };
    let (out, plain) = quick(None);
    ok(&out);
    let (out, traced) = quick(Some(&down));
    ok(&out);
    assert!(
        out.stderr.is_empty(),
        "nothing on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        traced < plain + Duration::from_secs(1),
        "with the collector down fleetctl took {traced:?}, without tracing {plain:?}"
    );
}
