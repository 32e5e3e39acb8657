//! The registry's push, ACK and NACK rules, without sessions or a network.

use h264_proto::v1::{
    AgentCommand, Assignment, AssignmentAck, AssignmentNack, Hello, PauseRequest,
};

use super::*;
use crate::model::SyncState;

fn revision(generation: u64) -> Revision {
    Revision {
        generation,
        sha256: format!("sha{generation}"),
        name: "studios".into(),
        canonical: format!("{{\"g\":{generation}}}").into_bytes(),
        created_at_ms: 0,
        signed: None,
    }
}

fn hello(id: &str, generation: u64) -> Hello {
    Hello {
        agent_id: id.into(),
        running_generation: generation,
        running_sha256: if generation == 0 {
            "local".into()
        } else {
            format!("sha{generation}")
        },
        highest_accepted_generation: generation,
        ..Default::default()
    }
}

fn sent(push: Push) -> Assignment {
    match push {
        Push::Send(a) => a,
        other => panic!("expected an assignment, got {other:?}"),
    }
}

fn state(reg: &Registry, id: &str) -> String {
    reg.describe(id).unwrap().sync_state().name().to_owned()
}

#[test]
fn apply_pushes_once_and_ack_syncs() {
    let reg = Registry::load(vec![], vec![], None);
    let t = reg.register(&hello("a", 0), true, usize::MAX).unwrap();
    assert_eq!(reg.next_push("a", t.id), Push::Nothing);
    assert_eq!(state(&reg, "a"), "not_sent");

    reg.add_revision(revision(1));
    let out = reg.assign(1, &Target::All, false).unwrap();
    assert_eq!(out.agents, ["a"]);
    let a = sent(reg.next_push("a", t.id));
    assert_eq!((a.generation, a.sha256.as_str()), (1, "sha1"));
    assert_eq!(
        reg.next_push("a", t.id),
        Push::Nothing,
        "not twice per session"
    );
    assert_eq!(state(&reg, "a"), "pending");
    reg.ack(
        "a",
        &AssignmentAck {
            generation: 1,
            nonce: a.nonce,
            sha256: "sha1".into(),
        },
    );
    let s = reg.describe("a").unwrap();
    assert_eq!(
        (
            s.sync_state().name(),
            s.acknowledged_generation,
            s.running_generation
        ),
        ("synced", 1, 1)
    );

    // A later agent gets the fleet-wide target; a reconnect of a synced agent gets nothing.
    let b = reg.register(&hello("b", 0), true, usize::MAX).unwrap();
    assert_eq!(sent(reg.next_push("b", b.id)).generation, 1);
    let again = reg.register(&hello("a", 1), true, usize::MAX).unwrap();
    assert_eq!(reg.next_push("a", again.id), Push::Nothing);
    assert_eq!(reg.next_push("a", t.id), Push::Superseded);
}

#[test]
fn nacked_revision_is_not_pushed_again_until_retried_explicitly() {
    let reg = Registry::load(vec![revision(1)], vec![], None);
    let t = reg.register(&hello("a", 0), true, usize::MAX).unwrap();
    reg.assign(1, &Target::All, false).unwrap();
    let a = sent(reg.next_push("a", t.id));
    reg.nack(
        "a",
        &AssignmentNack {
            generation: 1,
            nonce: a.nonce,
            stage: h264_proto::v1::NackStage::Hash.into(),
            field: String::new(),
            message: "SHA256 mismatch".into(),
        },
    );
    let s = reg.describe("a").unwrap();
    assert_eq!(s.sync_state().name(), "error");
    assert_eq!(s.sync_error, "hash: SHA256 mismatch");
    assert_eq!(s.recent_events[0].kind().name(), "nack");
    assert_eq!(reg.errors_of("a", 0).unwrap().len(), 1);

    // Not on a reconnect, not on a selector or fleet-wide assign.
    let t2 = reg.register(&hello("a", 0), true, usize::MAX).unwrap();
    assert_eq!(reg.next_push("a", t2.id), Push::Nothing);
    reg.assign(1, &Target::All, false).unwrap();
    assert_eq!(reg.next_push("a", t2.id), Push::Nothing);
    assert_eq!(state(&reg, "a"), "error");
    // An explicit assign to the agent retries.
    reg.assign(1, &Target::Agent("a".into()), false).unwrap();
    assert_eq!(sent(reg.next_push("a", t2.id)).generation, 1);
    assert_eq!(state(&reg, "a"), "pending");
}

#[test]
fn older_generation_warns_without_rollback_and_carries_the_mark_with_it() {
    let reg = Registry::load(vec![revision(1), revision(2)], vec![], None);
    let t = reg.register(&hello("a", 2), true, usize::MAX).unwrap();
    let out = reg.assign(1, &Target::Agent("a".into()), false).unwrap();
    assert_eq!(out.warnings.len(), 1, "{out:?}");
    assert!(out.warnings[0].contains("--rollback"));
    assert!(!sent(reg.next_push("a", t.id)).rollback);
    let out = reg.assign(1, &Target::Agent("a".into()), true).unwrap();
    assert!(out.warnings.is_empty());
    assert!(sent(reg.next_push("a", t.id)).rollback);
}

#[test]
fn selectors_unknown_targets_commands_and_disconnects() {
    let reg = Registry::load(vec![revision(1)], vec![], None);
    let mut h = hello("paris-1", 0);
    h.labels.insert("site".into(), "paris".into());
    let p = reg.register(&h, true, usize::MAX).unwrap();
    let _l = reg.register(&hello("lyon-1", 0), true, usize::MAX).unwrap();
    // Reported labels are shown, never selected on; the operator's are.
    let sel = Target::Selector(crate::selector::Selector::parse("site=paris").unwrap());
    assert!(reg.assign(1, &sel, false).unwrap().agents.is_empty());
    reg.set_labels("paris-1", &["site=paris".into()]).unwrap();
    let sel = Target::Selector(crate::selector::Selector::parse("site=paris").unwrap());
    assert_eq!(reg.assign(1, &sel, false).unwrap().agents, ["paris-1"]);
    assert_eq!(
        reg.assign(9, &Target::All, false),
        Err(AssignError::NoRevision(9))
    );
    assert_eq!(
        reg.assign(1, &Target::Agent("x".into()), false),
        Err(AssignError::UnknownAgent("x".into()))
    );
    assert_eq!(state(&reg, "lyon-1"), "not_sent");

    let pause = AgentCommand {
        body: Some(h264_proto::v1::agent_command::Body::Pause(
            PauseRequest::default(),
        )),
    };
    let mut commands = p.commands;
    reg.command("paris-1", pause).unwrap();
    assert_eq!(commands.try_recv().unwrap(), pause);
    sent(reg.next_push("paris-1", p.id));
    reg.disconnect("paris-1", p.id);
    let s = reg.describe("paris-1").unwrap();
    assert!(!s.connected);
    assert_eq!(
        reg.command("paris-1", pause),
        Err(CommandError::NotConnected("paris-1".into()))
    );
    assert_eq!(
        reg.command("nobody", pause),
        Err(CommandError::UnknownAgent("nobody".into()))
    );
    assert_eq!(SyncState::parse(s.sync_state().name()), SyncState::Pending);
    let batch = reg.take_batch();
    assert_eq!(batch.agents.len(), 2);
    assert!(reg.take_batch().is_empty());
}

/// Spans really traced (exported nowhere: the collector is down), so that trace contexts exist.
fn traced() -> (h264_telemetry::Telemetry, tracing::subscriber::DefaultGuard) {
    use tracing_subscriber::layer::SubscriberExt as _;
    let mut settings = h264_telemetry::Settings::new("h264-controller-test", "0");
    settings.otlp_endpoint = Some(h264_testkit::otlp::unreachable_endpoint());
    let t = h264_telemetry::Telemetry::init(settings, false).unwrap();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(t.layer()));
    (t, guard)
}

#[tokio::test]
async fn an_assignment_carries_the_trace_of_the_span_that_made_it_even_sent_later() {
    use h264_telemetry::propagate::traceparent_of;
    let (_t, _guard) = traced();
    let reg = Registry::load(vec![], vec![], None);
    reg.add_revision(revision(1));
    reg.add_revision(revision(2));
    let t = reg.register(&hello("online", 0), true, usize::MAX).unwrap();
    let old = reg
        .register(&hello("offline", 0), true, usize::MAX)
        .unwrap();
    reg.disconnect("offline", old.id);

    // Assigned inside a span (an admin call, say): the context travels with the assignment.
    let span = tracing::info_span!("admin.apply");
    let expected = traceparent_of(&span);
    assert!(!expected.is_empty());
    span.in_scope(|| reg.assign(1, &Target::All, false).unwrap());
    assert_eq!(sent(reg.next_push("online", t.id)).traceparent, expected);

    // The offline agent returns later, outside any span: the same context.
    let back = reg
        .register(&hello("offline", 0), true, usize::MAX)
        .unwrap();
    assert_eq!(
        sent(reg.next_push("offline", back.id)).traceparent,
        expected
    );
    // A new agent gets the fleet-wide target with the span that set it.
    let new = reg.register(&hello("new", 0), true, usize::MAX).unwrap();
    assert_eq!(sent(reg.next_push("new", new.id)).traceparent, expected);

    // A rollout's push names its own span; an untraced assignment carries nothing.
    let push = tracing::info_span!("rollout.push");
    push.in_scope(|| reg.assign_agents(2, &["online".into()], false));
    assert_eq!(
        sent(reg.next_push("online", t.id)).traceparent,
        traceparent_of(&push)
    );
    reg.assign(1, &Target::Agent("new".into()), true).unwrap();
    let new = reg.register(&hello("new", 0), true, usize::MAX).unwrap();
    assert_eq!(sent(reg.next_push("new", new.id)).traceparent, "");
}
