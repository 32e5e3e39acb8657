//! The controller's state across restarts, its single-instance guard and its health service.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use h264_proto::v1::{ListAgentsRequest, ListRevisionsRequest, StatsReply};
use support::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn restart_keeps_revisions_agents_and_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let r1 = apply(&mut admin, &manifest(22)).await;
    let mut agent = FakeAgent::connect(
        &c.url(),
        hello("studio-a", &[("site", "paris")], 0, "local"),
    )
    .await
    .unwrap();
    let a = agent.assignment(Duration::from_secs(5)).await;
    agent.ack(&a).await;
    let stats = StatsReply {
        queue_depth: 4,
        ..Default::default()
    };
    agent.stats(1, stats).await;
    wait_for_agent(&mut admin, "studio-a", "stats", |s| {
        s.stats.as_ref().is_some_and(|s| s.queue_depth == 4) && s.sync_state().name() == "synced"
    })
    .await;
    let r2 = apply(&mut admin, &manifest(23)).await;
    drop(agent);

    c.restart();
    let mut admin = admin_of(&c).await;
    let revs = admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions;
    assert_eq!(
        revs.iter()
            .map(|r| (r.generation, r.sha256.clone()))
            .collect::<Vec<_>>(),
        [(2, r2.sha256.clone()), (1, r1.sha256.clone())]
    );
    let agents = admin
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(agents.len(), 1);
    let s = &agents[0];
    assert!(!s.connected);
    assert_eq!(
        s.reported_labels.get("site").map(String::as_str),
        Some("paris")
    );
    assert_eq!(
        (
            s.desired_generation,
            s.acknowledged_generation,
            s.running_generation
        ),
        (2, 1, 1)
    );
    assert_eq!(s.stats.as_ref().map(|s| s.queue_depth), Some(4));
    // Same spec after the restart: still no new revision.
    assert!(!apply(&mut admin, &manifest(23)).await.created);

    // The agent comes back and is brought to generation 2.
    let mut agent = FakeAgent::connect(
        &c.url(),
        hello("studio-a", &[("site", "paris")], 1, &r1.sha256),
    )
    .await
    .unwrap();
    let b = agent.assignment(Duration::from_secs(5)).await;
    assert_eq!(b.generation, 2);

    // Killed without a chance to flush: an apply is on disk when it answers.
    let r3 = apply(&mut admin, &manifest(24)).await;
    drop(agent);
    c.kill();
    c.start_again();
    let mut admin = admin_of(&c).await;
    let s = describe(&mut admin, "studio-a").await;
    assert_eq!(s.desired_generation, r3.generation);
}

async fn admin_of(c: &ControllerProcess) -> support::Admin {
    admin(c).await
}

#[tokio::test]
async fn health_service_reports_serving() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let channel = tonic::transport::Endpoint::from_shared(c.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "h264create.v1.AgentSessions",
        "h264create.v1.FleetAdmin",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service}");
    }
}

#[test]
fn a_second_controller_on_the_same_state_folder_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let _c = controller(&state);
    let out = Command::new(env!("CARGO_BIN_EXE_h264-controller"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another h264-controller"), "{err}");
}

#[test]
fn configuration_file_is_strict_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controller.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\nstate_dir = \"s\"\nlisen = \"typo\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_h264-controller"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));

    let state = dir.path().join("from-file");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:1\"\nstate_dir = {:?}\n",
            state.display().to_string()
        ),
    )
    .unwrap();
    // --listen overrides the file's (unusable) port 1.
    let bin = Path::new(env!("CARGO_BIN_EXE_h264-controller"));
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    assert!(state.join("controller.db").is_file());
}
