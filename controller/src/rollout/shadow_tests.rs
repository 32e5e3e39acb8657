//! Shadow steps in the engine: the agents that shadow get the candidate as a shadow
//! assignment while nobody runs it, their comparisons gate the step, and the target follows
//! the state.

use h264_config::fleet::CaptionsGate;
use h264_proto::v1::ShadowComparison;

use super::*;

fn shadow_plan(ms: u64, percent: Option<u8>) -> Plan {
    let mut p = plan(vec![
        StepPlan::Shadow { ms, percent },
        StepPlan::Canary(2),
        StepPlan::Percent(100),
    ]);
    p.gates.shadow.min_files = 2;
    p.gates.shadow.min_ssim = 0.9;
    p
}

fn good(rollout: u64, file: &str) -> ShadowComparison {
    ShadowComparison {
        rollout,
        candidate_generation: 2,
        production_generation: 1,
        file: file.into(),
        candidate_ok: true,
        production_bytes: 1000,
        candidate_bytes: 1050,
        production_encode_secs: 1.0,
        candidate_encode_secs: 1.1,
        production_ssim: 0.98,
        candidate_ssim: 0.97,
        production_cues: 3,
        candidate_cues: 3,
        cues_identical: true,
        ..Default::default()
    }
}

impl Fleet {
    /// The shadow assignments each connected agent is sent now: (agent, candidate generation
    /// or 0 for "stop").
    fn shadow_pushes(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .sessions
            .iter()
            .filter_map(|(id, session)| {
                self.registry
                    .next_shadow_push(id, *session)
                    .map(|a| (id.clone(), a.candidate.map_or(0, |c| c.generation)))
            })
            .collect();
        out.sort();
        out
    }
}

#[test]
fn the_canary_cohort_shadows_the_candidate_and_passing_comparisons_go_on_to_the_canary() {
    let f = Fleet::new(5);
    let s = f.engine.start(2, shadow_plan(60_000, None)).unwrap();
    assert_eq!((s.phase, s.step), (Phase::Progressing, 0));
    assert!(
        s.cohort.is_empty(),
        "nobody runs the candidate in a shadow step"
    );
    assert_eq!(
        s.shadow_cohort.len(),
        2,
        "the canary step's two agents shadow"
    );
    let pushes = f.shadow_pushes();
    assert_eq!(
        pushes,
        s.shadow_cohort
            .iter()
            .map(|a| (a.clone(), 2))
            .collect::<Vec<_>>()
    );
    assert!(f.shadow_pushes().is_empty(), "sent once per session");
    f.step();
    assert_eq!(f.running(2), 0, "{:?}", f.state());

    // Comparisons from outside the cohort, or of another rollout, are not counted.
    let outsider = (0..5)
        .map(|i| format!("a{i}"))
        .find(|a| !s.shadow_cohort.contains(a))
        .unwrap();
    f.registry.shadow_comparison(&outsider, good(s.id, "x.ts"));
    f.registry
        .shadow_comparison(&s.shadow_cohort[0], good(s.id + 7, "y.ts"));
    for (i, agent) in s.shadow_cohort.iter().enumerate() {
        f.registry
            .shadow_comparison(agent, good(s.id, &format!("rec{i}.ts")));
    }
    f.step();
    let now = f.state();
    assert_eq!(now.shadow.len(), 2, "{:?}", now.shadow);
    assert_eq!(now.step, 0, "the step lasts its time");

    f.clock.advance(Duration::from_secs(61));
    f.step();
    let now = f.state();
    assert_eq!(now.step, 1, "{now:?}");
    assert_eq!(now.cohort.len(), 2, "the canary runs it now");
    let gates: Vec<&str> = now.gates.iter().map(|g| g.gate.as_str()).collect();
    for gate in [
        "shadow.min_files",
        "shadow.max_failures",
        "shadow.min_ssim",
        "shadow.max_size_ratio",
        "shadow.captions",
        "shadow.max_speed_ratio",
    ] {
        assert!(gates.contains(&gate), "{gate} in {gates:?}");
    }
    assert!(now.gates.iter().all(|g| g.passed), "{:?}", now.gates);
    // Shadow work stops when the step ends.
    let stops = f.shadow_pushes();
    assert_eq!(stops.len(), 2, "{stops:?}");
    assert!(stops.iter().all(|(_, g)| *g == 0), "{stops:?}");
    assert!(f.registry.shadow_target().is_none());
}

#[test]
fn a_failing_shadow_gate_rolls_back_before_any_agent_runs_the_candidate() {
    let cases: Vec<(&str, ShadowComparison, CaptionsGate)> = vec![
        (
            "shadow.min_ssim",
            ShadowComparison {
                candidate_ssim: 0.61,
                ..good(1, "crf51.ts")
            },
            CaptionsGate::Identical,
        ),
        (
            "shadow.captions",
            ShadowComparison {
                candidate_cues: 0,
                cues_identical: false,
                caption_difference: "CC1: no cue in the candidate".into(),
                ..good(1, "nocc.ts")
            },
            CaptionsGate::Identical,
        ),
        (
            "shadow.max_failures",
            ShadowComparison {
                candidate_ok: false,
                candidate_error: "FFmpeg failed".into(),
                ..good(1, "broken.ts")
            },
            CaptionsGate::Ignore,
        ),
    ];
    for (gate, comparison, captions) in cases {
        let f = Fleet::new(4);
        let mut p = shadow_plan(3_600_000, None);
        p.gates.shadow.captions = captions;
        let s = f.engine.start(2, p).unwrap();
        f.step();
        f.registry
            .shadow_comparison(&s.shadow_cohort[0], comparison);
        f.step();
        let now = f.state();
        assert_eq!(now.phase, Phase::RolledBack, "{gate}: {now:?}");
        let failed = now.gates.last().unwrap();
        assert_eq!((failed.gate.as_str(), failed.passed), (gate, false));
        assert!(now.reason.contains(gate), "{}", now.reason);
        assert_eq!(f.running(2), 0, "{gate}: nobody ever ran the candidate");
        assert!(f.registry.shadow_target().is_none(), "{gate}");
    }
}

#[test]
fn too_few_recordings_pause_and_promote_goes_on() {
    let f = Fleet::new(4);
    let s = f.engine.start(2, shadow_plan(10_000, Some(50))).unwrap();
    assert_eq!(s.shadow_cohort.len(), 2, "50 % of 4");
    f.registry
        .shadow_comparison(&s.shadow_cohort[0], good(s.id, "one.ts"));
    f.clock.advance(Duration::from_secs(11));
    f.step();
    let now = f.state();
    assert_eq!(now.phase, Phase::Paused, "{now:?}");
    assert!(now.reason.contains("inconclusive"), "{}", now.reason);
    assert!(
        f.registry.shadow_target().is_some(),
        "shadowing goes on while it waits for a human"
    );
    let now = f.engine.promote(false).unwrap();
    assert_eq!((now.phase, now.step), (Phase::Progressing, 1), "{now:?}");
    assert_eq!(now.cohort.len(), 2, "the canary step runs it");
    assert!(f.registry.shadow_target().is_none());
}

#[test]
fn the_speed_ratio_is_judged_at_the_end_over_all_recordings() {
    let f = Fleet::new(3);
    let mut p = shadow_plan(10_000, None);
    p.gates.shadow.max_speed_ratio = 1.5;
    let s = f.engine.start(2, p).unwrap();
    let agent = &s.shadow_cohort[0];
    for (i, secs) in [4.0, 0.5].into_iter().enumerate() {
        let c = ShadowComparison {
            candidate_encode_secs: secs,
            ..good(s.id, &format!("r{i}.ts"))
        };
        f.registry.shadow_comparison(agent, c);
    }
    f.step();
    assert_eq!(f.state().phase, Phase::Progressing, "not before the end");
    f.clock.advance(Duration::from_secs(11));
    f.step();
    let now = f.state();
    assert_eq!(now.phase, Phase::RolledBack, "{now:?}");
    assert_eq!(now.gates.last().unwrap().gate, "shadow.max_speed_ratio");
}

#[test]
fn a_restarted_engine_keeps_shadowing_and_keeps_the_comparisons() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::store::Store::open(dir.path(), 1000).unwrap());
    let f = Fleet::new(3);
    let engine = Rollouts::load(f.registry.clone(), store.clone(), f.clock.clone()).unwrap();
    let s = engine.start(2, shadow_plan(60_000, None)).unwrap();
    f.registry
        .shadow_comparison(&s.shadow_cohort[0], good(s.id, "kept.ts"));
    engine.tick();
    // A hostile agent's numbers JSON cannot hold never make the saved state unreadable.
    let hostile = ShadowComparison {
        production_psnr: f64::NAN,
        candidate_psnr: f64::INFINITY,
        sidecar_formats: "x".repeat(1 << 20),
        ..good(s.id, "nan.ts")
    };
    f.registry.shadow_comparison(&s.shadow_cohort[0], hostile);
    engine.tick();
    drop(engine);
    f.registry.set_shadow_target(None);
    let again = Rollouts::load(f.registry.clone(), store, f.clock.clone()).unwrap();
    let kept = again.current().unwrap().shadow;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        (kept[1].production_psnr, kept[1].candidate_psnr),
        (0.0, 0.0)
    );
    assert!(
        kept[1].sidecar_formats.len() <= 64,
        "a text field is bounded"
    );
    assert_eq!(
        f.registry.shadow_target().map(|t| t.generation),
        Some(2),
        "the shadow target is restored"
    );
}
