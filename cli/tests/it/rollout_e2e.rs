//! Rollouts end to end, all real: one `h264-controller` (its alerts e-mailed to a real SMTP
//! server on loopback, `h264_testkit::smtp`), `h264-agent` processes with the real FFmpeg, and
//! `fleetctl rollout`.
//!
//! - A revision whose FFmpeg arguments fail every file fails the canary's gate; every agent
//!   ends back on the stable generation and the rollback is e-mailed with the gate's numbers.
//! - Ten agents take a good revision through canary, 25 %, 50 %, 75 % and 100 % (cohorts of 1,
//!   3, 5, 8 and 10), a short soak after each growth in which the canary converts a real file;
//!   then `fleetctl rollout undo` puts every agent back on the previous revision within 2 s.

use crate::fleet_agent;
use crate::rollouts;

use std::path::Path;
use std::time::{Duration, Instant};

use fleet_agent::FleetAgent;
use h264_testkit::fixtures::Fixture;
use h264_testkit::smtp::SmtpSink;
use h264_testkit::wait::wait_for;
use rollouts::{
    apply, controller, fleetctl, json, label_canary, rollout_status, wait_agents, wait_rollout,
};

/// Starts one real agent per id (the first labelled canary, each with `extra` TOML of its
/// index), waits until all are connected, and applies the stable revision (generation 1).
fn fleet_on_generation_1(
    url: &str,
    dir: &Path,
    ids: &[&str],
    extra: impl Fn(usize) -> String,
) -> Vec<FleetAgent> {
    let agents: Vec<FleetAgent> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| FleetAgent::start_with(id, url, i == 0, &[], &extra(i)))
        .collect();
    wait_agents(url, ids, "connected agents", |a| a["connected"] == true);
    label_canary(url, ids[0]);
    apply(url, dir, "  transcode: {crf: 23}\n");
    wait_agents(url, ids, "every agent on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    agents
}

const IDS: [&str; 3] = ["e2e-a", "e2e-b", "e2e-c"];

#[test]
fn a_revision_that_fails_every_file_is_stopped_on_the_canary_and_rolled_back() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path(), &sink);
    let url = c.url();
    // The stable revision.
    let agents = fleet_on_generation_1(&url, dir.path(), &IDS, |_| String::new());

    // The bad one, rolled out: the labelled canary gets it first.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 23, max_attempts: 1, pix_fmt: no_such_pix_fmt}\n  rollout:\n    steps: [{canary: 1}, {pause: 60s}, {percent: 100}]\n    analysis: {max_failure_rate: 0.05, min_jobs: 1, ack_deadline: 20s}\n",
    );
    wait_for(
        "the canary to run generation 2 (the soak)",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let s = json(&fleetctl(&url, &["rollout", "status", "-o", "json"]));
            (s["step"] == 1 && s["cohort"]["synced"] == 1).then_some(())
        },
    )
    .unwrap();
    Fixture::H264Ts.copy_to(&agents[0].input, "bad.ts");

    let out = fleetctl(&url, &["rollout", "status", "--watch", "--timeout", "60s"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{err}\n{}",
        agents[0].log()
    );
    assert!(err.contains("RolledBack"), "{err}");
    assert!(text.contains("failure_rate"), "{text}");
    assert!(text.contains("1 failed of 1 attempts"), "{text}");
    assert!(text.contains("FAILED"), "{text}");

    wait_agents(&url, &IDS, "every agent back on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let s = json(&fleetctl(&url, &["rollout", "status", "-o", "json"]));
    assert_eq!(s["phase"], "RolledBack");
    assert_eq!(s["stable_generation"], 1);
    assert!(c.log_text().contains("ALERT"), "the alert is logged");

    // And e-mailed, with the gate and its numbers.
    let m = sink.mail_with_subject("rolled back");
    assert!(
        m.subject.ends_with(
            "rollout 1 of revision 2 rolled back to revision 1: gate `failure_rate` failed"
        ),
        "{}",
        m.subject
    );
    assert_eq!(m.row("gate"), "failure_rate");
    assert_eq!(m.row("measured"), "1.000 (1 failed of 1 attempts)");
    assert_eq!(m.row("threshold"), "<= 0.050, at least 1 attempts");
    assert_eq!(m.row("step"), "2 of 3 (pause: 1m)");
    assert_eq!(m.row("cohort"), "1 agent: e2e-a");
    assert!(
        m.text()
            .contains("Action taken: every agent was assigned the stable revision 1 at once"),
        "{}",
        m.text()
    );
    assert!(
        m.html().contains("&lt;= 0.050, at least 1 attempts"),
        "{}",
        m.html()
    );
}

#[test]
fn a_revision_under_which_every_attempt_fails_and_is_retried_rolls_back_within_its_soak() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path(), &sink);
    let url = c.url();
    let ids = ["retry-a", "retry-b"];
    let agents = fleet_on_generation_1(&url, dir.path(), &ids, |_| String::new());

    // Every attempt fails (a pixel format FFmpeg does not know) and is retried with a long
    // backoff: within the soak no job gives up, only failed attempts are reported.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 23, max_attempts: 5, retry_backoff: 5m, retry_backoff_max: 5m, \
         pix_fmt: no_such_pix_fmt}\n  rollout:\n    steps: [{canary: 1}, \
         {pause: 2m}, {percent: 100}]\n    analysis: {max_failure_rate: 0.05, min_jobs: 1, \
         ack_deadline: 20s}\n",
    );
    wait_rollout(&url, "the canary's soak", Duration::from_secs(30), |s| {
        s["step"] == 1 && s["cohort"]["synced"] == 1
    });
    let soak_began = Instant::now();
    Fixture::H264Ts.copy_to(&agents[0].input, "first.ts");
    Fixture::H264Ts.copy_to(&agents[0].input, "second.ts");
    let s = wait_rollout(&url, "the rollout to end", Duration::from_secs(100), |s| {
        s["phase"] != "Progressing"
    });
    assert_eq!(s["phase"], "RolledBack", "{s:#}\n{}", agents[0].log());
    assert!(
        soak_began.elapsed() < Duration::from_secs(120),
        "rolled back within the soak"
    );
    let gate = s["gates"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(gate["gate"], "failure_rate", "{s:#}");
    let measured = gate["measured"].as_str().unwrap();
    assert!(measured.starts_with("1.000 ("), "{measured}");
    assert!(measured.ends_with(" attempts)"), "{measured}");
    wait_agents(&url, &ids, "every agent back on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    // The canary's attempts were failures it meant to retry, not jobs that gave up.
    let errors = json(&fleetctl(
        &url,
        &["agent", "errors", "retry-a", "-o", "json"],
    ));
    let kinds: Vec<&str> = errors
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    assert!(kinds.contains(&"retrying"), "{errors:#}");
    assert!(!kinds.contains(&"failed"), "{errors:#}");
    assert_eq!(
        sink.mail_with_subject("rolled back").row("gate"),
        "failure_rate"
    );
}

/// The ten agents' ids; the first is the labelled canary.
fn ten_ids() -> Vec<String> {
    (0..10).map(|i| format!("ten-{i:02}")).collect()
}

#[test]
fn ten_agents_take_a_good_revision_step_by_step_and_undo_puts_them_back_within_two_seconds() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let begun = Instant::now();
    Fixture::H264Ts.path(); // made now, not during a soak
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path(), &sink);
    let url = c.url();
    let ids = ten_ids();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let agents: Vec<FleetAgent> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| FleetAgent::start(id, &url, i == 0, &[]))
        .collect();
    wait_agents(&url, &id_refs, "ten connected agents", |a| {
        a["connected"] == true
    });
    label_canary(&url, id_refs[0]);
    apply(&url, dir.path(), "  transcode: {crf: 23}\n");
    wait_agents(&url, &id_refs, "every agent on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let ready = begun.elapsed();

    // The good revision, with a 3-second soak after each growth of the cohort.
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 24}\n  rollout:\n    steps: [{canary: 1}, {pause: 3s}, {percent: 25}, \
         {pause: 3s}, {percent: 50}, {pause: 3s}, {percent: 75}, {pause: 3s}, {percent: 100}]\n    \
         analysis: {max_failure_rate: 0.05, min_jobs: 1, ack_deadline: 20s}\n",
    );
    // A soak passes only on jobs run under the new revision since the cohort last grew: the
    // canary, a member of every cohort, converts one real file in each.
    for (n, soak) in [1, 3, 5, 7].into_iter().enumerate() {
        wait_rollout(
            &url,
            &format!("the soak of step {soak}"),
            Duration::from_secs(30),
            |s| s["step"] == soak && s["phase"] == "Progressing",
        );
        Fixture::H264Ts.copy_to(&agents[0].input, &format!("good-{n}.ts"));
    }
    let s = wait_rollout(&url, "Succeeded", Duration::from_secs(30), |s| {
        s["phase"] != "Progressing"
    });
    assert_eq!(s["phase"], "Succeeded", "{s:#}\n{}", agents[0].log());
    let gates: Vec<(String, String)> = s["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["passed"], true, "{g}");
            (
                g["gate"].as_str().unwrap().to_owned(),
                g["measured"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let acks: Vec<&str> = gates
        .iter()
        .filter(|(g, _)| g == "ack")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(
        acks,
        [
            "1 of 1 online agents ACKed",
            "3 of 3 online agents ACKed",
            "5 of 5 online agents ACKed",
            "8 of 8 online agents ACKed",
            "10 of 10 online agents ACKed"
        ],
        "cohorts of 1, 3, 5, 8 and 10: {s:#}"
    );
    let soaks: Vec<&str> = gates
        .iter()
        .filter(|(g, _)| g == "failure_rate")
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(soaks.len(), 4, "a soak after each growth: {s:#}");
    for measured in soaks {
        assert!(measured.starts_with("0.000 (0 failed of "), "{s:#}");
    }
    assert_eq!(s["cohort"]["agents"], 10);
    assert_eq!(s["cohort"]["synced"], 10);
    wait_agents(&url, &id_refs, "every agent on generation 2", |a| {
        a["sync"] == "synced" && a["running_generation"] == 2
    });
    let converted = std::fs::read_dir(agents[0].dir.path().join("h264"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("good-") && name.ends_with(".mp4")
        })
        .count();
    assert_eq!(converted, 4, "the canary converted the four files");
    let rolled_out = begun.elapsed();

    // Undo: from the command to the last agent reporting the previous generation.
    let undo = Instant::now();
    let out = fleetctl(&url, &["rollout", "undo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = wait_for(
        "every agent on generation 1 again",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            let all = json(&fleetctl(&url, &["get", "agents", "-o", "json"]));
            let all = all.as_array().cloned().unwrap_or_default();
            let on_one = all
                .iter()
                .filter(|a| a["running_generation"] == 1 && a["connected"] == true)
                .count();
            (on_one == ids.len()).then(|| undo.elapsed())
        },
    )
    .unwrap();
    assert!(
        back < Duration::from_secs(2),
        "undo took {back:?} (the issue asks for under 2 s)"
    );
    let s = rollout_status(&url);
    assert_eq!(
        (s["phase"].as_str(), s["stable_generation"].as_u64()),
        (Some("RolledBack"), Some(1))
    );
    let m = sink.mail_with_subject("undone by the operator");
    assert_eq!(m.row("phase before the undo"), "Succeeded");
    assert_eq!(m.row("undone to revision"), "1");
    eprintln!(
        "timings: ten agents ready on generation 1 after {ready:?}; rollout Succeeded after \
         {rolled_out:?}; undo: every agent back on generation 1 {back:?} after the command"
    );
}

/// An agent config table naming a CCExtractor program in the agent's folder (a stand-in
/// script: the capability check only needs the program to exist; no file is converted).
fn with_ccextractor(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let program = dir.join("ccextractor");
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("[captions]\nccextractor = '{}'\n", program.display())
}

#[test]
fn a_revision_some_real_agents_nack_rolls_back_at_the_step_where_it_happens() {
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let c = controller(dir.path(), &sink);
    let url = c.url();
    // The canary has CCExtractor; the two others do not, so they refuse a revision that asks
    // for it (capability NACK), as a real host without the program does.
    let tools = tempfile::tempdir().unwrap();
    let ids = ["nack-a", "nack-b", "nack-c"];
    let agents = fleet_on_generation_1(&url, dir.path(), &ids, |i| {
        if i == 0 {
            with_ccextractor(tools.path())
        } else {
            String::new()
        }
    });

    apply(
        &url,
        dir.path(),
        "  captions: {tool: ccextractor}\n  rollout:\n    steps: [{canary: 1}, {percent: 50}, {percent: 100}]\n    analysis: {ack_deadline: 20s}\n",
    );
    let out = fleetctl(&url, &["rollout", "status", "--watch", "--timeout", "60s"]);
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{err}\n{}",
        agents[1].log()
    );
    assert!(err.contains("RolledBack"), "{err}");
    let s = rollout_status(&url);
    assert_eq!(s["phase"], "RolledBack", "{s:#}");
    // The canary step passed (its agent ACKed); the NACK came at the 50 % step.
    assert_eq!(s["step"], 1, "rolled back at the percent step: {s:#}");
    assert!(
        text.contains("nack"),
        "the status names the NACK gate: {text}"
    );
    assert!(
        text.contains("not installed"),
        "the status carries the agent's reason: {text}"
    );
    wait_agents(&url, &ids, "every agent back on generation 1", |a| {
        a["sync"] == "synced" && a["running_generation"] == 1
    });
    let m = sink.mail_with_subject("rolled back");
    assert!(m.subject.contains("nack"), "{}", m.subject);
}

#[test]
fn silence_pauses_a_restarted_controller_resumes_and_an_offline_agent_catches_up() {
    let sink = SmtpSink::started(None);
    let dir = tempfile::tempdir().unwrap();
    let mut c = controller(dir.path(), &sink);
    let url = c.url();
    let ids = ["soak-a", "soak-b", "soak-c"];
    let mut agents = fleet_on_generation_1(&url, dir.path(), &ids, |_| String::new());

    // soak-c goes offline before the rollout reaches it.
    agents[2].kill();
    wait_agents(&url, &ids[2..], "soak-c offline", |a| {
        a["connected"] == false
    });
    apply(
        &url,
        dir.path(),
        "  transcode: {crf: 24}\n  rollout:\n    steps: [{canary: 1}, {pause: 2s}, {percent: 100}, {pause: 60s}]\n    analysis: {max_failure_rate: 0.05, min_jobs: 1, ack_deadline: 20s}\n",
    );

    // No file converted during the canary's soak: inconclusive, the rollout waits for a human.
    let s = wait_rollout(
        &url,
        "an inconclusive pause",
        Duration::from_secs(30),
        |s| s["phase"] == "Paused",
    );
    assert_eq!(s["step"], 1, "{s:#}");
    assert!(
        s["reason"].as_str().unwrap_or("").contains("inconclusive"),
        "{s:#}"
    );
    assert_eq!(s["generation"], 2);
    let out = fleetctl(&url, &["rollout", "promote"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 100 %: the two online agents take generation 2; soak-c, offline, does not block the step.
    let s = wait_rollout(&url, "the final soak", Duration::from_secs(30), |s| {
        s["step"] == 3 && s["phase"] == "Progressing"
    });
    wait_agents(&url, &ids[..2], "the online agents on generation 2", |a| {
        a["sync"] == "synced" && a["running_generation"] == 2
    });

    // The controller restarts mid-soak: the rollout goes on at the same step.
    c.restart();
    let after = wait_rollout(
        &url,
        "the rollout after a restart",
        Duration::from_secs(30),
        |s| s["generation"] == 2 && s["phase"].is_string(),
    );
    assert_eq!(
        after["step"], s["step"],
        "same step after the restart: {after:#}"
    );
    assert_eq!(after["phase"], "Progressing", "{after:#}");

    // soak-c comes back and gets the revision the rollout reached.
    agents[2].start_again();
    wait_agents(&url, &ids, "every agent on generation 2", |a| {
        a["sync"] == "synced" && a["running_generation"] == 2
    });
    let out = fleetctl(&url, &["rollout", "promote", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_rollout(&url, "Succeeded", Duration::from_secs(30), |s| {
        s["phase"] == "Succeeded"
    });
    assert_eq!(s["generation"], 2, "{s:#}");
}
