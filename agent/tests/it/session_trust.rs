//! Fleet trust on the agent's side, with the real agent binary against a test controller in
//! this process: mutual TLS on loopback with certificates from a fleet PKI made by
//! `h264_trust::pki` (the agent proves its identity, and refuses a controller its CA did not
//! certify), and signed revisions (with `trusted_keys`, only revisions signed by one of them
//! are applied; everything else is NACKed at the `signature` stage and the outputs keep the
//! settings they had).

use crate::common;
use crate::session_controller;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_proto::v1::Assignment;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::{never_during, wait_for};
use h264_trust::pki::{self, Subject};
use h264_trust::SecretKey;
use session_controller::{ping, revision, signed, x264_crf, TestController};

const MINUTE: Duration = Duration::from_secs(60);

/// A fleet PKI in `dir/name`: a CA, a server certificate for 127.0.0.1 and one for agent
/// `studio-1`.
fn fleet_pki(dir: &Path, name: &str) -> PathBuf {
    let pki = dir.join(name);
    pki::init(&pki, name).unwrap();
    pki::issue(&pki, &Subject::Server("127.0.0.1".into())).unwrap();
    pki::issue(&pki, &Subject::Agent("studio-1".into())).unwrap();
    pki
}

/// An installation of agent `studio-1` reporting to `endpoint`, with `[controller]` keys
/// `extra`.
fn setup(endpoint: &str, extra: &str) -> Setup {
    let sections = format!(
        "{BASE}\n[captions]\nccextractor = \"./no-such-ccextractor\"\n\n\
         [controller]\nendpoint = \"{endpoint}\"\n\
         reconnect_backoff = \"100ms\"\nreconnect_backoff_max = \"500ms\"\n{extra}"
    );
    let s = Setup::new("", &sections);
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        text.replacen("[agent]\n", "[agent]\nid = \"studio-1\"\n", 1),
    )
    .unwrap();
    s
}

/// `[controller]` TLS keys naming the files of `pki` (CA, and the agent's pair when `cert`).
fn tls_keys(ca_pki: &Path, cert_pki: Option<&Path>) -> String {
    let mut keys = format!("ca = '{}'\n", ca_pki.join("ca.crt").display());
    if let Some(p) = cert_pki {
        keys += &format!(
            "cert = '{}'\nkey = '{}'\n",
            p.join("studio-1.crt").display(),
            p.join("studio-1.key").display()
        );
    }
    keys
}

/// Waits until the agent's log mentions `text`.
fn wait_log(agent: &common::Daemon, text: &str) -> String {
    wait_for(
        &format!("`{text}` in the agent's log"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Some(agent.log()).filter(|log| log.contains(text)),
    )
    .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", agent.log()))
}

#[test]
fn over_https_the_agent_proves_its_identity_and_applies_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let pki = fleet_pki(dir.path(), "fleet");
    let controller = TestController::start_tls(&pki);
    assert!(controller.endpoint().starts_with("https://127.0.0.1:"));
    let s = setup(&controller.endpoint(), &tls_keys(&pki, Some(&pki)));
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .args(["--check", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let agent = s.spawn();
    let hello = controller.wait_hello(1, MINUTE);
    assert_eq!(hello.agent_id, "studio-1");
    assert_eq!(
        controller.log().peers,
        [Some("h264create://agent/studio-1".to_string())],
        "the session's certificate names the agent"
    );
    assert!(wait_log(&agent, "connected to the controller").contains("tls=true"));

    controller
        .assign(revision(1, "  transcode: {crf: 23}\n"))
        .ack();
    assert_eq!(ping(&s.control()).config_generation, 1);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "after.ts");
    s.wait_state("after.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("after.ts")).as_deref(), Some("23.0"));
}

#[test]
fn a_controller_the_fleet_ca_did_not_certify_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet_pki(dir.path(), "fleet");
    let stranger = fleet_pki(dir.path(), "stranger");
    let controller = TestController::start_tls(&fleet);
    // (endpoint, the agent's CA, what the log says to fix)
    let localhost = controller.endpoint().replace("127.0.0.1", "localhost");
    let cases = [
        (
            controller.endpoint(),
            &stranger,
            "not issued by the fleet CA in controller.ca",
        ),
        (localhost, &fleet, "does not name `localhost`"),
    ];
    for (endpoint, ca, advice) in cases {
        let s = setup(&endpoint, &tls_keys(ca, Some(ca)));
        let agent = s.spawn();
        let log = wait_log(&agent, advice);
        assert!(log.contains("no controller session"), "{log}");
        assert!(
            controller.log().hellos().is_empty(),
            "{endpoint}: a session was made"
        );
        // It keeps running its own configuration.
        assert_eq!(ping(&s.control()).config_generation, 0);
    }
}

#[test]
fn a_controller_that_requires_a_certificate_gets_no_session_from_an_agent_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = fleet_pki(dir.path(), "fleet");
    let controller = TestController::start_tls(&fleet);
    let s = setup(&controller.endpoint(), &tls_keys(&fleet, None));
    let agent = s.spawn();
    let log = wait_log(&agent, "no controller session");
    wait_log(
        &agent,
        "if it requires client certificates, set controller.cert",
    );
    assert!(!log.contains("connected to the controller"), "{log}");
    never_during(
        Duration::from_secs(2),
        Duration::from_millis(50),
        || controller.log().hellos().first().cloned(),
        |h| format!("a session without a client certificate: {h:?}"),
    )
    .unwrap();
}

#[test]
fn with_trusted_keys_only_revisions_they_signed_are_applied() {
    let controller = TestController::start();
    let (release, intruder) = (SecretKey::generate(), SecretKey::generate());
    let extra = format!("trusted_keys = [\"{}\"]\n", release.public());
    let s = setup(&controller.endpoint(), &extra);
    let agent = s.spawn();
    controller.wait_hello(1, MINUTE);

    let one = revision(1, "  transcode: {crf: 23}\n");
    // A man in the middle: other bytes, their SHA256 recomputed, the original signature kept.
    let mut rewritten = revision(1, "  transcode: {crf: 18}\n");
    rewritten = Assignment {
        signature: signed(one.clone(), &release).signature,
        signer_key: release.public().to_string(),
        ..rewritten
    };
    // The right bytes under another generation.
    let renumbered = Assignment {
        generation: 2,
        ..signed(one.clone(), &release)
    };
    let intruders = signed(one.clone(), &intruder);
    let cases: [(Assignment, String); 4] = [
        (one.clone(), "unsigned".into()),
        (intruders, format!("signed by {}", intruder.public())),
        (rewritten, "signature by".into()),
        (renumbered, "invalid for generation 2".into()),
    ];
    for (i, (assignment, text)) in cases.into_iter().enumerate() {
        // Copies of one revision: each needs a nonce of its own.
        let nonce = format!("refused-{i}");
        let nack = controller
            .assign(Assignment {
                nonce,
                ..assignment
            })
            .nack();
        assert_eq!(nack.stage().name(), "signature", "{nack:?}");
        assert!(nack.message.contains(&text), "{text}: {}", nack.message);
        assert_eq!(ping(&s.control()).config_generation, 0);
        assert!(!s.state.join("last-known-good.json").exists());
    }
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "refused.ts");
    s.wait_state("refused.ts", JobState::Succeeded, MINUTE);
    assert_eq!(
        x264_crf(&s.output_of("refused.ts")).as_deref(),
        Some("30.0")
    );

    // Signed by the trusted key: applied, and the signer kept with the last-known-good.
    let one = signed(one, &release);
    controller.assign(one.clone()).ack();
    assert_eq!(ping(&s.control()).config_generation, 1);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state.join("last-known-good.json")).unwrap())
            .unwrap();
    assert_eq!(saved["signer_key"], release.public().to_string().as_str());
    let log = wait_log(&agent, "configuration revision accepted");
    assert!(
        log.contains(&format!("signed_by={}", release.public())),
        "{log}"
    );

    let two = signed(revision(2, "  transcode: {crf: 25}\n"), &release);
    controller.assign(two).ack();
    assert_eq!(ping(&s.control()).config_generation, 2);
    // A rollback reassigns generation 1 with its original signature.
    let rollback = Assignment {
        rollback: true,
        nonce: "rollback-to-1".into(),
        ..one
    };
    controller.assign(rollback).ack();
    assert_eq!(ping(&s.control()).config_generation, 1);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "signed.ts");
    s.wait_state("signed.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("signed.ts")).as_deref(), Some("23.0"));
}
