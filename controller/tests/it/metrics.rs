//! The controller's Prometheus endpoint (`[telemetry] metrics_listen`), scraped over HTTP from
//! the real binary and parsed strictly (`h264_testkit::exposition`): sessions connected,
//! assignments by sync state, rollouts by phase and rollbacks after a small scenario with
//! in-process protocol-speaking agents (three connect and run generation 1; a rollout of
//! generation 2 is refused by its canary and rolled back). The same run exports its spans to
//! an OTLP collector stand-in (`[telemetry] otlp_endpoint`): the rollback is a span of the
//! rollout's trace with the failed gate's numbers, and the canary's assignment carried the
//! trace context of the push that sent it.

use crate::support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use h264_proto::v1::controller_message::Body;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{ListAgentsRequest, RolloutRequest, RolloutStatusRequest};
use h264_testkit::exposition::{self, Exposition};
use h264_testkit::otlp::{broken_parents, Collector};
use support::*;

/// `GET /metrics`, parsed (the test fails on invalid exposition text).
fn scrape(addr: SocketAddr) -> Exposition {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    exposition::parse(body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
}

/// Scrapes until `check` holds (at most 10 s); returns that scrape.
fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&Exposition) -> bool) -> Exposition {
    wait_for(
        what,
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let e = scrape(addr);
            check(&e).then_some(e)
        },
    )
    .unwrap_or_else(|e| panic!("{e}; last scrape: {:#?}", scrape(addr).samples))
}

fn value(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", e.samples))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_sessions_assignments_rollouts_and_rollbacks() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "[telemetry]\nmetrics_listen = \"127.0.0.1:0\"\notlp_endpoint = \"{}\"\n",
            collector.endpoint()
        ),
    )
    .unwrap();
    let c = controller_with_config(&dir.path().join("state"), &config);
    let metrics = c.metrics_addr();
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;

    // Three agents: each ACKs generation 1 and refuses generation 2.
    let ids = ["m-0", "m-1", "m-2"];
    let traceparents = Arc::new(Mutex::new(Vec::new()));
    for id in ids {
        let url = c.url();
        let traceparents = traceparents.clone();
        tokio::spawn(async move {
            let mut agent = FakeAgent::connect(&url, hello(id, &[], 0, "local"))
                .await
                .expect("session");
            while let Some(m) = agent.next(Duration::from_secs(600)).await {
                let Body::Assignment(a) = m else { continue };
                if a.generation == 2 {
                    traceparents.lock().unwrap().push(a.traceparent.clone());
                    agent
                        .nack(&a, "validation", "transcode.crf", "refused by the test")
                        .await;
                } else {
                    agent.ack(&a).await;
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let known = admin
            .list_agents(ListAgentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .agents;
        if known.len() == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agents not registered: {known:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ids {
        wait_for_agent(&mut admin, id, "runs generation 1", |s| {
            s.running_generation == 1 && s.sync_state().name() == "synced"
        })
        .await;
    }
    let before = tokio::task::spawn_blocking(move || {
        scrape_until(metrics, "three synced agents", |e| {
            e.value("h264_controller_assignments", &[("state", "synced")]) == Some(3.0)
        })
    })
    .await
    .unwrap();
    assert_eq!(
        value(&before, "h264_controller_sessions_connected", &[]),
        3.0
    );
    assert_eq!(value(&before, "h264_controller_agents", &[]), 3.0);
    for state in ["not_sent", "pending", "error"] {
        assert_eq!(
            value(&before, "h264_controller_assignments", &[("state", state)]),
            0.0
        );
    }
    assert!(
        before.named("h264_controller_rollouts").is_empty(),
        "no rollout yet: {:#?}",
        before.samples
    );
    assert_eq!(before.types["h264_controller_sessions_connected"], "gauge");
    assert_eq!(before.types["h264_controller_assignments"], "gauge");
    assert!(value(&before, "h264_controller_assignments_sent_total", &[]) >= 3.0);
    assert_eq!(
        value(
            &before,
            "h264_controller_assignment_replies_total",
            &[("reply", "ack")]
        ),
        3.0
    );

    // Generation 2, rolled out: the canary refuses it, the rollout rolls back.
    let rollout_manifest = "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: 22\n  rollout:\n    steps: [{canary: 1}, {percent: 100}]\n    analysis: {ack_deadline: 5s}\n";
    apply(&mut admin, rollout_manifest).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = admin
            .rollout(RolloutRequest {
                verb: Some(Verb::Status(RolloutStatusRequest {})),
            })
            .await
            .unwrap()
            .into_inner();
        if s.phase().name() == "RolledBack" {
            break;
        }
        assert!(Instant::now() < deadline, "not rolled back: {s:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let after = tokio::task::spawn_blocking(move || {
        scrape_until(metrics, "the rollback and three synced agents", |e| {
            e.value("h264_controller_rollouts", &[("phase", "RolledBack")]) == Some(1.0)
                && e.value("h264_controller_assignments", &[("state", "synced")]) == Some(3.0)
        })
    })
    .await
    .unwrap();
    assert_eq!(after.types["h264_controller_rollouts"], "gauge");
    for phase in [
        "Pending",
        "Progressing",
        "Paused",
        "Succeeded",
        "Aborted",
        "Superseded",
    ] {
        assert_eq!(
            value(&after, "h264_controller_rollouts", &[("phase", phase)]),
            0.0,
            "{phase}"
        );
    }
    assert_eq!(after.types["h264_controller_rollbacks_total"], "counter");
    assert_eq!(
        value(
            &after,
            "h264_controller_rollbacks_total",
            &[("cause", "nack")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "h264_controller_assignment_replies_total",
            &[("reply", "nack")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "h264_controller_sessions_connected", &[]),
        3.0
    );
    // Generation 1 three times, then 2 to the canary (which still runs 1: no rollback push).
    assert!(value(&after, "h264_controller_assignments_sent_total", &[]) >= 4.0);

    // The rollback, in the rollout's trace, with the failed gate's numbers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = collector.spans();
        if spans.iter().any(|s| s.name == "rollout.rollback") {
            break spans;
        }
        assert!(Instant::now() < deadline, "no rollback span: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rollback = spans.iter().find(|s| s.name == "rollout.rollback").unwrap();
    let trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == rollback.trace_id)
        .cloned()
        .collect();
    assert_eq!(broken_parents(&trace), Vec::<String>::new());
    let named = |name: &str| trace.iter().find(|s| s.name == name).unwrap();
    assert_eq!(named("admin.apply").parent_span_id, "", "{trace:#?}");
    assert_eq!(rollback.service, "h264-controller");
    assert_eq!(rollback.attributes["gate"], "nack");
    assert!(
        rollback.attributes["measured"].starts_with("1 NACK(s): "),
        "{rollback:#?}"
    );
    assert!(rollback.attributes["measured"].contains("refused by the test"));
    assert_eq!(rollback.attributes["threshold"], "0 NACKs");
    assert_eq!(rollback.attributes["generation"], "2");
    assert_eq!(rollback.attributes["stable_generation"], "1");
    assert_eq!(rollback.attributes["phase"], "RolledBack");
    assert_eq!(
        rollback.status_code, 2,
        "a failed gate's rollback is an error"
    );
    let step = trace
        .iter()
        .find(|s| s.span_id == rollback.parent_span_id)
        .unwrap();
    assert_eq!(
        (step.name.as_str(), step.attributes["kind"].as_str()),
        ("rollout.step", "canary")
    );
    let gate = trace
        .iter()
        .find(|s| s.name == "rollout.gate" && s.attributes["result"] == "failed")
        .unwrap();
    assert_eq!(gate.attributes["gate"], "nack");
    assert_eq!(gate.parent_span_id, step.span_id);
    // The canary's assignment named the push that sent it.
    let sent = traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "only the canary got generation 2: {sent:?}");
    let push = named("rollout.push");
    assert_eq!(
        sent[0],
        format!("00-{}-{}-01", push.trace_id, push.span_id),
        "{trace:#?}"
    );
    assert_eq!(push.parent_span_id, step.span_id);
    drop(c);
}
