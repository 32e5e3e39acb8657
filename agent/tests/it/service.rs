//! The agent under a service manager: systemd's notification protocol received on a real
//! datagram socket made by the test (READY=1 after the start-up reconcile, WATCHDOG=1 at half
//! of WATCHDOG_USEC, STOPPING=1 at SIGTERM), the SMTP password read from
//! `$CREDENTIALS_DIRECTORY` (LoadCredential=), and `--check`'s warning for a polled share whose
//! `stable_for` is short.

use crate::common;

use std::time::Duration;

use common::Setup;
use h264_testkit::fixtures::Fixture;
use h264_testkit::notify::NotifySocket;
use h264_testkit::smtp::SmtpSink;
use h264_testkit::wait::wait_for;
use nix::sys::signal::Signal;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn ready_after_the_startup_reconcile_watchdog_at_half_the_interval_stopping_at_sigterm() {
    let mut s = Setup::basic();
    Fixture::H264Ts.copy_to(&s.input, "one.ts");
    Fixture::H264Mp4.copy_to(&s.input, "two.mp4");
    let mut socket = NotifySocket::at_path();
    s.env
        .push(("NOTIFY_SOCKET".into(), socket.address().into()));
    // WatchdogSec=400ms: a ping every 200ms.
    s.env.push(("WATCHDOG_USEC".into(), "400000".into()));
    let mut agent = s.spawn_unchecked();

    let ready = socket.wait_for("READY=1", WAIT);
    let log = agent.log();
    assert!(
        log.contains("start-up reconcile finished"),
        "READY=1 came before the start-up reconcile finished:\n{log}"
    );
    let status = ready.value("STATUS").unwrap_or_default();
    assert!(
        status.contains("start-up reconcile of 2 sources finished"),
        "{status}"
    );

    let pings: Vec<_> = socket
        .collect(Duration::from_millis(1500))
        .into_iter()
        .filter(|n| n.has("WATCHDOG=1"))
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(pings.len() >= 4, "too few pings in 1.5s: {gaps:?}");
    assert!(pings.len() <= 9, "too many pings in 1.5s: {gaps:?}");
    let mut sorted = gaps.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median >= Duration::from_millis(150) && median <= Duration::from_millis(300),
        "pings every {median:?} (median), not every 200ms: {gaps:?}"
    );

    agent.signal(Signal::SIGTERM);
    let stopping = socket.wait_for("STOPPING=1", WAIT);
    assert!(
        stopping.at > ready.at && pings.iter().all(|p| p.at < stopping.at),
        "STOPPING=1 came out of order: {:#?}",
        socket.received()
    );
    let status = agent.wait_exit(WAIT);
    assert!(status.success(), "{status}\n{}", agent.log());
}

#[test]
fn an_abstract_socket_is_notified_and_a_watchdog_for_another_process_is_not_fed() {
    let mut s = Setup::basic();
    let mut socket = NotifySocket::abstract_name();
    assert!(socket.address().starts_with('@'));
    s.env
        .push(("NOTIFY_SOCKET".into(), socket.address().into()));
    s.env.push(("WATCHDOG_USEC".into(), "200000".into()));
    // The watchdog is meant for process 1, not for this agent (as for a child that inherited
    // the variables): no pings.
    s.env.push(("WATCHDOG_PID".into(), "1".into()));
    let mut agent = s.spawn_unchecked();

    let ready = socket.wait_for("READY=1", WAIT);
    assert!(ready.value("STATUS").is_some(), "{ready:?}");
    let later = socket.collect(Duration::from_millis(800));
    assert!(
        !socket.received().iter().any(|n| n.has("WATCHDOG=1")),
        "{later:#?}"
    );
    agent.signal(Signal::SIGTERM);
    socket.wait_for("STOPPING=1", WAIT);
    assert!(agent.wait_exit(WAIT).success(), "{}", agent.log());
}

#[test]
fn without_a_notify_socket_the_agent_runs_as_before() {
    let s = Setup::basic();
    let mut agent = s.spawn();
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(WAIT).success(), "{}", agent.log());
    assert!(!agent.log().contains("cannot notify"), "{}", agent.log());
}

#[test]
fn the_smtp_password_comes_from_the_credentials_directory() {
    let password = format!("cred-{}", std::process::id());
    let sink = SmtpSink::started(Some(("alerts", &password)));
    let alerts = format!(
        "{}\n[alerts]\nretry_backoff = \"100ms\"\nretry_backoff_max = \"500ms\"\n\
         [alerts.email]\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"h264-agent@example.org\"\n\
         to = [\"ops@example.org\"]\nusername = \"alerts\"\n\
         password_credential = \"agent_smtp-password\"\ntimeout = \"5s\"\n",
        common::BASE,
        sink.port
    );
    let mut s = Setup::new("", &alerts);
    // What systemd makes of LoadCredential=agent:/etc/h264create/credentials/agent.
    let credentials = s.dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(
        credentials.join("agent_smtp-password"),
        format!("{password}\n"),
    )
    .unwrap();

    // Outside the service --check can only warn that the credential is not there.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--check")
        .arg("--config")
        .arg(&s.config)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{stderr}");
    assert!(
        stderr.contains("alerts.email.password_credential") && stderr.contains("LoadCredential"),
        "{stderr}"
    );

    s.env.push((
        "CREDENTIALS_DIRECTORY".into(),
        credentials.display().to_string(),
    ));
    let agent = s.spawn();
    let started = wait_for(
        "the agent's start-up alert at the SMTP server",
        WAIT,
        Duration::from_millis(50),
        || {
            sink.received()
                .into_iter()
                .find(|r| r.subject.contains("started"))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", agent.log(), sink.stderr()));
    assert_eq!(started.auth_login.as_deref(), Some("alerts"));
}

#[test]
fn check_warns_when_a_polled_share_has_a_short_stable_for() {
    let check = |s: &Setup| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
            .arg("--check")
            .arg("--config")
            .arg(&s.config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "a warning is not an error: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("configuration is valid"),
            "{stderr}"
        );
        stderr
    };

    let polled = Setup::new("mode = \"poll\"\n", "[readiness]\nstable_for = \"10s\"\n");
    let stderr = check(&polled);
    for part in [
        "readiness.stable_for",
        "watch[0]",
        "mode = \"poll\"",
        "still has a file open",
        "docs/windows-recorders.md",
    ] {
        assert!(stderr.contains(part), "`{part}` missing from:\n{stderr}");
    }

    let patient = Setup::new("mode = \"poll\"\n", "[readiness]\nstable_for = \"2m\"\n");
    let stderr = check(&patient);
    assert!(!stderr.contains("readiness.stable_for"), "{stderr}");

    // Local folders with events need no such patience: the open-file check sees the writer.
    let local = Setup::new("mode = \"events\"\n", "[readiness]\nstable_for = \"10s\"\n");
    let stderr = check(&local);
    assert!(!stderr.contains("readiness.stable_for"), "{stderr}");
}
