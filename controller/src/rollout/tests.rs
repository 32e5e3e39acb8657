//! The engine against a real registry and store, with a hand-driven clock and no network:
//! agents are sessions on the registry that ACK or NACK what they are pushed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use h264_proto::v1::{AgentEvent, AssignmentAck, AssignmentNack, Hello};

use super::*;
use crate::model::Revision;
use crate::registry::{Push, Registry, Target};
use crate::store::Store;

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

struct Fleet {
    _dir: tempfile::TempDir,
    registry: Arc<Registry>,
    engine: Rollouts,
    clock: Arc<ManualClock>,
    sessions: HashMap<String, u64>,
}

impl Fleet {
    /// `n` agents (`a0`, `a1`, ...) all running generation 1; revisions 1 to 3 exist.
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1000).unwrap());
        let registry = Arc::new(Registry::load(
            vec![revision(1), revision(2), revision(3)],
            vec![],
            None,
        ));
        let clock = Arc::new(ManualClock::at(1_000_000));
        let engine = Rollouts::load(registry.clone(), store, clock.clone()).unwrap();
        let mut fleet = Self {
            _dir: dir,
            registry,
            engine,
            clock,
            sessions: HashMap::new(),
        };
        for i in 0..n {
            fleet.connect(&format!("a{i}"), 0);
        }
        fleet.registry.assign(1, &Target::All, false).unwrap();
        fleet.sync(&[]);
        fleet
    }

    fn connect(&mut self, id: &str, running: u64) {
        let t = self
            .registry
            .register(
                &Hello {
                    agent_id: id.into(),
                    running_generation: running,
                    running_sha256: if running == 0 {
                        "local".into()
                    } else {
                        format!("sha{running}")
                    },
                    highest_accepted_generation: running,
                    ..Default::default()
                },
                true,
                usize::MAX,
            )
            .unwrap();
        self.sessions.insert(id.into(), t.id);
    }

    fn disconnect(&mut self, id: &str) {
        let s = self.sessions.remove(id).unwrap();
        self.registry.disconnect(id, s);
    }

    /// Every connected agent takes what it is pushed, except that the agents in `nack` refuse
    /// generation 2.
    fn sync(&self, nack: &[&str]) {
        for (id, session) in &self.sessions {
            if let Push::Send(a) = self.registry.next_push(id, *session) {
                if a.generation == 2 && nack.contains(&id.as_str()) {
                    self.registry.nack(
                        id,
                        &AssignmentNack {
                            generation: 2,
                            nonce: a.nonce,
                            stage: h264_proto::v1::NackStage::Validation.into(),
                            field: "transcode.crf".into(),
                            message: "out of range".into(),
                        },
                    );
                } else {
                    self.registry.ack(
                        id,
                        &AssignmentAck {
                            generation: a.generation,
                            nonce: a.nonce,
                            sha256: a.sha256,
                        },
                    );
                }
            }
        }
    }

    fn step(&self) {
        self.sync(&[]);
        self.engine.tick();
        self.sync(&[]);
    }

    fn running(&self, generation: u64) -> usize {
        self.registry
            .rollout_agents(generation)
            .iter()
            .filter(|a| a.running == generation)
            .count()
    }

    fn jobs(&self, id: &str, kind: &str, n: usize) {
        for _ in 0..n {
            self.registry.event(
                id,
                AgentEvent {
                    kind: h264_proto::v1::EventKind::from_name(kind).into(),
                    ..Default::default()
                },
            );
        }
    }

    fn state(&self) -> RolloutState {
        self.engine.current().unwrap()
    }
}

fn plan(steps: Vec<StepPlan>) -> Plan {
    Plan {
        steps,
        gates: GatePlan {
            max_failure_rate: 0.1,
            min_jobs: 2,
            ack_deadline_ms: 5_000,
            baseline_margin: BASELINE_MARGIN,
            max_lost_ms: 60_000,
            max_unavailable: Unavailable::Unlimited,
            shadow: Default::default(),
            shadow_workers: 1,
        },
    }
}

fn plan_with(steps: Vec<StepPlan>, max_unavailable: Unavailable) -> Plan {
    let mut p = plan(steps);
    p.gates.max_unavailable = max_unavailable;
    p
}

#[test]
fn cohorts_round_up_and_follow_the_stable_hash() {
    assert_eq!(percent_of(25, 10), 3);
    assert_eq!(percent_of(75, 10), 8);
    assert_eq!(percent_of(1, 1000), 10);
    assert_eq!(percent_of(100, 7), 7);
    assert_eq!(stable_hash("a1"), stable_hash("a1"));
    assert_ne!(stable_hash("a1"), stable_hash("a2"));
}

#[test]
fn ten_agents_go_through_canary_25_50_75_100_and_succeed() {
    use StepPlan::{Canary, Percent};
    let f = Fleet::new(10);
    let steps = vec![
        Canary(1),
        Percent(25),
        Percent(50),
        Percent(75),
        Percent(100),
    ];
    let s = f.engine.start(2, plan(steps)).unwrap();
    assert_eq!(
        (s.phase, s.step, s.cohort.len()),
        (Phase::Progressing, 0, 1)
    );
    let mut sizes = vec![s.cohort.len()];
    for _ in 0..4 {
        f.step();
        let s = f.state();
        assert_eq!(f.running(2), s.cohort.len(), "the cohort runs it");
        assert_eq!(f.running(1), 10 - s.cohort.len(), "the others stay");
        sizes.push(s.cohort.len());
    }
    f.step();
    assert_eq!(sizes, [1, 3, 5, 8, 10]);
    let s = f.state();
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(f.running(2), 10);
    assert_eq!(f.registry.fleet_target().unwrap().generation, 2);
    assert!(s.gates.iter().all(|g| g.passed && g.gate == "ack"));
}

#[test]
fn canaries_by_label_come_first_and_cohorts_only_grow() {
    let mut f = Fleet::new(6);
    f.disconnect("a4");
    let t = f
        .registry
        .register(
            &Hello {
                agent_id: "a4".into(),
                labels: [("canary".to_string(), "true".to_string())].into(),
                running_generation: 1,
                running_sha256: "sha1".into(),
                highest_accepted_generation: 1,
                ..Default::default()
            },
            true,
            usize::MAX,
        )
        .unwrap();
    f.sessions.insert("a4".into(), t.id);
    // The canary label the agent claims in its Hello is not trusted: only the operator's is.
    f.engine
        .start(2, plan(vec![StepPlan::Canary(1), StepPlan::Percent(50)]))
        .unwrap();
    assert_ne!(f.state().cohort, ["a4"]);
    f.engine.abort().unwrap();
    f.registry
        .set_labels("a4", &["canary=true".into()])
        .unwrap();
    f.engine
        .start(2, plan(vec![StepPlan::Canary(1), StepPlan::Percent(50)]))
        .unwrap();
    assert_eq!(f.state().cohort, ["a4"]);
    f.step();
    let cohort = f.state().cohort;
    assert_eq!(cohort.len(), 3);
    assert_eq!(cohort[0], "a4");
}

#[test]
fn a_nack_rolls_back_at_that_step() {
    use StepPlan::{Canary, Percent};
    let f = Fleet::new(10);
    f.engine
        .start(2, plan(vec![Canary(1), Percent(50), Percent(100)]))
        .unwrap();
    f.sync(&[]);
    f.engine.tick();
    assert_eq!(f.state().step, 1);
    // Someone in the 50% cohort (not the canary) refuses.
    let s = f.state();
    let refuser = s.cohort[2].clone();
    f.sync(&[refuser.as_str()]);
    f.engine.tick();
    f.sync(&[]);
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack);
    assert_eq!(s.step, 1);
    let g = s.gates.last().unwrap();
    assert_eq!((g.gate.as_str(), g.passed), ("nack", false));
    assert!(g.measured.contains(&refuser), "{g:?}");
    assert_eq!(f.running(1), 10, "every agent back on generation 1");
    assert_eq!(
        f.registry.fleet_target(),
        Some(crate::model::Desired {
            generation: 1,
            rollback: true
        })
    );
}

#[test]
fn a_silent_agent_fails_the_ack_gate_after_the_deadline() {
    let f = Fleet::new(3);
    f.engine
        .start(2, plan(vec![StepPlan::Percent(100)]))
        .unwrap();
    f.engine.tick();
    assert_eq!(f.state().phase, Phase::Progressing);
    f.clock.advance(Duration::from_secs(6));
    f.engine.tick();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack);
    assert!(s.reason.contains("gate `ack` failed"), "{}", s.reason);
    assert!(
        s.reason.contains("0 of 3 online agents ACKed"),
        "{}",
        s.reason
    );
}

#[test]
fn failures_during_the_soak_roll_back_with_the_numbers() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Canary(1), Pause(Some(30_000)), Percent(100)]))
        .unwrap();
    f.step();
    let canary = f.state().cohort[0].clone();
    assert_eq!(f.state().step, 1);
    f.jobs(&canary, "converted", 1);
    f.jobs(&canary, "failed", 2);
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    let g = s.gates.last().unwrap();
    assert_eq!(g.gate, "failure_rate");
    assert!(g.measured.contains("2 failed of 3 attempts"), "{g:?}");
    assert_eq!(f.running(1), 4);
}

#[test]
fn failed_attempts_that_are_retried_roll_back_during_the_soak() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Canary(1), Pause(Some(30_000)), Percent(100)]))
        .unwrap();
    f.step();
    let canary = f.state().cohort[0].clone();
    // Every attempt fails and is retried with backoff: no job has given up yet.
    f.jobs(&canary, "retrying", 2);
    f.clock.advance(Duration::from_secs(5));
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack, "within the soak: {s:?}");
    let g = s.gates.last().unwrap();
    assert_eq!(g.gate, "failure_rate");
    assert_eq!(g.measured, "1.000 (2 failed of 2 attempts)");
    assert_eq!(g.threshold, "<= 0.100, at least 2 attempts");
    assert_eq!(f.running(1), 4);
}

#[test]
fn the_baseline_counts_the_stable_agents_retried_attempts_too() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    let mut p = plan(vec![Canary(1), Pause(Some(1_000)), Percent(100)]);
    p.gates.max_failure_rate = 0.6;
    f.engine.start(2, p).unwrap();
    f.step();
    let canary = f.state().cohort[0].clone();
    let others: Vec<String> = (0..4)
        .map(|i| format!("a{i}"))
        .filter(|a| *a != canary)
        .collect();
    // The canary: half its attempts fail. The stable agents: as many, all retried ones.
    f.jobs(&canary, "converted", 5);
    f.jobs(&canary, "retrying", 5);
    f.jobs(&others[0], "converted", 5);
    f.jobs(&others[1], "retrying", 5);
    f.clock.advance(Duration::from_secs(2));
    f.step();
    let s = f.state();
    assert_ne!(s.phase, Phase::RolledBack, "{s:?}");
    let baseline = s.gates.iter().find(|g| g.gate == "baseline").unwrap();
    assert!(baseline.passed, "{baseline:?}");
    assert_eq!(baseline.measured, "0.500 vs stable 0.500");
}

#[test]
fn worse_than_the_stable_agents_rolls_back() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    let mut p = plan(vec![Canary(1), Pause(Some(1_000)), Percent(100)]);
    p.gates.max_failure_rate = 0.5;
    f.engine.start(2, p).unwrap();
    f.step();
    let canary = f.state().cohort[0].clone();
    let other = (0..4)
        .map(|i| format!("a{i}"))
        .find(|a| *a != canary)
        .unwrap();
    f.jobs(&canary, "converted", 7);
    f.jobs(&canary, "failed", 3);
    f.jobs(&other, "converted", 10);
    f.clock.advance(Duration::from_secs(2));
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    assert_eq!(s.gates.last().unwrap().gate, "baseline");
}

#[test]
fn no_traffic_pauses_inconclusive_and_promote_moves_on() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Canary(1), Pause(Some(30_000)), Percent(100)]))
        .unwrap();
    f.step();
    f.clock.advance(Duration::from_secs(10));
    f.step();
    assert_eq!(f.state().phase, Phase::Progressing, "the soak is not over");
    f.clock.advance(Duration::from_secs(21));
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::Paused);
    assert!(s.reason.starts_with("inconclusive"), "{}", s.reason);
    f.clock.advance(Duration::from_secs(600));
    f.step();
    assert_eq!(f.state().phase, Phase::Paused, "never advances on silence");
    f.engine.promote(false).unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);
    assert_eq!(f.running(2), 4);
}

#[test]
fn a_wait_for_a_human_resumes_and_operator_pause_holds() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Canary(1), Pause(None), Percent(100)]))
        .unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Paused);
    f.engine.resume().unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);

    let f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Canary(1), Percent(100)]))
        .unwrap();
    f.engine.pause().unwrap();
    f.step();
    assert_eq!((f.state().phase, f.state().step), (Phase::Paused, 0));
    f.engine.resume().unwrap();
    f.step();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);
}

#[test]
fn promote_full_abort_undo_retry_and_supersede() {
    use StepPlan::{Canary, Pause, Percent};
    let f = Fleet::new(5);
    f.engine
        .start(2, plan(vec![Canary(1), Pause(None), Percent(100)]))
        .unwrap();
    f.step();
    f.engine.promote(true).unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);
    assert_eq!(f.running(2), 5);
    // Undo after success: every agent back on 1 at once.
    let s = f.engine.undo(None).unwrap();
    assert_eq!(s.phase, Phase::RolledBack);
    f.sync(&[]);
    assert_eq!(f.running(1), 5);
    // Retry, then supersede by a newer start, then abort that.
    f.engine.retry().unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Paused);
    let old = f.state().id;
    f.engine
        .start(3, plan(vec![Canary(1), Pause(None), Percent(100)]))
        .unwrap();
    assert_eq!(f.state().generation, 3);
    assert_ne!(f.state().id, old);
    f.step();
    let s = f.engine.abort().unwrap();
    assert_eq!(s.phase, Phase::Aborted);
    f.sync(&[]);
    assert_eq!(f.running(1), 5);
    assert!(f.engine.undo(Some(9)).is_err());
}

#[test]
fn an_offline_agent_gets_the_right_revision_when_it_returns() {
    use StepPlan::{Canary, Pause, Percent};
    let mut f = Fleet::new(4);
    f.disconnect("a2");
    f.engine
        .start(2, plan(vec![Canary(1), Pause(None), Percent(100)]))
        .unwrap();
    f.step();
    f.engine.promote(false).unwrap();
    f.step();
    assert_eq!(
        f.state().phase,
        Phase::Succeeded,
        "an offline agent does not block"
    );
    f.connect("a2", 1);
    f.sync(&[]);
    assert_eq!(f.running(2), 4);

    // Rolled back while it was away: it gets the stable revision.
    let mut f = Fleet::new(4);
    f.engine
        .start(2, plan(vec![Percent(100), Pause(None)]))
        .unwrap();
    f.step();
    f.disconnect("a3");
    f.engine.abort().unwrap();
    f.sync(&[]);
    f.connect("a3", 2);
    f.sync(&[]);
    assert_eq!(f.running(1), 4);
}

#[test]
fn a_restarted_engine_resumes_at_the_same_step_with_its_soak_timer() {
    use StepPlan::{Canary, Pause, Percent};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(5_000_000));
    let registry = Arc::new(Registry::load(vec![revision(1), revision(2)], vec![], None));
    let mut sessions = vec![];
    for i in 0..4 {
        sessions.push(
            registry
                .register(
                    &Hello {
                        agent_id: format!("a{i}"),
                        running_generation: 1,
                        running_sha256: "sha1".into(),
                        highest_accepted_generation: 1,
                        ..Default::default()
                    },
                    true,
                    usize::MAX,
                )
                .unwrap(),
        );
    }
    registry.assign(1, &Target::All, false).unwrap();
    {
        let store = Arc::new(Store::open(dir.path(), 100).unwrap());
        let engine = Rollouts::load(registry.clone(), store, clock.clone()).unwrap();
        engine
            .start(2, plan(vec![Canary(1), Pause(Some(60_000)), Percent(100)]))
            .unwrap();
        let canary = engine.current().unwrap().cohort[0].clone();
        let t = &sessions[canary[1..].parse::<usize>().unwrap()];
        if let Push::Send(a) = registry.next_push(&canary, t.id) {
            registry.ack(
                &canary,
                &AssignmentAck {
                    generation: 2,
                    nonce: a.nonce,
                    sha256: a.sha256,
                },
            );
        }
        engine.tick();
        assert_eq!(engine.current().unwrap().step, 1);
        clock.advance(Duration::from_secs(40));
        engine.tick();
    }
    let store = Arc::new(Store::open(dir.path(), 100).unwrap());
    let engine = Rollouts::load(registry.clone(), store, clock.clone()).unwrap();
    let s = engine.current().unwrap();
    assert_eq!(
        (s.phase, s.step, s.cohort.len()),
        (Phase::Progressing, 1, 1)
    );
    clock.advance(Duration::from_secs(10));
    engine.tick();
    assert_eq!(
        engine.current().unwrap().phase,
        Phase::Progressing,
        "50 s of a 60 s soak"
    );
    clock.advance(Duration::from_secs(11));
    engine.tick();
    let s = engine.current().unwrap();
    assert_eq!(
        s.phase,
        Phase::Paused,
        "the soak ended (inconclusive: no jobs)"
    );
}

#[test]
fn a_cohort_agent_lost_longer_than_max_lost_rolls_back_with_the_numbers() {
    use StepPlan::{Pause, Percent};
    let mut f = Fleet::new(4);
    let s = f
        .engine
        .start(
            2,
            plan(vec![Percent(50), Pause(Some(600_000)), Percent(100)]),
        )
        .unwrap();
    let gone = s.cohort[0].clone();
    f.step();
    assert_eq!((f.state().phase, f.state().step), (Phase::Progressing, 1));
    f.disconnect(&gone);
    f.engine.tick();
    assert_eq!(f.state().offline_since.len(), 1);
    f.clock.advance(Duration::from_secs(60));
    f.engine.tick();
    assert_eq!(
        f.state().phase,
        Phase::Progressing,
        "exactly max_lost is not longer"
    );
    f.clock.advance(Duration::from_secs(1));
    f.engine.tick();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    let g = s.gates.last().unwrap();
    assert_eq!((g.gate.as_str(), g.passed), ("lost", false));
    assert!(
        g.measured
            .contains(&format!("{gone} disconnected for 1m 1s")),
        "{g:?}"
    );
    assert!(g.threshold.contains("1m"), "{g:?}");
    assert!(s.reason.contains("gate `lost` failed"), "{}", s.reason);
    f.sync(&[]);
    assert_eq!(f.running(1), 3, "every connected agent is back on stable");
    f.connect(&gone, 2);
    f.sync(&[]);
    assert_eq!(f.running(1), 4, "and the lost one when it returns");
}

#[test]
fn a_lost_agent_that_returns_within_max_lost_does_not_fail_the_gate() {
    use StepPlan::{Pause, Percent};
    let mut f = Fleet::new(4);
    let s = f
        .engine
        .start(
            2,
            plan(vec![Percent(50), Pause(Some(600_000)), Percent(100)]),
        )
        .unwrap();
    let gone = s.cohort[0].clone();
    f.step();
    f.disconnect(&gone);
    f.engine.tick();
    f.clock.advance(Duration::from_secs(50));
    f.connect(&gone, 2);
    f.engine.tick();
    assert!(f.state().offline_since.is_empty());
    f.clock.advance(Duration::from_secs(50));
    f.engine.tick();
    let s = f.state();
    assert_eq!((s.phase, s.step), (Phase::Progressing, 1), "{s:?}");
    assert!(s.gates.iter().all(|g| g.gate != "lost"));
}

#[test]
fn agents_offline_before_their_cohort_are_not_lost_and_never_block_by_default() {
    use StepPlan::{Pause, Percent};
    let mut f = Fleet::new(4);
    f.disconnect("a0");
    f.disconnect("a1");
    f.engine
        .start(2, plan(vec![Percent(100), Pause(Some(600_000))]))
        .unwrap();
    f.step();
    f.jobs("a2", "converted", 3);
    f.clock.advance(Duration::from_secs(601));
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert!(s.gates.iter().all(|g| g.passed), "{:?}", s.gates);
    assert!(s.offline_since.is_empty());
}

#[test]
fn too_many_offline_cohort_agents_pause_the_step_until_they_return() {
    use StepPlan::Percent;
    let mut f = Fleet::new(6);
    f.disconnect("a0");
    f.disconnect("a1");
    f.engine
        .start(2, plan_with(vec![Percent(100)], Unavailable::Count(1)))
        .unwrap();
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::Paused, "{s:?}");
    assert!(s.paused_for_unavailable);
    assert!(
        s.reason
            .starts_with("too many cohort agents offline: 2 > max_unavailable 1"),
        "{}",
        s.reason
    );
    let g = s.gates.last().unwrap();
    assert_eq!((g.gate.as_str(), g.passed), ("unavailable", false));
    assert_eq!(g.measured, "2 of 6 cohort agents offline");
    // Long after the ACK deadline: the wait does not fail the ACK gate.
    f.clock.advance(Duration::from_secs(30));
    f.step();
    assert_eq!(f.state().phase, Phase::Paused);
    f.connect("a0", 1);
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(f.running(2), 5, "the returned agent got the revision");
    f.connect("a1", 1);
    f.sync(&[]);
    assert_eq!(f.running(2), 6);
}

#[test]
fn promote_moves_a_step_waiting_for_offline_agents_on() {
    use StepPlan::Percent;
    let mut f = Fleet::new(6);
    f.disconnect("a0");
    f.disconnect("a1");
    f.engine
        .start(2, plan_with(vec![Percent(100)], Unavailable::Percent(20)))
        .unwrap();
    f.step();
    let s = f.state();
    assert_eq!(s.phase, Phase::Paused, "20% of 6 rounds down to 1: {s:?}");
    assert!(s.reason.contains("2 > max_unavailable 1"), "{}", s.reason);
    let s = f.engine.promote(false).unwrap();
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert!(!s.paused_for_unavailable);

    // Within the limit: the step does not wait.
    let mut f = Fleet::new(6);
    f.disconnect("a0");
    f.engine
        .start(2, plan_with(vec![Percent(100)], Unavailable::Count(1)))
        .unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);
}

#[test]
fn max_lost_and_max_unavailable_come_from_the_manifest() {
    let rollout = h264_config::fleet::Rollout::default();
    let p = Plan::from(&rollout);
    assert_eq!(p.gates.max_lost_ms, 300_000);
    assert_eq!(p.gates.max_unavailable, Unavailable::Unlimited);
    assert_eq!(Unavailable::Percent(10).limit(25), Some(2));
    // A state saved before the keys existed still loads, with the defaults.
    let mut v = serde_json::to_value(&p).unwrap();
    let gates = v["gates"].as_object_mut().unwrap();
    gates.remove("max_lost_ms");
    gates.remove("max_unavailable");
    let old: Plan = serde_json::from_value(v).unwrap();
    assert_eq!(old, p);
}

#[test]
fn a_wait_for_a_human_still_watches_for_lost_agents_but_an_operator_pause_holds() {
    use StepPlan::{Pause, Percent};
    let mut f = Fleet::new(4);
    let s = f
        .engine
        .start(2, plan(vec![Percent(50), Pause(None), Percent(100)]))
        .unwrap();
    let gone = s.cohort[0].clone();
    f.step();
    assert_eq!(f.state().phase, Phase::Paused);
    f.disconnect(&gone);
    f.engine.tick();
    f.clock.advance(Duration::from_secs(61));
    f.engine.tick();
    let s = f.state();
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    assert_eq!(s.gates.last().unwrap().gate, "lost");

    // Waiting for offline agents, then paused by the operator: nothing moves by itself.
    let mut f = Fleet::new(6);
    f.disconnect("a0");
    f.disconnect("a1");
    f.engine
        .start(2, plan_with(vec![Percent(100)], Unavailable::Count(1)))
        .unwrap();
    f.step();
    assert!(f.state().paused_for_unavailable);
    f.engine.pause().unwrap();
    f.connect("a0", 1);
    f.connect("a1", 1);
    f.step();
    assert_eq!(f.state().phase, Phase::Paused, "held by the operator");
    f.engine.resume().unwrap();
    f.step();
    assert_eq!(f.state().phase, Phase::Succeeded);
    assert_eq!(f.running(2), 6);
}

#[path = "shadow_tests.rs"]
mod shadow_tests;
