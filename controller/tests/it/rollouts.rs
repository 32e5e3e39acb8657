//! Rollouts through the real controller binary with in-process fake agents: cohorts, gates,
//! rollback, the operator's verbs, a restart mid-rollout, and the alert e-mails of a rollback,
//! an abort and an undo at a real SMTP server on loopback (`h264_testkit::smtp`, Python's
//! aiosmtpd). Soaks and deadlines are seconds.

use crate::support;

use std::time::{Duration, Instant};

use h264_proto::v1::controller_message::Body;
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{
    ListAgentsRequest, RolloutAbort, RolloutPromote, RolloutRequest, RolloutStatus,
    RolloutStatusRequest, RolloutUndo,
};
use h264_testkit::smtp::{Received, SmtpSink};
use support::*;

/// What a fake agent does with what it is sent.
#[derive(Clone, Copy)]
struct Behaviour {
    /// Refuse this generation.
    refuse: Option<u64>,
    /// After each ACK of a generation above 1, report this many jobs of this kind.
    jobs: Option<(&'static str, usize)>,
}

const GOOD: Behaviour = Behaviour {
    refuse: None,
    jobs: None,
};

fn spawn_agent(url: String, id: String, b: Behaviour) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut agent) = FakeAgent::connect(&url, hello(&id, &[], 0, "local")).await else {
            return;
        };
        while let Some(m) = agent.next(Duration::from_secs(600)).await {
            let Body::Assignment(a) = m else { continue };
            if b.refuse == Some(a.generation) {
                agent
                    .nack(&a, "validation", "transcode.crf", "refused by the test")
                    .await;
                continue;
            }
            agent.ack(&a).await;
            if let (Some((kind, n)), true) = (b.jobs, a.generation > 1) {
                for i in 0..n {
                    agent.event(kind, &format!("f{i}.mov"), "").await;
                }
            }
        }
    })
}

fn rollout_manifest(crf: u32, steps: &str, min_jobs: u32) -> String {
    format!(
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: {crf}\n  rollout:\n    steps: [{steps}]\n    analysis: {{max_failure_rate: 0.05, min_jobs: {min_jobs}, ack_deadline: 5s}}\n"
    )
}

async fn rollout(admin: &mut Admin, verb: Verb) -> RolloutStatus {
    admin
        .rollout(RolloutRequest { verb: Some(verb) })
        .await
        .expect("rollout verb")
        .into_inner()
}

async fn wait_rollout(
    admin: &mut Admin,
    what: &str,
    within: Duration,
    check: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    let waited = wait_for_async(what, within, Duration::from_millis(20), || {
        let (mut admin, check) = (admin.clone(), &check);
        async move {
            let s = rollout(&mut admin, Verb::Status(RolloutStatusRequest {})).await;
            check(&s).then_some(s)
        }
    })
    .await;
    match waited {
        Ok(s) => s,
        Err(e) => panic!(
            "{e}; last: {:#?}",
            rollout(admin, Verb::Status(RolloutStatusRequest {})).await
        ),
    }
}

/// A controller, generation 1 applied to `n` agents that all run it.
async fn fleet(
    dir: &std::path::Path,
    n: usize,
    behaviour: impl Fn(usize) -> Behaviour,
) -> (ControllerProcess, Admin, Vec<String>) {
    fleet_with(dir, n, behaviour, None).await
}

/// [`fleet`], the controller started with `--config config` when given.
async fn fleet_with(
    dir: &std::path::Path,
    n: usize,
    behaviour: impl Fn(usize) -> Behaviour,
    config: Option<&std::path::Path>,
) -> (ControllerProcess, Admin, Vec<String>) {
    let state = dir.join("state");
    let c = match config {
        Some(config) => controller_with_config(&state, config),
        None => controller(&state),
    };
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let ids: Vec<String> = (0..n).map(|i| format!("agent-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        spawn_agent(c.url(), id.clone(), behaviour(i));
    }
    wait_running(&mut admin, &ids, 1).await;
    (c, admin, ids)
}

async fn running(admin: &mut Admin, ids: &[String]) -> Vec<u64> {
    let agents = admin
        .list_agents(ListAgentsRequest::default())
        .await
        .expect("list agents")
        .into_inner()
        .agents;
    ids.iter()
        .map(|id| {
            agents
                .iter()
                .find(|a| a.agent_id == *id)
                .map_or(0, |a| a.running_generation)
        })
        .collect()
}

/// Waits (10 s at most) until every agent of `ids` runs `generation`.
async fn wait_running(admin: &mut Admin, ids: &[String], generation: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = running(admin, ids).await;
        if now.iter().all(|g| *g == generation) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agents not on {generation}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_agents_go_through_canary_25_50_75_100_and_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, mut admin, ids) = fleet(dir.path(), 10, |_| GOOD).await;
    let steps = "{canary: 1}, {percent: 25}, {percent: 50}, {percent: 75}, {percent: 100}";
    let r = apply(&mut admin, &rollout_manifest(21, steps, 1)).await;
    assert_eq!(r.generation, 2);
    let s = wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    let acks: Vec<&str> = s.gates.iter().map(|g| g.measured.as_str()).collect();
    assert_eq!(
        acks,
        [
            "1 of 1 online agents ACKed",
            "3 of 3 online agents ACKed",
            "5 of 5 online agents ACKed",
            "8 of 8 online agents ACKed",
            "10 of 10 online agents ACKed"
        ]
    );
    assert_eq!(s.cohort.unwrap().synced, 10);
    assert_eq!(running(&mut admin, &ids).await, vec![2; 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_some_agents_nack_rolls_back_at_that_step() {
    let dir = tempfile::tempdir().unwrap();
    // Every agent but the canary refuses generation 2: the canary passes, 50% fails.
    let (_c, mut admin, ids) = fleet(dir.path(), 4, |_| Behaviour {
        refuse: Some(2),
        jobs: None,
    })
    .await;
    let steps = "{canary: 1}, {percent: 50}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(21, steps, 1)).await;
    let s = wait_rollout(&mut admin, "RolledBack", Duration::from_secs(10), |s| {
        s.phase().name() == "RolledBack"
    })
    .await;
    assert_eq!(s.step, 0, "the canary refused already");
    let g = s.gates.last().unwrap();
    assert_eq!((g.gate.as_str(), g.passed), ("nack", false));
    assert!(g.measured.contains("refused by the test"), "{g:?}");
    assert!(s.reason.contains("gate `nack` failed"), "{}", s.reason);
    assert_eq!(running(&mut admin, &ids).await, vec![1; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_traffic_pauses_inconclusive_and_promote_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, mut admin, ids) = fleet(dir.path(), 3, |_| GOOD).await;
    let steps = "{canary: 1}, {pause: 1s}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(21, steps, 1)).await;
    let s = wait_rollout(&mut admin, "Paused", Duration::from_secs(10), |s| {
        s.phase().name() == "Paused"
    })
    .await;
    assert!(s.reason.starts_with("inconclusive"), "{}", s.reason);
    assert_eq!(s.step, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = rollout(&mut admin, Verb::Status(RolloutStatusRequest {})).await;
    assert_eq!(s.phase().name(), "Paused", "it never advances on silence");
    rollout(&mut admin, Verb::Promote(RolloutPromote { full: false })).await;
    wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    assert_eq!(running(&mut admin, &ids).await, vec![2; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_on_the_canary_roll_every_agent_back() {
    let dir = tempfile::tempdir().unwrap();
    let (c, mut admin, ids) = fleet(dir.path(), 4, |_| Behaviour {
        refuse: None,
        jobs: Some(("failed", 3)),
    })
    .await;
    let steps = "{canary: 1}, {pause: 30s}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(21, steps, 2)).await;
    let s = wait_rollout(&mut admin, "RolledBack", Duration::from_secs(10), |s| {
        s.phase().name() == "RolledBack"
    })
    .await;
    let g = s.gates.last().unwrap();
    assert_eq!(g.gate, "failure_rate");
    assert!(g.measured.contains("failed of"), "{g:?}");
    assert_eq!(running(&mut admin, &ids).await, vec![1; 4]);
    assert!(c.log_text().contains("ALERT"), "the alert is logged");
    // The automated decision is in the audit trail, as the controller's.
    let audit = admin
        .list_audit(h264_proto::v1::ListAuditRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries;
    let rollback = audit
        .iter()
        .find(|e| e.verb == "rollout.rolledback")
        .unwrap_or_else(|| panic!("no rollback in {audit:#?}"));
    assert_eq!(
        (rollback.who.as_str(), rollback.role.as_str()),
        ("controller", "automated")
    );
    assert_eq!(rollback.generation, 2);
    assert!(rollback.result.contains("failure_rate"), "{rollback:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_every_attempt_fails_and_is_retried_rolls_back_within_its_soak() {
    let dir = tempfile::tempdir().unwrap();
    // Each agent reports failed attempts that it will retry (`retrying`), never a job that gave
    // up: the soak must still see them.
    let (c, mut admin, ids) = fleet(dir.path(), 4, |_| Behaviour {
        refuse: None,
        jobs: Some(("retrying", 2)),
    })
    .await;
    let steps = "{canary: 1}, {pause: 60s}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(21, steps, 2)).await;
    let started = Instant::now();
    let s = wait_rollout(&mut admin, "RolledBack", Duration::from_secs(30), |s| {
        s.phase().name() == "RolledBack" || s.phase().name() == "Paused"
    })
    .await;
    assert_eq!(s.phase().name(), "RolledBack", "not inconclusive: {s:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "within the soak"
    );
    let g = s.gates.last().unwrap();
    assert_eq!(g.gate, "failure_rate");
    assert_eq!(g.measured, "1.000 (2 failed of 2 attempts)");
    assert_eq!(running(&mut admin, &ids).await, vec![1; 4]);
    assert!(c.log_text().contains("ALERT"), "the alert is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_success_puts_every_agent_back_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, mut admin, ids) = fleet(dir.path(), 10, |_| GOOD).await;
    apply(
        &mut admin,
        &rollout_manifest(21, "{canary: 1}, {percent: 100}", 1),
    )
    .await;
    wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    let started = Instant::now();
    let s = rollout(&mut admin, Verb::Undo(RolloutUndo { to_generation: 0 })).await;
    assert_eq!(s.phase().name(), "RolledBack");
    loop {
        if running(&mut admin, &ids).await == vec![1; 10] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "undo took over 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_the_rollout_at_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, mut admin, ids) = fleet(dir.path(), 4, |_| GOOD).await;
    apply(
        &mut admin,
        &rollout_manifest(21, "{canary: 1}, {pause: 1h}, {percent: 100}", 1),
    )
    .await;
    let before = wait_rollout(&mut admin, "the soak", Duration::from_secs(10), |s| {
        s.step == 1
    })
    .await;
    c.restart();
    let mut admin = support::admin(&c).await;
    for id in &ids {
        spawn_agent(c.url(), id.clone(), GOOD);
    }
    let after = rollout(&mut admin, Verb::Status(RolloutStatusRequest {})).await;
    assert_eq!(after.id, before.id);
    assert_eq!((after.phase().name(), after.step), ("Progressing", 1));
    assert_eq!(
        after.step_started_at_ms, before.step_started_at_ms,
        "same soak timer"
    );
    assert_eq!(after.cohort.unwrap().agents, 1);
    rollout(&mut admin, Verb::Promote(RolloutPromote { full: true })).await;
    wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    for id in &ids {
        wait_for_agent(&mut admin, id, "on generation 2", |s| {
            s.running_generation == 2
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_agent_gets_the_right_revision_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let ids: Vec<String> = (0..4).map(|i| format!("agent-{i:02}")).collect();
    let mut tasks: Vec<_> = ids
        .iter()
        .map(|id| spawn_agent(c.url(), id.clone(), GOOD))
        .collect();
    wait_running(&mut admin, &ids, 1).await;
    // agent-03 goes away; the rollout goes on without it.
    tasks.pop().unwrap().abort();
    wait_rollout_agents_offline(&mut admin, "agent-03").await;
    apply(
        &mut admin,
        &rollout_manifest(21, "{canary: 1}, {percent: 100}", 1),
    )
    .await;
    let s = wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    assert_eq!(running(&mut admin, &ids[..3]).await, vec![2; 3]);
    assert_eq!(s.fleet_agents, 4);
    tasks.push(spawn_agent(c.url(), ids[3].clone(), GOOD));
    wait_running(&mut admin, &ids, 2).await;

    // A rollback while it is away: it comes back to the stable revision.
    tasks.pop().unwrap().abort();
    wait_rollout_agents_offline(&mut admin, "agent-03").await;
    apply(
        &mut admin,
        &rollout_manifest(22, "{canary: 1}, {pause: {}}, {percent: 100}", 1),
    )
    .await;
    wait_rollout(&mut admin, "Paused", Duration::from_secs(10), |s| {
        s.phase().name() == "Paused" && s.generation == 3
    })
    .await;
    rollout(&mut admin, Verb::Promote(RolloutPromote { full: true })).await;
    wait_running(&mut admin, &ids[..3], 3).await;
    let s = rollout(&mut admin, Verb::Undo(RolloutUndo { to_generation: 0 })).await;
    assert_eq!((s.phase().name(), s.stable_generation), ("RolledBack", 2));
    wait_running(&mut admin, &ids[..3], 2).await;
    tasks.push(spawn_agent(c.url(), ids[3].clone(), GOOD));
    wait_running(&mut admin, &ids, 2).await;
}

async fn wait_rollout_agents_offline(admin: &mut Admin, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while describe(admin, id).await.connected {
        assert!(Instant::now() < deadline, "{id} still connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn manifest_with(steps: &str, analysis_extra: &str, rollout_extra: &str) -> String {
    format!(
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: 21\n  rollout:\n    steps: [{steps}]\n    analysis: {{max_failure_rate: 0.05, min_jobs: 1, ack_deadline: 5s{analysis_extra}}}\n{rollout_extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_agent_lost_longer_than_max_lost_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let ids: Vec<String> = (0..2).map(|i| format!("agent-{i:02}")).collect();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| spawn_agent(c.url(), id.clone(), GOOD))
        .collect();
    wait_running(&mut admin, &ids, 1).await;
    let steps = "{percent: 50}, {pause: {}}, {percent: 100}";
    apply(&mut admin, &manifest_with(steps, ", max_lost: 1s", "")).await;
    wait_rollout(&mut admin, "Paused", Duration::from_secs(10), |s| {
        s.phase().name() == "Paused"
    })
    .await;
    // Both go away, so the cohort's member surely does.
    for t in tasks {
        t.abort();
    }
    let s = wait_rollout(&mut admin, "RolledBack", Duration::from_secs(10), |s| {
        s.phase().name() == "RolledBack"
    })
    .await;
    let g = s.gates.last().unwrap();
    assert_eq!(g.gate, "lost", "{s:#?}");
    assert!(g.measured.contains("disconnected for"), "{g:?}");
    assert!(s.reason.contains("gate `lost` failed"), "{}", s.reason);
    assert!(c.log_text().contains("ALERT"), "the alert is logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_offline_cohort_agents_pause_until_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let c = controller(&dir.path().join("state"));
    let mut admin = admin(&c).await;
    apply(&mut admin, &manifest(20)).await;
    let ids: Vec<String> = (0..4).map(|i| format!("agent-{i:02}")).collect();
    let mut tasks: Vec<_> = ids
        .iter()
        .map(|id| spawn_agent(c.url(), id.clone(), GOOD))
        .collect();
    wait_running(&mut admin, &ids, 1).await;
    tasks.pop().unwrap().abort();
    tasks.pop().unwrap().abort();
    wait_rollout_agents_offline(&mut admin, "agent-03").await;
    wait_rollout_agents_offline(&mut admin, "agent-02").await;
    let m = manifest_with("{percent: 100}", "", "    max_unavailable: 1\n");
    apply(&mut admin, &m).await;
    let s = wait_rollout(&mut admin, "Paused", Duration::from_secs(10), |s| {
        s.phase().name() == "Paused"
    })
    .await;
    assert!(
        s.reason
            .starts_with("too many cohort agents offline: 2 > max_unavailable 1"),
        "{}",
        s.reason
    );
    tasks.push(spawn_agent(c.url(), ids[2].clone(), GOOD));
    wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded"
    })
    .await;
    assert_eq!(running(&mut admin, &ids[..3]).await, vec![2; 3]);
    tasks.push(spawn_agent(c.url(), ids[3].clone(), GOOD));
    wait_running(&mut admin, &ids, 2).await;
}

/// Both bodies carry `needle` (the HTML one escaped).
fn carries(m: &Received, needle: &str) {
    assert!(
        m.text().contains(needle),
        "text/plain lacks {needle:?}:\n{}",
        m.text()
    );
    let escaped = needle
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    assert!(
        m.html().contains(&escaped),
        "text/html lacks {escaped:?}:\n{}",
        m.html()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_an_abort_and_an_undo_are_each_mailed_with_their_facts() {
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(dir.path(), sink.port, "200ms");
    // Every agent reports three failed jobs after each ACK of a generation above 1.
    let behaviour = |_| Behaviour {
        refuse: None,
        jobs: Some(("failed", 3)),
    };
    let (c, mut admin, ids) = fleet_with(dir.path(), 4, behaviour, Some(&config)).await;

    // A gate fails: the rollback is mailed with the gate, its numbers, the step and the action.
    let steps = "{canary: 1}, {pause: 30s}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(21, steps, 2)).await;
    let s = wait_rollout(&mut admin, "RolledBack", Duration::from_secs(10), |s| {
        s.phase().name() == "RolledBack"
    })
    .await;
    let gate = s.gates.last().unwrap().clone();
    assert_eq!(gate.gate, "failure_rate");
    let m = sink.mail_with_subject("rolled back");
    assert_eq!(
        m.subject,
        format!(
            "[h264-controller {}] rollout 1 of revision 2 rolled back to revision 1: gate \
             `failure_rate` failed",
            c.addr
        )
    );
    assert_eq!(m.rcpt_tos, ["ops@example.org"]);
    assert_eq!(m.row("Controller"), c.addr.to_string());
    assert_eq!(
        m.row("Event"),
        "rollout rolled back (gate failed) (rollout_rolled_back)"
    );
    assert_eq!(m.row("rollout"), "1");
    assert!(
        m.row("revision").starts_with("2 (studios, sha256 "),
        "{}",
        m.text()
    );
    assert_eq!(m.row("stable revision"), "1");
    assert_eq!(m.row("gate"), "failure_rate");
    assert_eq!(m.row("measured"), gate.measured, "the status's numbers");
    assert!(m.row("measured").starts_with("1.000 ("), "{}", m.text());
    assert_eq!(m.row("threshold"), "<= 0.050, at least 2 attempts");
    assert_eq!(m.row("step"), "2 of 3 (pause: 30s)");
    assert!(
        m.row("cohort").starts_with("1 agent: agent-0"),
        "{}",
        m.text()
    );
    assert!(
        m.text()
            .contains("Action taken: every agent was assigned the stable revision 1 at once"),
        "{}",
        m.text()
    );
    carries(&m, "every agent was assigned the stable revision 1 at once");
    carries(&m, "<= 0.050, at least 2 attempts");
    carries(&m, &gate.measured);
    wait_running(&mut admin, &ids, 1).await;

    // The operator aborts a rollout waiting for a human.
    let steps = "{canary: 1}, {pause: {}}, {percent: 100}";
    apply(&mut admin, &rollout_manifest(22, steps, 2)).await;
    wait_rollout(&mut admin, "Paused", Duration::from_secs(10), |s| {
        s.phase().name() == "Paused" && s.generation == 3
    })
    .await;
    let s = rollout(&mut admin, Verb::Abort(RolloutAbort {})).await;
    assert_eq!(s.phase().name(), "Aborted");
    let m = sink.mail_with_subject("aborted");
    assert!(
        m.subject
            .ends_with("rollout 2 of revision 3 aborted by the operator; back on revision 1"),
        "{}",
        m.subject
    );
    assert_eq!(
        m.row("Event"),
        "rollout aborted by the operator (rollout_aborted)"
    );
    assert_eq!(m.row("step"), "2 of 3 (pause: {})");
    carries(&m, "every agent was assigned the stable revision 1");
    wait_running(&mut admin, &ids, 1).await;

    // A rollout that succeeds (no soak), then undone.
    apply(
        &mut admin,
        &rollout_manifest(23, "{canary: 1}, {percent: 100}", 2),
    )
    .await;
    wait_rollout(&mut admin, "Succeeded", Duration::from_secs(10), |s| {
        s.phase().name() == "Succeeded" && s.generation == 4
    })
    .await;
    rollout(&mut admin, Verb::Undo(RolloutUndo { to_generation: 0 })).await;
    let m = sink.mail_with_subject("undone");
    assert!(
        m.subject.ends_with(
            "rollout 3 of revision 4 undone by the operator; every agent back on revision 1"
        ),
        "{}",
        m.subject
    );
    assert_eq!(m.row("phase before the undo"), "Succeeded");
    assert_eq!(m.row("undone to revision"), "1");
    carries(&m, "every agent was assigned the stable revision 1");
    wait_running(&mut admin, &ids, 1).await;
    let subjects: Vec<String> = sink.received().into_iter().map(|m| m.subject).collect();
    assert_eq!(subjects.len(), 3, "one message each: {subjects:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_the_mail_server_missed_waits_in_the_state_dir_and_goes_out_at_shutdown() {
    let mut sink = SmtpSink::new(None); // down
    let dir = tempfile::tempdir().unwrap();
    // The next attempt after a failure is an hour away: only the flush at shutdown sends it.
    let config = alerts_config(dir.path(), sink.port, "1h");
    let behaviour = |_| Behaviour {
        refuse: Some(2),
        jobs: None,
    };
    let (mut c, mut admin, _ids) = fleet_with(dir.path(), 3, behaviour, Some(&config)).await;
    apply(
        &mut admin,
        &rollout_manifest(21, "{canary: 1}, {percent: 100}", 1),
    )
    .await;
    wait_rollout(&mut admin, "RolledBack", Duration::from_secs(10), |s| {
        s.phase().name() == "RolledBack"
    })
    .await;
    let queue = c.state_dir.join("alerts-queue");
    let queued = h264_testkit::wait::wait_for(
        "a failed delivery attempt recorded in the queue",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let files: Vec<serde_json::Value> = std::fs::read_dir(&queue)
                .ok()?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect();
            files
                .into_iter()
                .find(|m| m["attempts"].as_u64() >= Some(1))
        },
    )
    .unwrap();
    assert_eq!(queued["kind"], "rollout_rolled_back");

    sink.start();
    assert!(sink.received().is_empty(), "held back by its backoff");
    let status = c.stop().unwrap();
    assert!(status.success(), "{status:?}\n{}", c.log_text());
    let received = sink.received();
    assert_eq!(received.len(), 1, "{received:#?}\n{}", c.log_text());
    assert!(
        received[0].subject.contains("gate `nack` failed"),
        "{}",
        received[0].subject
    );
    assert!(received[0]
        .row("measured")
        .starts_with("1 NACK(s): agent-0"));
    assert_eq!(received[0].row("threshold"), "0 NACKs");
    let left: Vec<_> = std::fs::read_dir(&queue).unwrap().collect();
    assert!(left.is_empty(), "the queue is empty: {left:?}");
}
