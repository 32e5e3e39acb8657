//! Shadow steps end to end, all real: one `h264-controller` (its alerts e-mailed to a real SMTP
//! server on loopback), two `h264-agent` processes converting captioned recordings with the
//! real FFmpeg, and `fleetctl`. One fleet goes through two rollouts, each opening with a
//! shadow step:
//!
//! 1. a candidate with `crf = 51`, shadowed by the whole fleet (`percent: 100`), fails
//!    `min_ssim` and is rolled back (e-mail, audit) before any agent ran it; meanwhile every
//!    production output was published as before, nothing else appeared in an output folder,
//!    the source of the agent with `on_success = "delete"` was deleted by production only
//!    (shadow work read its own link), the other agent's source is still there, and the
//!    shadow areas are empty again;
//! 2. a candidate with a slightly different CRF passes and the rollout goes on to its canary;
//! 3. that rollout aborted, a candidate that drops the MP4's captions (`captions: {embed:
//!    false}`, a typed setting) fails `captions: identical` before any agent ran it.
//!
//! The agents export their traces to an OTLP collector stand-in: each `shadow` span is the root
//! of a trace of its own, linked to the production job whose recording it converted.

use crate::fleet_agent;
use crate::rollouts;

use std::path::Path;
use std::time::Duration;

use fleet_agent::FleetAgent;
use h264_testkit::captions::captioned_h264_ts;
use h264_testkit::otlp::Collector;
use h264_testkit::smtp::SmtpSink;
use h264_testkit::wait::wait_for;
use rollouts::{apply, controller, fleetctl, json, label_canary, wait_agents};
use serde_json::Value;

const IDS: [&str; 2] = ["shadow-a", "shadow-b"];

/// Disk thresholds far below what any test machine has free: the disk guard stops shadow work
/// at `warn`, which must not happen here.
const SMALL_DISK: &str = "[disk]\nwarn = \"2MB\"\ncritical = \"1MB\"\nhysteresis = \"0\"\n";

/// Names in a folder, sorted (none when it does not exist), without the agent's private work
/// folder (`.h264create-work`, where temporaries are written before they are published).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".h264create-work")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until `agent` logs that it shadows (so the next recording is shadowed).
fn wait_shadowing(agent: &FleetAgent, times: usize) {
    wait_for(
        "shadow work to start",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (agent.log().matches("shadow work starts").count() >= times).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
}

/// Waits (at most `within`) until the rollout's status satisfies `check`; on a timeout the
/// agents' logs are in the panic.
fn wait_for_rollout(
    url: &str,
    agents: &[FleetAgent],
    what: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, within, Duration::from_millis(100), || {
        let s = rollouts::rollout_status(url);
        check(&s).then_some(s)
    })
    .unwrap_or_else(|e| {
        let logs: Vec<String> = agents.iter().map(FleetAgent::log).collect();
        panic!(
            "{e}; last: {:#}\n{}",
            rollouts::rollout_status(url),
            logs.join("\n-----\n")
        )
    })
}

fn ended(s: &Value) -> bool {
    s["phase"] != "Progressing" && s["phase"] != "Pending"
}

fn last_gate(s: &Value) -> Value {
    s["gates"]
        .as_array()
        .and_then(|g| g.last())
        .cloned()
        .unwrap_or(Value::Null)
}

/// No agent ever accepted `generation` for real.
fn never_ran(agents: &[FleetAgent], generation: u64) {
    for a in agents {
        let log = a.log();
        let accepted = log
            .lines()
            .filter(|l| l.contains("configuration revision accepted"))
            .any(|l| l.contains(&format!("generation={generation} ")));
        assert!(!accepted, "generation {generation} was applied:\n{log}");
    }
}

#[test]
fn shadow_steps_judge_candidates_on_real_recordings_before_any_agent_runs_them() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path(), &sink);
    let url = c.url();
    let collector = Collector::start();
    let otlp = collector.endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str())];
    let agents = vec![
        FleetAgent::start_watching(
            IDS[0],
            &url,
            true,
            &env,
            SMALL_DISK,
            "on_success = \"delete\"",
        ),
        FleetAgent::start_with(IDS[1], &url, false, &env, SMALL_DISK),
    ];
    wait_agents(&url, &IDS, "connected agents", |a| a["connected"] == true);
    label_canary(&url, IDS[0]);
    apply(&url, dir.path(), "  transcode: {crf: 23}\n");
    wait_agents(&url, &IDS, "every agent on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let outputs: Vec<_> = agents.iter().map(|a| a.dir.path().join("h264")).collect();
    let work: Vec<_> = agents
        .iter()
        .map(|a| a.dir.path().join("state").join("shadow").join("work"))
        .collect();

    // 1. crf 51, shadowed by every agent.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 51}\n  rollout:\n    steps: [{shadow: 10m, percent: 100}, {canary: 1}, {percent: 100}]\n    \
         analysis: {ack_deadline: 20s, shadow: {min_files: 1, min_ssim: 0.9}}\n",
    );
    for a in &agents {
        wait_shadowing(a, 1);
    }
    // The deleting agent's recording first, so that its comparison is the one judged.
    let mut sources = vec![captioned_h264_ts(&agents[0].input, "news-0.ts").path];
    wait_for(
        "the first production output",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || (names(&outputs[0]) == ["news-0.mp4"]).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agents[0].log()));
    sources.push(captioned_h264_ts(&agents[1].input, "news-1.ts").path);
    let s = wait_for_rollout(
        &url,
        &agents,
        "the crf 51 candidate to be judged",
        Duration::from_secs(120),
        ended,
    );
    assert_eq!(s["phase"], "RolledBack", "{s:#}\n{}", agents[0].log());
    let gate = last_gate(&s);
    assert_eq!(
        (gate["gate"].as_str(), gate["passed"].as_bool()),
        (Some("shadow.min_ssim"), Some(false)),
        "{s:#}"
    );
    assert!(
        s["reason"].as_str().unwrap().contains("shadow.min_ssim"),
        "{s:#}"
    );
    assert_eq!(
        s["cohort"]["agents"], 0,
        "nobody was given the candidate: {s:#}"
    );
    assert!(
        s["shadow"]["worst"][0]["candidate_ssim"].as_f64().unwrap() < 0.9,
        "{s:#}"
    );

    // Production went on as before: its outputs, under their names, nothing else.
    for (i, out) in outputs.iter().enumerate() {
        wait_for(
            "production's output",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || (names(out) == [format!("news-{i}.mp4")]).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", names(out), agents[i].log()));
    }
    wait_for(
        "the deleted source",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || (!sources[0].exists()).then_some(()),
    )
    .unwrap();
    assert!(sources[1].exists(), "shadow work never deletes a source");
    for w in &work {
        wait_for(
            "empty shadow areas",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || names(w).is_empty().then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", names(w)));
    }
    // Both agents compared their recording (the deleting agent from its own link).
    let report = json(&fleetctl(&url, &["rollout", "shadow-report", "-o", "json"]));
    let records = report["records"].as_array().cloned().unwrap_or_default();
    let r = records
        .iter()
        .find(|r| r["agent"] == IDS[0])
        .unwrap_or_else(|| panic!("no comparison of {}: {report:#}", IDS[0]));
    assert_eq!(
        r["file"].as_str().map(|f| f.ends_with("news-0.ts")),
        Some(true),
        "{report:#}"
    );
    assert_eq!(r["candidate_ok"], true, "{report:#}");
    assert!(r["production_ssim"].as_f64().unwrap() > 0.9, "{report:#}");
    assert_eq!(r["production_cues"], 3, "{report:#}");
    // Both encodes' CPU times, production's from its own FFmpeg, the candidate's from the
    // idle-class one: the speed gate's measure.
    for key in ["production_cpu_secs", "candidate_cpu_secs", "cpu_ratio"] {
        assert!(r[key].as_f64().unwrap() > 0.0, "{key}: {report:#}");
    }
    let csv = fleetctl(&url, &["rollout", "shadow-report", "-o", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("rollout,generation,agent,"), "{csv}");
    assert!(csv.contains("news-"), "{csv}");
    let table =
        String::from_utf8_lossy(&fleetctl(&url, &["rollout", "status"]).stdout).into_owned();
    assert!(table.contains("worst recordings:"), "{table}");
    assert!(table.contains("shadow.min_ssim"), "{table}");
    never_ran(&agents, 2);
    wait_agents(&url, &IDS, "the fleet on generation 1", |a| {
        a["running_generation"] == 1
    });
    assert_eq!(
        sink.mail_with_subject("rolled back").row("gate"),
        "shadow.min_ssim"
    );
    let audit =
        String::from_utf8_lossy(&fleetctl(&url, &["audit", "-o", "json"]).stdout).into_owned();
    assert!(audit.contains("rollout.rolledback"), "{audit}");

    // 2. A slightly different CRF passes and goes on to its canary.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 24}\n  rollout:\n    steps: [{shadow: 40s}, {canary: 1}, {pause: 1h}, {percent: 100}]\n    \
         analysis: {ack_deadline: 20s, shadow: {min_files: 1, min_ssim: 0.9}}\n",
    );
    wait_shadowing(&agents[0], 2);
    captioned_h264_ts(&agents[0].input, "evening-news.ts");
    let s = wait_for_rollout(
        &url,
        &agents,
        "the canary step",
        Duration::from_secs(120),
        |s| s["step"].as_u64() >= Some(2) || ended(s),
    );
    assert_eq!(s["phase"], "Progressing", "{s:#}\n{}", agents[0].log());
    assert_eq!(s["cohort"]["agents"], 1, "{s:#}");
    let shadow_gates: Vec<&Value> = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gate"].as_str().unwrap_or("").starts_with("shadow."))
        .collect();
    assert!(shadow_gates.len() >= 5, "{s:#}");
    assert!(shadow_gates.iter().all(|g| g["passed"] == true), "{s:#}");
    wait_agents(&url, &IDS[..1], "the canary on generation 3", |a| {
        a["running_generation"] == 3
    });

    // The shadow span of the first recording: a trace of its own, linked to the production
    // job that converted the recording.
    shadow_span_follows_the_job(&collector, "news-0.ts");

    // 3. A candidate that drops the MP4's captions fails `captions: identical`.
    let out = fleetctl(&url, &["rollout", "abort"]);
    assert!(out.status.success(), "{out:?}");
    wait_agents(&url, &IDS, "the fleet back on generation 1", |a| {
        a["running_generation"] == 1
    });
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 23}\n  captions: {embed: false}\n  rollout:\n    steps: [{shadow: 10m}, {canary: 1}, {percent: 100}]\n    \
         analysis: {ack_deadline: 20s, shadow: {min_files: 1, min_ssim: 0.9}}\n",
    );
    wait_shadowing(&agents[0], 3);
    captioned_h264_ts(&agents[0].input, "late-news.ts");
    let s = wait_for_rollout(
        &url,
        &agents,
        "the candidate without captions to be judged",
        Duration::from_secs(120),
        |s| s["generation"] == 4 && ended(s),
    );
    assert_eq!(s["phase"], "RolledBack", "{s:#}");
    let gate = last_gate(&s);
    assert_eq!(
        (gate["gate"].as_str(), gate["passed"].as_bool()),
        (Some("shadow.captions"), Some(false)),
        "{s:#}"
    );
    let measured = gate["measured"].as_str().unwrap_or_default();
    assert!(measured.contains("late-news.ts"), "{s:#}");
    assert!(
        measured.contains("3 cue(s) in production's MP4, 0 in the candidate's"),
        "{s:#}"
    );
    never_ran(&agents, 4);
    assert_eq!(
        names(&outputs[0]),
        ["evening-news.mp4", "late-news.mp4", "news-0.mp4"],
        "production published as before, and only production"
    );
}

/// The `shadow` span of the recording `name`: the root of its own trace, linked to a span of
/// the production job's trace (the `job` span of `name`).
fn shadow_span_follows_the_job(collector: &Collector, name: &str) {
    let (job, shadow) = wait_for(
        "the job and shadow spans",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let spans = collector.spans();
            let named = |span: &str, key: &str| {
                spans
                    .iter()
                    .find(|s| {
                        s.name == span && s.attributes.get(key).is_some_and(|f| f.ends_with(name))
                    })
                    .cloned()
            };
            Some((named("job", "source.name")?, named("shadow", "file")?))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:#?}", collector.spans()));
    assert_eq!(shadow.parent_span_id, "", "a root: {shadow:#?}");
    assert_ne!(shadow.trace_id, job.trace_id, "{shadow:#?}");
    assert!(
        shadow.links.iter().any(|(trace, _)| *trace == job.trace_id),
        "linked to the job's trace {}: {shadow:#?}",
        job.trace_id
    );
    assert_eq!(shadow.attributes["candidate_ok"], "true", "{shadow:#?}");
}
