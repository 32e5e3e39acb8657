//! The agent's fleet session against a test controller (a real `AgentSessions` gRPC server on
//! loopback, in this process) and the real agent binary: the hello, assignments accepted or
//! refused at each stage, generations and rollbacks, stats, job events and commands.

use crate::common;
use crate::session_controller;

use std::time::Duration;

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_proto::v1::{Assignment, PauseRequest, ResumeRequest};
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::never_during;
use session_controller::{agent_command, ping, raw_revision, revision, x264_crf, TestController};

const MINUTE: Duration = Duration::from_secs(60);

/// An installation whose agent reports to `controller` (labels, quick reconnects, a
/// CCExtractor that is not there) plus `extra` keys of `[controller]`.
fn setup(controller: &TestController, extra: &str) -> Setup {
    let sections = format!(
        "{BASE}\n[captions]\nccextractor = \"./no-such-ccextractor\"\n\n\
         [controller]\nendpoint = \"{}\"\nlabels = {{ site = \"studio-a\", canary = \"true\" }}\n\
         reconnect_backoff = \"100ms\"\nreconnect_backoff_max = \"500ms\"\n{extra}",
        controller.endpoint()
    );
    Setup::new("", &sections)
}

/// The stored last-known-good record.
fn last_known_good(s: &Setup) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(s.state.join("last-known-good.json")).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

#[test]
fn the_hello_says_who_the_agent_is_what_it_can_do_and_what_it_runs() {
    let controller = TestController::start();
    let s = setup(&controller, "");
    let _agent = s.spawn();
    let hello = controller.wait_hello(1, MINUTE);
    let ping = ping(&s.control());
    assert_eq!(hello.agent_id, ping.agent_id);
    assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
    let mut labels: Vec<_> = hello.labels.clone().into_iter().collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("canary".to_string(), "true".to_string()),
            ("site".to_string(), "studio-a".to_string())
        ]
    );
    for capability in ["encoder.libx264", "encoder.aac", "captions.ffmpeg"] {
        assert!(
            hello.capabilities.iter().any(|c| c == capability),
            "{capability} not in {:?}",
            hello.capabilities
        );
    }
    assert!(!hello
        .capabilities
        .iter()
        .any(|c| c == "captions.ccextractor"));
    // Its local file: generation 0 and the hash Ping reports.
    assert_eq!(hello.running_generation, 0);
    assert_eq!(hello.running_sha256, ping.config_sha256);
    assert_eq!(hello.highest_accepted_generation, 0);
    // Stats follow at once.
    let stats = controller.wait("stats", Duration::from_secs(10), |log| {
        log.stats().first().cloned()
    });
    assert_eq!(stats.running_generation, 0);
    assert_eq!(stats.stats.unwrap().workers, 2);
}

#[test]
fn a_valid_revision_is_acked_saved_and_shapes_the_next_output() {
    let controller = TestController::start();
    let s = setup(&controller, "stats_interval = \"1h\"\n");
    let _agent = s.spawn();
    controller.wait_hello(1, MINUTE);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "before.ts");
    s.wait_state("before.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("before.ts")).as_deref(), Some("30.0"));

    let rev = revision(1, "  transcode: {crf: 23, preset: superfast}\n");
    let ack = controller.assign(rev.clone()).ack();
    assert_eq!((ack.generation, &ack.sha256), (1, &rev.sha256));
    let saved = last_known_good(&s).expect("saved as last-known-good");
    assert_eq!(saved["generation"], 1);
    assert_eq!(saved["sha256"], rev.sha256.as_str());
    assert_eq!(
        saved["canonical"].as_str().unwrap().as_bytes(),
        rev.canonical.as_slice()
    );
    assert_eq!(ping(&s.control()).config_generation, 1);

    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "after.ts");
    s.wait_state("after.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("after.ts")).as_deref(), Some("23.0"));
    assert_eq!(x264_crf(&s.output_of("before.ts")).as_deref(), Some("30.0"));

    // Each conversion was told as it happened, with the generation it ran under, and fresh
    // stats followed it (the periodic ones are an hour apart here).
    let events = controller.wait("two conversions", Duration::from_secs(10), |log| {
        let converted: Vec<_> = log
            .events()
            .into_iter()
            .filter(|e| e.kind().name() == "converted")
            .collect();
        (converted.len() == 2).then_some(converted)
    });
    let runs: Vec<_> = events
        .iter()
        .map(|e| (e.file.rsplit('/').next().unwrap().to_string(), e.generation))
        .collect();
    assert_eq!(
        runs,
        [("before.ts".to_string(), 0), ("after.ts".to_string(), 1)]
    );
    controller.wait(
        "stats after the second conversion",
        Duration::from_secs(10),
        |log| {
            log.stats().into_iter().find(|st| {
                st.running_generation == 1
                    && st
                        .stats
                        .as_ref()
                        .and_then(|x| x.since_start)
                        .is_some_and(|c| c.converted == 2)
            })
        },
    );
}

#[test]
fn refused_revisions_change_nothing() {
    let controller = TestController::start();
    let s = setup(&controller, "");
    let agent = s.spawn();
    controller.wait_hello(1, MINUTE);
    let before = ping(&s.control());

    let mut tampered = revision(1, "  transcode: {crf: 23}\n");
    let text = String::from_utf8(tampered.canonical).unwrap();
    tampered.canonical = text.replace("23", "18").into_bytes();
    let invalid = br#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"crf":99}}}"#;
    let local_only = br#"{"apiVersion":"h264create.dev/v1","spec":{"agent":{"workers":8}}}"#;
    // (assignment, stage, field, text in the message)
    let cases: Vec<(Assignment, &str, &str, &str)> = vec![
        (tampered, "hash", "", "not parsed"),
        (
            raw_revision(1, b"transcode: {crf: 23}"),
            "parse",
            "",
            "not JSON",
        ),
        (
            raw_revision(1, invalid),
            "validation",
            "spec.transcode.crf",
            "99",
        ),
        (
            raw_revision(1, local_only),
            "validation",
            "spec.agent.workers",
            "local",
        ),
        // Valid on its own, not over this agent's file (retry_backoff_max = 2s).
        (
            revision(1, "  transcode: {retry_backoff: 5s}\n"),
            "validation",
            "transcode.retry_backoff",
            "retry_backoff_max",
        ),
        (
            revision(1, "  captions: {formats: [srt, bin]}\n"),
            "capability",
            "captions.formats",
            "CCExtractor",
        ),
        // Free-form FFmpeg arguments from the fleet are refused at apply too (security review
        // C2), and typed settings are checked as strictly as the controller checks them.
        // (Raw bytes: a controller of this version would refuse the manifest at Apply.)
        (
            raw_revision(
                1,
                br#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"extra_args":["-f:x","ffmetadata","/srv/victim"]}}}"#,
            ),
            "validation",
            "spec.transcode.extra_args[0]",
            "no longer accepted",
        ),
        (
            raw_revision(
                1,
                br#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"x264_params":"stats=/srv/victim"}}}"#,
            ),
            "validation",
            "spec.transcode.x264_params",
            "`stats`",
        ),
        (
            raw_revision(
                1,
                br#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"duration_tolerance":"1000h"}}}"#,
            ),
            "validation",
            "spec.transcode.duration_tolerance",
            "largest allowed",
        ),
    ];
    for (assignment, stage, field, text) in cases {
        let nack = controller.assign(assignment.clone()).nack();
        assert_eq!(
            (
                nack.generation,
                nack.nonce.as_str(),
                nack.stage().name(),
                nack.field.as_str()
            ),
            (1, assignment.nonce.as_str(), stage, field),
            "{nack:?}"
        );
        assert!(nack.message.contains(text), "{stage}: {}", nack.message);
        let now = ping(&s.control());
        assert_eq!(
            (now.config_generation, &now.config_sha256),
            (0, &before.config_sha256)
        );
        assert!(last_known_good(&s).is_none(), "{stage}: nothing saved");
    }
    let log = agent.log();
    assert_eq!(
        log.matches("configuration revision refused").count(),
        9,
        "{log}"
    );
    // Still converting, on the local file.
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "a.ts");
    s.wait_state("a.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("a.ts")).as_deref(), Some("30.0"));
}

#[test]
fn older_generations_need_the_rollback_mark() {
    let controller = TestController::start();
    let s = setup(&controller, "");
    let agent = s.spawn();
    controller.wait_hello(1, MINUTE);
    let five = revision(5, "  transcode: {crf: 25}\n");
    controller.assign(five.clone()).ack();

    let three = revision(3, "  transcode: {crf: 27}\n");
    let nack = controller.assign(three.clone()).nack();
    assert_eq!(nack.stage().name(), "generation");
    assert!(nack.message.contains("rollback"), "{}", nack.message);
    assert_eq!(ping(&s.control()).config_generation, 5);
    assert_eq!(last_known_good(&s).unwrap()["generation"], 5);

    let rollback = Assignment {
        rollback: true,
        nonce: "rollback-to-3".into(),
        ..three.clone()
    };
    controller.assign(rollback).ack();
    assert_eq!(ping(&s.control()).config_generation, 3);
    let saved = last_known_good(&s).unwrap();
    assert_eq!(
        (
            &saved["generation"],
            &saved["rollback"],
            &saved["highest_accepted"]
        ),
        (&3.into(), &true.into(), &5.into())
    );

    // The revision in force, sent again (a controller resyncing): ACKed, not re-applied.
    let again = Assignment {
        nonce: "resync".into(),
        ..three
    };
    controller.assign(again).ack();
    assert!(agent.log().contains("assignment already in force"));
    assert_eq!(ping(&s.control()).config_generation, 3);
}

#[test]
fn commands_pause_and_resume_and_job_events_stream_as_they_happen() {
    let controller = TestController::start();
    let s = setup(&controller, "stats_interval = \"1h\"\n");
    let _agent = s.spawn();
    controller.wait_hello(1, MINUTE);
    controller.command(agent_command::Body::Pause(PauseRequest {
        cancel_running: false,
    }));
    controller.wait("paused stats", Duration::from_secs(10), |log| {
        log.stats()
            .into_iter()
            .filter_map(|st| st.stats)
            .find(|st| st.paused && st.paused_by == "manual")
    });
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "a.ts");
    Fixture::TextAsVideo.copy_to(&s.input, "notes.ts");
    never_during(
        Duration::from_secs(2),
        Duration::from_millis(50),
        || s.record("a.ts"),
        |r| format!("a.ts started while paused by the controller: {r:?}"),
    )
    .unwrap();

    controller.command(agent_command::Body::Resume(ResumeRequest {}));
    let events = controller.wait("a conversion and a failure", MINUTE, |log| {
        let events = log.events();
        let kinds: Vec<_> = events.iter().map(|e| e.kind().name()).collect();
        (kinds.contains(&"converted") && kinds.contains(&"failed")).then_some(events)
    });
    let failed = events.iter().find(|e| e.kind().name() == "failed").unwrap();
    assert!(failed.file.ends_with("notes.ts"), "{failed:?}");
    assert_eq!(failed.stage().name(), "validate");
    assert!(!failed.message.is_empty());
    let converted = events
        .iter()
        .find(|e| e.kind().name() == "converted")
        .unwrap();
    assert!(converted.file.ends_with("a.ts"), "{converted:?}");
    assert!(converted.at_ms > 0);
    controller.wait("stats after both jobs", Duration::from_secs(10), |log| {
        log.stats()
            .into_iter()
            .filter_map(|st| st.stats)
            .find(|st| {
                !st.paused
                    && st
                        .since_start
                        .is_some_and(|c| c.converted == 1 && c.failed == 1)
            })
    });
}
