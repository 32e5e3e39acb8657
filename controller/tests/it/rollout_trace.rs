//! A rollout's trace survives a restart of the controller: the real binary exports its spans
//! to an OTLP collector stand-in (`h264_testkit::otlp`); a rollout waits in a soak, the
//! controller restarts (its spans flushed at the exit), the operator promotes it, and the
//! steps and pushes made by the new process continue the trace the first one started, every
//! parent present. The agents are in-process protocol-speaking test agents.

use crate::support;

use std::time::{Duration, Instant};

use h264_proto::v1::controller_message::Body;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{RolloutPromote, RolloutRequest, RolloutStatus, RolloutStatusRequest};
use h264_testkit::otlp::{broken_parents, CollectedSpan, Collector};
use support::*;

/// An agent that ACKs everything until its session ends.
fn spawn_agent(url: String, id: &str) {
    let id = id.to_owned();
    tokio::spawn(async move {
        let Ok(mut agent) = FakeAgent::connect(&url, hello(&id, &[], 0, "local")).await else {
            return;
        };
        while let Some(m) = agent.next(Duration::from_secs(600)).await {
            if let Body::Assignment(a) = m {
                agent.ack(&a).await;
            }
        }
    });
}

async fn rollout(admin: &mut Admin, verb: Verb) -> RolloutStatus {
    admin
        .rollout(RolloutRequest { verb: Some(verb) })
        .await
        .expect("rollout verb")
        .into_inner()
}

async fn wait_rollout(admin: &mut Admin, what: &str, check: impl Fn(&RolloutStatus) -> bool) {
    let waited = wait_for_async(
        what,
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let (mut admin, check) = (admin.clone(), &check);
            async move {
                let s = rollout(&mut admin, Verb::Status(RolloutStatusRequest {})).await;
                check(&s).then_some(())
            }
        },
    )
    .await;
    if let Err(e) = waited {
        let last = rollout(admin, Verb::Status(RolloutStatusRequest {})).await;
        panic!("{e}: {last:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_continues_the_rollouts_trace() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[telemetry]\notlp_endpoint = \"{}\"\n",
            collector.endpoint()
        ),
    )
    .unwrap();
    let mut c = controller_with_config(&dir.path().join("state"), &config);
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let ids = ["t-0", "t-1", "t-2"];
    for id in ids {
        spawn_agent(c.url(), id);
    }
    let manifest = "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: 21\n  rollout:\n    steps: [{canary: 1}, {pause: 1h}, {percent: 100}]\n    analysis: {min_jobs: 1, ack_deadline: 5s}\n";
    // Generation 2 once every agent is registered, so that the canary is one of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin
        .list_agents(h264_proto::v1::ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents
        .iter()
        .filter(|a| a.running_generation == 1)
        .count()
        < ids.len()
    {
        assert!(Instant::now() < deadline, "agents not on generation 1");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    apply(&mut admin, manifest).await;
    wait_rollout(&mut admin, "the soak", |s| s.step == 1).await;

    c.restart();
    let mut admin = support::admin(&c).await;
    for id in ids {
        spawn_agent(c.url(), id);
    }
    rollout(&mut admin, Verb::Promote(RolloutPromote { full: false })).await;
    wait_rollout(&mut admin, "Succeeded", |s| s.phase().name() == "Succeeded").await;

    // The steps of both processes hang from the one `rollout` span.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (root, trace) = loop {
        let spans = collector.spans();
        let root = spans.iter().find(|s| s.name == "rollout").cloned();
        if let Some(root) = root {
            let trace: Vec<CollectedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            let done = trace.iter().any(|s| {
                s.name == "rollout.step"
                    && s.attributes.get("kind").map(String::as_str) == Some("done")
            });
            if done {
                break (root, trace);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the trace is incomplete: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(broken_parents(&trace), Vec::<String>::new(), "{trace:#?}");
    let steps: Vec<&CollectedSpan> = trace.iter().filter(|s| s.name == "rollout.step").collect();
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| s.attributes["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 4, "canary, pause, percent, done: {kinds:?}");
    for kind in ["canary", "pause", "percent", "done"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    for s in &steps {
        assert_eq!(s.parent_span_id, root.span_id, "{s:#?}");
    }
    // The percent step, entered by the new process, pushed to the two other agents.
    let percent = steps
        .iter()
        .find(|s| s.attributes["kind"] == "percent")
        .unwrap();
    let push = trace
        .iter()
        .find(|s| s.name == "rollout.push" && s.parent_span_id == percent.span_id)
        .unwrap_or_else(|| panic!("no push under the percent step: {trace:#?}"));
    assert_eq!(push.attributes["agents"], "2");
    assert!(
        percent.start_ns
            > steps
                .iter()
                .find(|s| s.attributes["kind"] == "pause")
                .unwrap()
                .end_ns
    );
}
