//! A real SMTP server on loopback for tests of alert e-mail: Python's `aiosmtpd`, run as a child
//! process, parses every message it accepts (with Python's `email` package) and writes it as
//! one JSON file, which [`SmtpSink::received`] reads back as [`Received`]. No mock transport:
//! what a test checks is what an SMTP server received. Plain, STARTTLS or implicit TLS, with or
//! without AUTH.
//!
//! The server needs `python3` with `aiosmtpd` (`scripts/ensure-deps.sh` installs it); without
//! it [`SmtpSink::new`] fails the test and says how to install it, it never skips.
//!
//! ```no_run
//! use std::time::Duration;
//! use h264_testkit::smtp::SmtpSink;
//!
//! let sink = SmtpSink::started(None);
//! // ... configure `[alerts.email] smtp = sink.url()`, make something send an alert ...
//! let mail = sink
//!     .wait_for_mail("the alert", Duration::from_secs(20), |m| m.subject.contains("rolled back"))
//!     .unwrap();
//! assert!(mail.text().contains("failure_rate"));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::wait::wait_for;

/// The SMTP server: aiosmtpd on HOST PORT; each accepted message is parsed with Python's
/// `email` package and written to OUT as JSON (temporary name, then rename). With SINK_USER and
/// SINK_PASSWORD set it requires AUTH (PLAIN/LOGIN) with them (over plain text too). With
/// SINK_TLS = starttls or tls it requires STARTTLS, or speaks TLS from the first byte, with the
/// certificate and key in SINK_CERT and SINK_KEY.
const SINK_PY: &str = r#"
import asyncio, email, email.policy, json, os, ssl, sys, time
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

host, port, out, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
user, password = os.environ.get("SINK_USER"), os.environ.get("SINK_PASSWORD")
tls = os.environ.get("SINK_TLS")
context = None
if tls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["SINK_CERT"], os.environ["SINK_KEY"])

class Sink:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            if not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        auth = session.auth_data if session.authenticated else None
        ssl_object = server.transport.get_extra_info("ssl_object")
        record = {
            "tls": ssl_object.version() if ssl_object else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
            "auth_login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
        }
        Sink.count += 1
        name = "%020d-%d-%d" % (time.time_ns(), os.getpid(), Sink.count)
        tmp = os.path.join(out, "." + name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(out, name + ".json"))
        return "250 Message accepted for delivery"

def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

async def main():
    loop = asyncio.get_running_loop()
    handler = Sink()
    def smtp():
        kwargs = {"hostname": "sink.test", "loop": loop}
        if user:
            kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=False)
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        return SMTP(handler, **kwargs)
    wrapped = context if tls == "tls" else None
    server = await loop.create_server(smtp, host, port, ssl=wrapped, reuse_port=True)
    open(ready, "w").close()
    await server.serve_forever()

asyncio.run(main())
"#;

/// One message as the server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// The `Subject` header, decoded.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
    /// The top-level content type, e.g. `multipart/alternative`.
    pub content_type: String,
    /// Every leaf part's decoded content by its content type (`text/plain`, `text/html`).
    pub parts: BTreeMap<String, String>,
    /// The user name the client authenticated as, if any.
    pub auth_login: Option<String>,
    /// The TLS version the message came over, if any.
    pub tls: Option<String>,
}

impl Received {
    /// The `text/plain` part ("" when there is none).
    pub fn text(&self) -> &str {
        self.parts.get("text/plain").map_or("", |s| s.as_str())
    }

    /// The `text/html` part ("" when there is none).
    pub fn html(&self) -> &str {
        self.parts.get("text/html").map_or("", |s| s.as_str())
    }

    /// The value of the `name:` row of the plain-text body; panics naming the row when the body
    /// has none.
    pub fn row(&self, name: &str) -> &str {
        let prefix = format!("{name}:");
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name:?} row in:\n{}", self.text()))
    }
}

/// Fails the test, precisely, when the SMTP server cannot run here.
pub fn require_aiosmtpd() {
    let help = "the alert tests run Python's aiosmtpd as their SMTP server: run \
                scripts/ensure-deps.sh, or install it with `python3 -m pip install --user \
                aiosmtpd` (Debian/Ubuntu: `apt-get install python3-aiosmtpd`)";
    let out = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {help}"));
    assert!(
        out.status.success(),
        "python3 cannot import aiosmtpd ({}); {help}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
    );
}

/// A loopback SMTP server on a port of its own, started and stopped at will; killed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1), chosen before it first starts.
    pub port: u16,
    /// The port, held between runs (the server binds it with `SO_REUSEPORT`): refused while
    /// the server is stopped, and nobody else's.
    _held: crate::port::HeldPort,
    auth: Option<(String, String)>,
    /// `starttls` or `tls`, the certificate (PEM) and its key (PEM).
    tls: Option<(&'static str, PathBuf, PathBuf)>,
    child: Option<Child>,
}

impl SmtpSink {
    /// Holds a free port; the server is not running yet. With `auth` (user, password) it
    /// requires SMTP AUTH with them.
    pub fn new(auth: Option<(&str, &str)>) -> SmtpSink {
        require_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sink.py"), SINK_PY).unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let held = crate::port::HeldPort::new();
        let port = held.port();
        let auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        SmtpSink {
            dir,
            port,
            _held: held,
            auth,
            tls: None,
            child: None,
        }
    }

    /// [`SmtpSink::new`], started.
    pub fn started(auth: Option<(&str, &str)>) -> SmtpSink {
        let mut sink = SmtpSink::new(auth);
        sink.start();
        sink
    }

    /// Requires STARTTLS (`mode = "starttls"`) or speaks TLS from the first byte (`"tls"`),
    /// with this certificate and key (PEM files); from the next [`SmtpSink::start`].
    pub fn set_tls(&mut self, mode: &'static str, cert: PathBuf, key: PathBuf) {
        self.tls = Some((mode, cert, key));
    }

    /// `smtp://127.0.0.1:PORT`, for `[alerts.email] smtp`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the SMTP sink is already running");
        let ready = self.dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let stderr = std::fs::File::create(self.dir.path().join("sink.stderr")).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(self.dir.path().join("sink.py"))
            .arg("127.0.0.1")
            .arg(self.port.to_string())
            .arg(self.mail_dir())
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some((user, password)) = &self.auth {
            cmd.env("SINK_USER", user).env("SINK_PASSWORD", password);
        }
        if let Some((mode, cert, key)) = &self.tls {
            cmd.env("SINK_TLS", mode)
                .env("SINK_CERT", cert)
                .env("SINK_KEY", key);
        }
        let mut child = cmd.spawn().expect("spawn python3 with the SMTP sink");
        let started = wait_for(
            "the SMTP sink to listen",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || {
                if ready.exists() {
                    return Some(Ok(()));
                }
                child.try_wait().unwrap().map(Err)
            },
        );
        match started {
            Ok(Ok(())) => self.child = Some(child),
            Ok(Err(status)) => panic!(
                "the SMTP sink exited ({status}) on port {}: {}",
                self.port,
                self.stderr()
            ),
            Err(timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{timeout}: {}", self.stderr());
            }
        }
    }

    /// Stops the server (SIGKILL): the port refuses connections until the next start.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server wrote on stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.stderr")).unwrap_or_default()
    }

    /// The folder of the received messages (one JSON file each).
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let read = |p: &PathBuf| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        names.iter().map(read).collect()
    }

    /// Waits (polling, at most `timeout`) for a received message that `matches`, and returns
    /// it; the error names `what` and the subjects that did arrive.
    pub fn wait_for_mail(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Received) -> bool,
    ) -> Result<Received, String> {
        wait_for(what, timeout, Duration::from_millis(50), || {
            self.received().into_iter().find(|m| matches(m))
        })
        .map_err(|e| {
            let subjects: Vec<String> = self.received().into_iter().map(|m| m.subject).collect();
            format!(
                "{e}; received: {subjects:?}; server stderr: {}",
                self.stderr()
            )
        })
    }

    /// The first message whose subject contains `subject`, waiting at most 20 s; panics with
    /// the subjects that did arrive.
    pub fn mail_with_subject(&self, subject: &str) -> Received {
        self.wait_for_mail(subject, Duration::from_secs(20), |m| {
            m.subject.contains(subject)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
