//! The controller's file (`controller.toml`), read with the agent file's machinery: strict
//! deserialization (every unknown key with a "did you mean", every type error), the rules, and
//! a line for each problem, all at once. Its `[alerts]` and `[alerts.email]` are the agent's
//! sections (same keys, defaults and rules), its `[telemetry]` a subset of the agent's with the
//! same OTLP endpoint rule.
//!
//! What the file says is only part of the controller's configuration: the command line can
//! override `listen`, `state_dir` and the TLS files, so the checks that need both (the state
//! folder given at all, TLS complete, plaintext only on loopback) are the controller's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Table;

use crate::agent::{Alerts, Email, OtlpProtocol};
use crate::fields::field_names;
use crate::keypath::{under_any, Seg};
use crate::limits::check_size;
use crate::load::{syntax_problem, ConfigError};
use crate::problem::Problem;
use crate::strict;
use crate::toml_spans::key_lines;
use crate::units::HumanDuration;
use crate::validate::telemetry::otlp_endpoint;
use crate::validate::{normalize_program, validate_alerts, Checks};

/// `controller.toml` as written; a key not written is `None` (or the section's defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ControllerFile {
    /// The gRPC listener, `127.0.0.1:7443`.
    pub listen: Option<String>,
    /// The folder of the database and the lock file.
    pub state_dir: Option<PathBuf>,
    /// How long a new session may take to send its Hello.
    pub hello_timeout: Option<HumanDuration>,
    /// Agent events kept in the database.
    pub events_kept: Option<u32>,
    /// Agents known at most.
    pub max_agents: Option<usize>,
    /// Revisions kept.
    pub revisions_kept: Option<usize>,
    /// The controller's certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA of agents' and operators' client certificates.
    pub client_ca: Option<PathBuf>,
    /// Plaintext on a non-loopback address anyway.
    pub insecure_plaintext: Option<bool>,
    /// `[alerts]`, as in `agent.toml`.
    pub alerts: Alerts,
    /// `[telemetry]`.
    pub telemetry: ControllerTelemetry,
    /// `[history]`: the job history the controller keeps.
    pub history: ControllerHistory,
    /// `[web]`: the web console (off without `listen`).
    pub web: ControllerWeb,
}

/// The controller's `[history]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ControllerHistory {
    /// Job attempts older than this are deleted (at least [`MIN_HISTORY_KEEP`]; default 90d).
    pub keep: Option<HumanDuration>,
}

/// The controller's `[web]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ControllerWeb {
    /// Where the console is served, `host:port` (with the admin API's TLS).
    pub listen: Option<String>,
}

/// The shortest `[history] keep` accepted: a typo (`keep = "90s"`) must not delete the fleet's
/// history.
pub const MIN_HISTORY_KEEP: Duration = Duration::from_secs(86_400);

/// The controller's `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ControllerTelemetry {
    /// The OTLP collector, `http://host:4317`.
    pub otlp_endpoint: Option<String>,
    /// gRPC (default) or HTTP/protobuf.
    pub otlp_protocol: OtlpProtocol,
    /// Where `GET /metrics` is served, `host:port` (port 0 picks a free port).
    pub metrics_listen: Option<String>,
}

/// Reads `controller.toml`'s `text` (`origin` names the file in problems): every problem at
/// once, errors first, each with its key, line and hint; warnings come back with the file.
pub fn parse_controller_file(
    text: &str,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<(ControllerFile, Vec<Problem>), ConfigError> {
    let fail = |problem: Problem| ConfigError::Invalid {
        problems: vec![problem.in_file(origin)],
    };
    check_size(text.len()).map_err(fail)?;
    let table: Table = text.parse().map_err(|e| fail(syntax_problem(text, &e)))?;
    let outcome = strict::deserialize::<ControllerFile>(table, known_keys);
    let mut problems = outcome.problems;
    if let Some(file) = &outcome.value {
        problems.extend(
            validate(file, checks)
                .into_iter()
                .filter(|p| !under_any(&p.key, &outcome.failed)),
        );
    }
    problems.sort_by(|a, b| (a.severity, &a.key).cmp(&(b.severity, &b.key)));
    let problems: Vec<Problem> = key_lines(text)
        .locate(problems)
        .into_iter()
        .map(|p| p.in_file(origin))
        .collect();
    match outcome.value {
        Some(mut file) if !problems.iter().any(Problem::is_error) => {
            if let Some(pw) = file
                .alerts
                .email
                .as_mut()
                .and_then(|e| e.password_file.as_mut())
            {
                *pw = normalize_program(pw);
            }
            Ok((file, problems))
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

/// Reads an address like `127.0.0.1:7443`; the message says what was expected.
pub fn parse_listen(text: &str, example: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an address like {example}"))
}

/// The keys valid in the table at `parent`.
fn known_keys(parent: &[Seg]) -> Option<&'static [&'static str]> {
    Some(match parent {
        [] => field_names::<ControllerFile>(),
        [Seg::Key(s)] if s == "alerts" => field_names::<Alerts>(),
        [Seg::Key(s)] if s == "telemetry" => field_names::<ControllerTelemetry>(),
        [Seg::Key(s)] if s == "history" => field_names::<ControllerHistory>(),
        [Seg::Key(s)] if s == "web" => field_names::<ControllerWeb>(),
        [Seg::Key(a), Seg::Key(e)] if a == "alerts" && e == "email" => field_names::<Email>(),
        _ => return None,
    })
}

/// Every rule of the file on its own (the command line can change `listen` and the TLS files;
/// their combination is checked by the controller).
fn validate(file: &ControllerFile, checks: Checks) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(listen) = &file.listen {
        if let Err(message) = parse_listen(listen, "127.0.0.1:7443") {
            out.push(Problem::error("listen", message));
        }
    }
    if file
        .hello_timeout
        .is_some_and(|d| d.get() < Duration::from_millis(1))
    {
        let hint = "10s is usual; a session that says nothing this long is closed";
        out.push(Problem::error("hello_timeout", "must be longer than 0s").with_hint(hint));
    }
    let at_least = |out: &mut Vec<Problem>, key: &str, value: Option<usize>, min: usize, why| {
        if value.is_some_and(|n| n < min) {
            out.push(Problem::error(key, format!("must be at least {min}{why}")));
        }
    };
    at_least(
        &mut out,
        "events_kept",
        file.events_kept.map(|n| n as usize),
        1,
        "",
    );
    at_least(&mut out, "max_agents", file.max_agents, 1, "");
    let why = " (a rollback needs the one before)";
    at_least(&mut out, "revisions_kept", file.revisions_kept, 2, why);
    out.extend(validate_alerts(&file.alerts, checks));
    let t = &file.telemetry;
    if let Some(endpoint) = &t.otlp_endpoint {
        out.extend(otlp_endpoint(
            "telemetry.otlp_endpoint",
            endpoint,
            t.otlp_protocol,
        ));
    }
    if let Some(addr) = &t.metrics_listen {
        if let Err(message) = parse_listen(addr, "127.0.0.1:9464") {
            out.push(Problem::error("telemetry.metrics_listen", message));
        }
    }
    if file
        .history
        .keep
        .is_some_and(|d| d.get() < MIN_HISTORY_KEEP)
    {
        let hint = "history older than keep is deleted; 90d is the default";
        out.push(Problem::error("history.keep", "must be at least 1d").with_hint(hint));
    }
    if let Some(addr) = &file.web.listen {
        if let Err(message) = parse_listen(addr, "127.0.0.1:8443") {
            out.push(Problem::error("web.listen", message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        parse_controller_file(text, Some(Path::new("controller.toml")), Checks::Portable)
            .unwrap_err()
            .problems()
            .to_vec()
    }

    #[test]
    fn reads_every_key_and_the_alerts_as_in_agent_toml() {
        let text = "listen = \"127.0.0.1:7443\"\nstate_dir = \"s\"\nhello_timeout = \"3s\"\n\
                    events_kept = 5\n\n[alerts]\nqueue_limit = 5\n\
                    dedup_window = \"1m\"\n[alerts.email]\nsmtp = \"smtp://127.0.0.1:2525\"\n\
                    from = \"ctl@example.org\"\nto = [\"ops@example.org\"]\ntimeout = \"3s\"\n\
                    [telemetry]\notlp_protocol = \"http/protobuf\"\n\
                    otlp_endpoint = \"http://127.0.0.1:4318\"\n";
        let (f, warnings) = parse_controller_file(text, None, Checks::Full).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(f.hello_timeout.unwrap().get(), Duration::from_secs(3));
        assert_eq!((f.events_kept, f.state_dir), (Some(5), Some("s".into())));
        let a = f.alerts;
        assert_eq!(a.queue_limit, 5);
        assert_eq!(a.dedup_window.get(), Duration::from_secs(60));
        let email = a.email.unwrap();
        assert_eq!(email.smtp, "smtp://127.0.0.1:2525");
        assert_eq!(email.timeout.get(), Duration::from_secs(3));
        assert_eq!(f.telemetry.otlp_protocol, OtlpProtocol::HttpProtobuf);
        let (none, _) = parse_controller_file("", None, Checks::Full).unwrap();
        assert_eq!(none, ControllerFile::default());
    }

    #[test]
    fn every_problem_at_once_with_its_key_and_line() {
        let text = "state_dir = \"s\"\nlisten_addr = \"x\"\nlisten = \"nowhere\"\n\
                    hello_timeout = \"soon\"\nevents_kept = 0\nrevisions_kept = 1\n\
                    [alerts]\nqueue_limt = 5\nretry_backoff = \"soon\"\n\
                    [alerts.email]\nsmtp = \"mail.example.org\"\nfrom = \"nobody\"\nto = []\n\
                    [telemetry]\notlp_endpoint = \"127.0.0.1:4317\"\nmetrics = true\n\
                    metrics_listen = \"everywhere\"\n[history]\nkeep = \"90s\"\n\
                    [web]\nlisten = \"console\"\n";
        let found = problems(text);
        let keys: Vec<(&str, Option<usize>)> =
            found.iter().map(|p| (p.key.as_str(), p.line)).collect();
        for (key, line) in [
            ("listen_addr", 2),
            ("listen", 3),
            ("hello_timeout", 4),
            ("events_kept", 5),
            ("revisions_kept", 6),
            ("alerts.queue_limt", 8),
            ("alerts.retry_backoff", 9),
            ("alerts.email.smtp", 11),
            ("alerts.email.from", 12),
            ("alerts.email.to", 13),
            ("telemetry.otlp_endpoint", 15),
            ("telemetry.metrics", 16),
            ("telemetry.metrics_listen", 17),
            ("history.keep", 19),
            ("web.listen", 21),
        ] {
            assert!(
                keys.contains(&(key, Some(line))),
                "{key} at {line}: {found:#?}"
            );
        }
        let unknown = found.iter().find(|p| p.key == "listen_addr").unwrap();
        assert!(
            unknown.hint.as_deref().unwrap_or("").contains("listen"),
            "{unknown:?}"
        );
        let unknown = found.iter().find(|p| p.key == "alerts.queue_limt").unwrap();
        assert!(unknown
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("queue_limit"));
        assert!(
            found[0].to_string().starts_with("controller.toml:"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_password_file_must_be_readable_with_full_checks() {
        let text = "[alerts.email]\nsmtp = \"smtps://mail.example.org\"\nfrom = \"a@b.c\"\n\
                    to = [\"d@e.f\"]\nusername = \"u\"\n\
                    password_file = \"/nonexistent/h264-test/smtp-password\"\n";
        assert!(parse_controller_file(text, None, Checks::Portable).is_ok());
        let err = parse_controller_file(text, None, Checks::Full).unwrap_err();
        assert_eq!(err.problems()[0].key, "alerts.email.password_file", "{err}");
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let found = problems("[alerts]\nqueue_limit = \n");
        assert!(
            found[0].message.contains("TOML syntax error at line 2"),
            "{found:?}"
        );
    }
}
