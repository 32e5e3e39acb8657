//! Alert e-mail end to end against a real SMTP server on loopback: Python's `aiosmtpd`, run by
//! the test as a child process ([`h264_testkit::smtp`]), parses every message it accepts and
//! writes it as one JSON file. No mock transport: what is checked is what an SMTP server
//! received.
//!
//! These tests need `python3` with `aiosmtpd` (`scripts/ensure-deps.sh` installs it); without
//! it they fail and say so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use h264_agent::alerts::{Alert, AlertKind, Alerter, Origin};
use h264_config::agent::{Alerts, Email};
use h264_config::HumanDuration;
use h264_testkit::smtp::{Received, SmtpSink};
use h264_testkit::wait::{wait_for, wait_for_async};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `[alerts]` with e-mail to the sink's port, fast retries.
fn config(port: u16, queue_limit: usize, dedup_window: Duration) -> Alerts {
    Alerts {
        email: Some(Email {
            smtp: format!("smtp://127.0.0.1:{port}"),
            starttls: false,
            from: "h264-agent@example.org".into(),
            to: vec!["ops@example.org".into(), "oncall@example.org".into()],
            timeout: HumanDuration::from_secs(5),
            ..Email::default()
        }),
        dedup_window: HumanDuration(dedup_window),
        queue_limit,
        retry_backoff: HumanDuration::from_millis(50),
        retry_backoff_max: HumanDuration::from_millis(300),
    }
}

fn failed(file: &str) -> Alert {
    Alert {
        kind: AlertKind::FileFailed,
        subject: format!("{file} failed in transcode"),
        facts: vec![
            ("file".into(), format!("/rec/{file}")),
            ("stage".into(), "transcode".into()),
            (
                "error".into(),
                "ffmpeg exited with 1:\n<moov atom> not found & gave up".into(),
            ),
        ],
        action: "moved the source to quarantine".into(),
        dedup_key: format!("failed:{file}"),
    }
}

/// The queue's message files (parsed), oldest first.
fn queue_files(state: &Path) -> Vec<serde_json::Value> {
    let dir = state.join("alerts-queue");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    // A file delivered (removed) between the listing and the read is skipped.
    let read = |p: &PathBuf| {
        std::fs::read(p)
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap())
    };
    paths.iter().filter_map(read).collect()
}

/// Polls `check` until it returns `Some` ([`wait_for_async`]), failing after `timeout` with
/// what was awaited.
async fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    wait_for_async(what, timeout, Duration::from_millis(20), || {
        std::future::ready(check())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `check` for the whole of `period`, failing as soon as it returns an error.
async fn throughout(period: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        if let Err(e) = check() {
            panic!("{e}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn start(cfg: &Alerts, state: &Path) -> (Arc<Alerter>, CancellationToken) {
    let shutdown = CancellationToken::new();
    let alerter = Alerter::start(cfg, &Origin::agent("ingest-7"), state, shutdown.clone()).unwrap();
    (alerter, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_with_a_text_and_an_html_body_carrying_every_fact() {
    let sink = SmtpSink::started(None);
    let state = tempfile::tempdir().unwrap();
    let (alerter, _shutdown) = start(&config(sink.port, 10, Duration::ZERO), state.path());

    alerter.send(failed("news.ts"));
    let got = eventually("the message at the server", WAIT, || sink.received().pop()).await;

    assert_eq!(
        got.subject,
        "[h264-agent ingest-7] news.ts failed in transcode"
    );
    assert_eq!(got.mail_from, "h264-agent@example.org");
    assert_eq!(got.rcpt_tos, ["ops@example.org", "oncall@example.org"]);
    assert_eq!(got.content_type, "multipart/alternative");
    assert!(
        got.message_id.contains(".h264-agent@"),
        "{}",
        got.message_id
    );
    let (text, html) = (got.text(), got.html());
    for needle in [
        "ingest-7",
        "file failed",
        "news.ts failed in transcode",
        "/rec/news.ts",
        "transcode",
        "<moov atom> not found & gave up",
        "moved the source to quarantine",
    ] {
        assert!(
            text.contains(needle),
            "text/plain lacks {needle:?}:\n{text}"
        );
    }
    for needle in [
        "ingest-7",
        "/rec/news.ts",
        "&lt;moov atom&gt; not found &amp; gave up",
        "moved the source to quarantine",
    ] {
        assert!(html.contains(needle), "text/html lacks {needle:?}:\n{html}");
    }
    assert!(!html.contains("<moov atom>"), "unescaped HTML:\n{html}");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let host_line = |l: &str| l.starts_with("Host:") && l.trim_end().ends_with(&host);
    assert!(text.lines().any(host_line), "the host {host} in:\n{text}");
    let year = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    assert!(text.contains(&year[..4]), "the time in:\n{text}");

    eventually("an empty queue", WAIT, || {
        (alerter.queue_depth() == 0 && queue_files(state.path()).is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_messages_wait_on_disk_across_a_restart_and_arrive_exactly_once() {
    let mut sink = SmtpSink::new(None); // not running: the server is down
    let state = tempfile::tempdir().unwrap();
    let cfg = config(sink.port, 10, Duration::from_secs(600));
    let (alerter, shutdown) = start(&cfg, state.path());

    let files = ["a.ts", "b.ts", "c.ts"];
    for file in files {
        alerter.send(failed(file));
    }
    // Written ahead: on disk before any delivery attempt.
    assert_eq!(alerter.queue_depth(), 3);
    assert_eq!(queue_files(state.path()).len(), 3);
    eventually("a failed attempt recorded in a queue file", WAIT, || {
        let files = queue_files(state.path());
        files
            .iter()
            .find(|m| m["attempts"].as_u64() >= Some(1))
            .cloned()
    })
    .await;

    // Shutdown with the server still down: the last pass fails, everything stays queued.
    shutdown.cancel();
    alerter.flush(Duration::from_secs(5)).await;
    assert_eq!(alerter.queue_depth(), 3);
    drop(alerter);
    let queue_dir = state.path().join("alerts-queue");
    std::fs::write(queue_dir.join("0000000000000000-0000000000.json"), "{ torn").unwrap();

    // A restart on the same state directory, then the server comes back.
    let (alerter, _shutdown) = start(&cfg, state.path());
    assert_eq!(alerter.queue_depth(), 3, "the queue is loaded from disk");
    assert!(
        queue_dir
            .join("0000000000000000-0000000000.json.damaged")
            .exists(),
        "a damaged file is moved aside"
    );
    sink.start();
    eventually("every queued message at the server", WAIT, || {
        (sink.received().len() >= 3 && alerter.queue_depth() == 0).then_some(())
    })
    .await;
    assert!(
        queue_files(state.path()).is_empty(),
        "delivered files are removed"
    );

    // Exactly once: no second copy turns up while the agent keeps running.
    throughout(Duration::from_secs(1), || {
        let received = sink.received();
        let mut subjects: Vec<String> = received.iter().map(|r| r.subject.clone()).collect();
        subjects.sort();
        let expected: Vec<String> = files
            .iter()
            .map(|f| format!("[h264-agent ingest-7] {f} failed in transcode"))
            .collect();
        (subjects == expected)
            .then_some(())
            .ok_or(format!("expected {expected:?} once each, got {subjects:?}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_is_mailed_once_per_window_and_the_held_back_count_comes_next() {
    let sink = SmtpSink::started(None);
    let state = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(1);
    let (alerter, _shutdown) = start(&config(sink.port, 10, window), state.path());
    let disk = |free: &str| Alert {
        kind: AlertKind::DiskWarn,
        subject: "/data is low on space".into(),
        facts: vec![("free".into(), free.into())],
        action: "none yet; intake pauses at the critical threshold".into(),
        dedup_key: "disk-warn:/data".into(),
    };

    let first_sent = Instant::now();
    alerter.send(disk("9%"));
    alerter.send(disk("8%"));
    alerter.send(disk("7%"));
    assert!(alerter.queue_depth() <= 1, "the repeats are not queued");
    alerter.send(failed("other.ts")); // another key is not held back
    eventually("two messages at the server", WAIT, || {
        (sink.received().len() == 2).then_some(())
    })
    .await;

    // Past the window, the next alert for the key goes out and says what was held back.
    tokio::time::sleep_until(first_sent + window + Duration::from_millis(50)).await;
    alerter.send(disk("6%"));
    let third = eventually("the third message", WAIT, || {
        sink.received().get(2).cloned()
    })
    .await;
    assert!(third.text().contains("6%"), "{}", third.text());
    assert!(
        third
            .text()
            .contains("2 more alert(s) like this one were held back"),
        "{}",
        third.text()
    );
    assert!(third.html().contains("2 more alert(s)"), "{}", third.html());
    let received = sink.received();
    let disk_messages: Vec<&Received> = received
        .iter()
        .filter(|r| r.subject.contains("/data is low"))
        .collect();
    assert_eq!(disk_messages.len(), 2, "one per window: {received:#?}");
    assert!(disk_messages[0].text().contains("9%"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_replaces_the_oldest_by_a_summary_and_delivers_it_all() {
    let mut sink = SmtpSink::new(None); // down
    let state = tempfile::tempdir().unwrap();
    let (alerter, _shutdown) = start(&config(sink.port, 3, Duration::ZERO), state.path());

    for n in 1..=6 {
        alerter.send(failed(&format!("rec{n}.ts")));
    }
    let files = queue_files(state.path());
    assert_eq!(files.len(), 3, "{files:#?}");
    assert_eq!(alerter.queue_depth(), 3);
    let summary = &files[0];
    assert_eq!(summary["kind"], "queue_summary", "{files:#?}");
    let summary_text = summary["text"].as_str().unwrap();
    for n in 1..=4 {
        let subject = format!("rec{n}.ts failed in transcode");
        assert!(
            summary_text.contains(&subject),
            "{subject} in {summary_text}"
        );
    }
    assert!(files[1]["subject"].as_str().unwrap().contains("rec5.ts"));
    assert!(files[2]["subject"].as_str().unwrap().contains("rec6.ts"));

    sink.start();
    let received = eventually("the summary and the two newest messages", WAIT, || {
        let r = sink.received();
        (r.len() >= 3 && alerter.queue_depth() == 0).then_some(r)
    })
    .await;
    assert_eq!(received.len(), 3, "{received:#?}");
    let summary = received
        .iter()
        .find(|r| r.subject.contains("replaced by this summary"))
        .unwrap_or_else(|| panic!("no summary in {received:#?}"));
    assert!(
        summary.subject.contains("4 alert message(s)"),
        "{}",
        summary.subject
    );
    for n in 1..=4 {
        let subject = format!("[h264-agent ingest-7] rec{n}.ts failed in transcode");
        assert!(summary.text().contains(&subject), "{}", summary.text());
        assert!(summary.html().contains(&subject), "{}", summary.html());
    }
    for n in 5..=6 {
        assert!(
            received
                .iter()
                .any(|r| r.subject.contains(&format!("rec{n}.ts"))),
            "rec{n} in {received:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_uses_the_password_from_the_environment_read_at_send_time() {
    let variable = "H264_AGENT_TEST_ALERTS_SMTP_PASSWORD";
    let password = format!("s3cret-{}", std::process::id());
    let sink = SmtpSink::started(Some(("alerts", &password)));
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(sink.port, 10, Duration::ZERO);
    let email = cfg.email.as_mut().unwrap();
    email.username = Some("alerts".into());
    email.password_env = Some(variable.into());
    // Only this test reads or writes this variable.
    std::env::set_var(variable, "wrong");
    let (alerter, _shutdown) = start(&cfg, state.path());

    alerter.send(failed("auth.ts"));
    let refused = eventually("the server to refuse the wrong password", WAIT, || {
        let files = queue_files(state.path());
        let error = files.first()?["last_error"].as_str()?.to_owned();
        error.contains("535").then_some(error)
    })
    .await;
    assert!(sink.received().is_empty(), "{refused}");

    // The password is read at every delivery pass: fixing the variable is enough.
    std::env::set_var(variable, &password);
    let got = eventually("the message at the server", WAIT, || sink.received().pop()).await;
    assert_eq!(got.auth_login.as_deref(), Some("alerts"));
    assert!(got.subject.contains("auth.ts"));
    eventually("an empty queue", WAIT, || {
        (alerter.queue_depth() == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_at_shutdown_sends_what_waits_without_waiting_for_its_backoff() {
    let mut sink = SmtpSink::new(None); // down
    let state = tempfile::tempdir().unwrap();
    let mut cfg = config(sink.port, 10, Duration::ZERO);
    cfg.retry_backoff = HumanDuration::from_secs(3600);
    cfg.retry_backoff_max = HumanDuration::from_secs(3600);
    let (alerter, shutdown) = start(&cfg, state.path());

    alerter.send(stopped());
    eventually("a failed attempt", WAIT, || {
        let files = queue_files(state.path());
        (files.first()?["attempts"].as_u64()? >= 1).then_some(())
    })
    .await;
    sink.start(); // back, but the next attempt is an hour away

    shutdown.cancel();
    alerter.flush(Duration::from_secs(10)).await;
    assert_eq!(alerter.queue_depth(), 0);
    let received = sink.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(received[0].subject.contains("agent stopping"));
}

fn stopped() -> Alert {
    Alert {
        kind: AlertKind::AgentStopped,
        subject: "agent stopping (SIGTERM)".into(),
        facts: vec![("jobs cancelled".into(), "0".into())],
        action: "stopped intake and drained jobs".into(),
        dedup_key: "agent-stopped".into(),
    }
}

/// A test CA and a server certificate it signed, for 127.0.0.1 and localhost, as PEM files.
struct TestPki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestPki {
    fn new(dir: &Path) -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "h264create test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).unwrap();
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.other_ca, other.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_verify_the_server_certificate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(pki_dir.path());
    let variable = "H264_AGENT_TEST_ALERTS_TLS_PASSWORD";
    std::env::set_var(variable, "tls-s3cret");
    for (mode, scheme, starttls) in [("starttls", "smtp", true), ("tls", "smtps", false)] {
        let mut sink = SmtpSink::new(Some(("alerts", "tls-s3cret")));
        sink.set_tls(mode, pki.cert.clone(), pki.key.clone());
        sink.start();
        let state = tempfile::tempdir().unwrap();
        let mut cfg = config(sink.port, 10, Duration::ZERO);
        let email = cfg.email.as_mut().unwrap();
        email.smtp = format!("{scheme}://127.0.0.1:{}", sink.port);
        email.starttls = starttls;
        email.username = Some("alerts".into());
        email.password_env = Some(variable.into());

        // Trusting another CA only (rustls reads the roots from SSL_CERT_FILE, when set, at
        // every delivery pass): the certificate is refused and nothing is sent.
        // Only this test sets SSL_CERT_FILE; no other test here builds a TLS connection.
        std::env::set_var("SSL_CERT_FILE", &pki.other_ca);
        let (alerter, _shutdown) = start(&cfg, state.path());
        alerter.send(failed(&format!("{mode}.ts")));
        let refused = eventually(&format!("{mode}: the certificate refused"), WAIT, || {
            let files = queue_files(state.path());
            let error = files.first()?["last_error"].as_str()?.to_owned();
            error.contains("invalid peer certificate").then_some(error)
        })
        .await;
        assert!(sink.received().is_empty(), "{mode}: sent despite {refused}");

        // Trusting the server's CA: delivered over TLS, authenticated.
        std::env::set_var("SSL_CERT_FILE", &pki.ca);
        let got = eventually(&format!("{mode}: the message"), WAIT, || {
            sink.received().pop()
        })
        .await;
        assert!(
            got.tls.as_deref().is_some_and(|v| v.starts_with("TLS")),
            "{mode}: {got:?}"
        );
        assert_eq!(got.auth_login.as_deref(), Some("alerts"), "{mode}");
        assert!(got.subject.contains(&format!("{mode}.ts")));
    }
}

/// The real agent binary: a file that fails for good is e-mailed; with the server down the alert
/// waits on disk; the agent is restarted; the server comes back; every queued message arrives
/// exactly once and the queue empties.
#[test]
fn the_agent_mails_a_failed_file_and_its_queue_survives_a_restart() {
    #[path = "common/mod.rs"]
    mod common;
    let mut sink = SmtpSink::new(None);
    let s = common::Setup::new(
        "",
        &format!(
            "{}\n[alerts]\nretry_backoff = \"200ms\"\nretry_backoff_max = \"500ms\"\n\
             [alerts.email]\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"agent@example.org\"\n\
             to = [\"ops@example.org\"]\ntimeout = \"2s\"\n",
            common::BASE,
            sink.port
        ),
    );
    // Server down: the alerts of this run (started, failed, stopped) wait on disk.
    h264_testkit::fixtures::Fixture::TextAsVideo.copy_to(&s.input, "broken.ts");
    assert_eq!(s.run_once().status.code(), Some(1));
    let queued = queue_files(&s.state);
    assert!(queued.len() >= 2, "queued: {queued:?}");
    // The server comes back; the agent is started again and delivers the queue.
    sink.start();
    let mut agent = s.spawn();
    let mail = wait_for(
        "the queued alerts",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let got = sink.received();
            (got.iter().any(|m| m.subject.contains("broken.ts"))
                && queue_files(&s.state).is_empty())
            .then_some(got)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    let failed: Vec<_> = mail
        .iter()
        .filter(|m| m.subject.contains("broken.ts"))
        .collect();
    assert_eq!(failed.len(), 1, "exactly once");
    assert!(failed[0].text().contains("validate") && failed[0].html().contains("broken.ts"));
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
    let ids: Vec<String> = sink.received().into_iter().map(|m| m.message_id).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no message twice");
}
