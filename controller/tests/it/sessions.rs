//! The session protocol against the real controller binary over loopback gRPC, with a test
//! agent built on the generated client: assignment, SHA256, ACK; NACK and no re-push;
//! reconnect resync; the Hello rule; rollback marks; commands through the controller.

use crate::support;

use std::time::Duration;

use h264_config::fleet::FleetSpec;
use h264_proto::v1::agent_command::Body as Cmd;
use h264_proto::v1::agent_control_reply::Body as Reply;
use h264_proto::v1::agent_control_request::Body as Req;
use h264_proto::v1::agent_message::Body;
use h264_proto::v1::{
    AgentControlRequest, AgentMessage, AgentStats, AssignRequest, ErrorsRequest,
    ListRevisionsRequest, PauseRequest, StatsReply,
};
use support::*;

const SOON: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

#[tokio::test]
async fn assignment_carries_verified_bytes_and_ack_syncs_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let mut agent = FakeAgent::connect(
        &c.url(),
        hello("studio-a", &[("site", "paris")], 0, "local"),
    )
    .await
    .unwrap();
    agent.expect_nothing(QUIET).await;
    assert_eq!(
        describe(&mut admin, "studio-a").await.sync_state().name(),
        "not_sent"
    );

    let reply = apply(&mut admin, &manifest(23)).await;
    assert!(reply.created);
    assert_eq!(reply.agents, 1);
    let a = agent.assignment(SOON).await;
    assert_eq!(a.generation, reply.generation);
    assert_eq!(a.sha256, reply.sha256);
    assert_eq!(sha256_hex(&a.canonical), a.sha256);
    assert!(!a.rollback && !a.nonce.is_empty());
    let spec = FleetSpec::from_canonical_json(std::str::from_utf8(&a.canonical).unwrap()).unwrap();
    assert_eq!(spec.canonical_sha256(), a.sha256);
    assert_eq!(
        describe(&mut admin, "studio-a").await.sync_state().name(),
        "pending"
    );

    agent.ack(&a).await;
    let s = wait_for_agent(&mut admin, "studio-a", "synced", |s| {
        s.sync_state().name() == "synced"
    })
    .await;
    assert_eq!(
        (
            s.desired_generation,
            s.acknowledged_generation,
            s.running_generation
        ),
        (1, 1, 1)
    );
    assert!(s.connected);
    assert_eq!(
        s.reported_labels.get("site").map(String::as_str),
        Some("paris")
    );
    let revs = admin
        .list_revisions(ListRevisionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .revisions;
    assert_eq!((revs[0].assigned, revs[0].acked), (1, 1));
    agent.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn nacked_revision_sets_error_and_is_not_pushed_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-b", &[], 0, "local"))
        .await
        .unwrap();
    apply(&mut admin, &manifest(24)).await;
    let a = agent.assignment(SOON).await;
    agent
        .nack(
            &a,
            "hash",
            "",
            "SHA256 of the bytes is not the assignment's",
        )
        .await;
    let s = wait_for_agent(&mut admin, "studio-b", "error", |s| {
        s.sync_state().name() == "error"
    })
    .await;
    assert!(s.sync_error.starts_with("hash: "), "{}", s.sync_error);
    assert_eq!(s.running_generation, 0, "it keeps running what it had");
    assert_eq!(s.recent_events[0].kind().name(), "nack");

    // Not again in this session, nor after a reconnect, nor when the same spec is applied.
    agent.expect_nothing(QUIET).await;
    drop(agent);
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-b", &[], 0, "local"))
        .await
        .unwrap();
    agent.expect_nothing(QUIET).await;
    assert!(!apply(&mut admin, &manifest(24)).await.created);
    agent.expect_nothing(QUIET).await;
    assert_eq!(
        describe(&mut admin, "studio-b").await.sync_state().name(),
        "error"
    );

    // The errors through the controller include the NACK.
    let errors = admin
        .agent_control(AgentControlRequest {
            agent_id: "studio-b".into(),
            body: Some(Req::Errors(ErrorsRequest { limit: 5 })),
        })
        .await
        .unwrap()
        .into_inner();
    match errors.body {
        Some(Reply::Errors(e)) => assert_eq!(e.errors[0].kind, "nack"),
        other => panic!("{other:?}"),
    }

    // A new revision is pushed; an explicit assign to the agent retries the refused one.
    let r2 = apply(&mut admin, &manifest(25)).await;
    let b = agent.assignment(SOON).await;
    assert_eq!(b.generation, r2.generation);
    agent.ack(&b).await;
    admin
        .assign(AssignRequest {
            generation: a.generation,
            agent_id: "studio-b".into(),
            selector: String::new(),
            rollback: true,
        })
        .await
        .unwrap();
    let retry = agent.assignment(SOON).await;
    assert_eq!((retry.generation, retry.rollback), (a.generation, true));
}

#[tokio::test]
async fn reconnect_resyncs_from_the_hello() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let r1 = apply(&mut admin, &manifest(20)).await;

    // An agent that registers later gets the fleet's revision.
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-c", &[], 0, "local"))
        .await
        .unwrap();
    let a = agent.assignment(SOON).await;
    assert_eq!(a.generation, r1.generation);
    agent.ack(&a).await;
    wait_for_agent(&mut admin, "studio-c", "synced", |s| {
        s.sync_state().name() == "synced"
    })
    .await;
    drop(agent);
    let s = wait_for_agent(&mut admin, "studio-c", "disconnected", |s| !s.connected).await;
    assert!(s.last_seen_ms > 0);

    // A revision applied while it is away is sent when it comes back saying it runs gen 1.
    let r2 = apply(&mut admin, &manifest(21)).await;
    assert_eq!(
        describe(&mut admin, "studio-c").await.sync_state().name(),
        "not_sent"
    );
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-c", &[], 1, &r1.sha256))
        .await
        .unwrap();
    let b = agent.assignment(SOON).await;
    assert_eq!(b.generation, r2.generation);
    agent.ack(&b).await;
    wait_for_agent(&mut admin, "studio-c", "synced on 2", |s| {
        s.sync_state().name() == "synced" && s.running_generation == 2
    })
    .await;
    drop(agent);

    // Back with what it should run: nothing to send, synced at once.
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-c", &[], 2, &r2.sha256))
        .await
        .unwrap();
    agent.expect_nothing(QUIET).await;
    assert_eq!(
        describe(&mut admin, "studio-c").await.sync_state().name(),
        "synced"
    );

    // Back saying it runs generation 2 with other bytes (say, a restored old disk): resent.
    drop(agent);
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-c", &[], 2, "something-else"))
        .await
        .unwrap();
    assert_eq!(agent.assignment(SOON).await.generation, 2);
}

#[tokio::test]
async fn a_session_must_start_with_a_valid_hello() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let stats_first = AgentMessage {
        body: Some(Body::Stats(AgentStats::default())),
    };
    let e = FakeAgent::connect_with(&c.url(), "x".into(), stats_first)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    assert!(e.message().contains("Hello"), "{e}");
    let e = FakeAgent::connect(&c.url(), hello("has space", &[], 0, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
}

#[tokio::test]
async fn older_generation_needs_the_rollback_mark() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let r2 = apply(&mut admin, &manifest(21)).await;
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-d", &[], 2, &r2.sha256))
        .await
        .unwrap();
    agent.expect_nothing(QUIET).await;

    let assign = |rollback| AssignRequest {
        generation: 1,
        agent_id: "studio-d".into(),
        selector: String::new(),
        rollback,
    };
    let reply = admin.assign(assign(false)).await.unwrap().into_inner();
    assert_eq!(reply.agents, ["studio-d"]);
    assert!(
        reply.warnings[0].contains("--rollback"),
        "{:?}",
        reply.warnings
    );
    let a = agent.assignment(SOON).await;
    assert!(!a.rollback);
    agent
        .nack(
            &a,
            "generation",
            "",
            "generation 1 is older than 2 and not a rollback",
        )
        .await;
    wait_for_agent(&mut admin, "studio-d", "error", |s| {
        s.sync_state().name() == "error"
    })
    .await;

    let reply = admin.assign(assign(true)).await.unwrap().into_inner();
    assert!(reply.warnings.is_empty());
    let a = agent.assignment(SOON).await;
    assert!(a.rollback);
    agent.ack(&a).await;
    wait_for_agent(&mut admin, "studio-d", "synced on 1", |s| {
        s.sync_state().name() == "synced" && s.running_generation == 1
    })
    .await;
}

#[tokio::test]
async fn pause_and_resume_travel_over_the_session_and_stats_confirm_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    let mut agent = FakeAgent::connect(&c.url(), hello("studio-e", &[], 0, "local"))
        .await
        .unwrap();
    agent.stats(0, StatsReply::default()).await;
    wait_for_agent(&mut admin, "studio-e", "stats", |s| s.stats.is_some()).await;

    let mut admin2 = admin.clone();
    let call = tokio::spawn(async move {
        admin2
            .agent_control(AgentControlRequest {
                agent_id: "studio-e".into(),
                body: Some(Req::Pause(PauseRequest::default())),
            })
            .await
    });
    let cmd = agent.command(SOON).await;
    assert!(matches!(cmd.body, Some(Cmd::Pause(_))), "{cmd:?}");
    let paused = StatsReply {
        paused: true,
        paused_by: "manual".into(),
        ..Default::default()
    };
    agent.stats(0, paused).await;
    let reply = call.await.unwrap().unwrap().into_inner();
    assert!(matches!(reply.body, Some(Reply::Pause(p)) if p.paused));

    drop(agent);
    wait_for_agent(&mut admin, "studio-e", "disconnected", |s| !s.connected).await;
    let e = admin
        .agent_control(AgentControlRequest {
            agent_id: "studio-e".into(),
            body: Some(Req::Pause(PauseRequest::default())),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e}");
}
