//! Sections of `agent.toml` that another program's config file takes too: the controller's
//! file has an `[alerts]` table (with `[alerts.email]`) with the agent's keys. The section is
//! read with the agent file's machinery, so its keys, types, rules and problems (keyed
//! `alerts.…`, with their lines and a "did you mean") are the same in both files.

use std::path::Path;

use serde::Deserialize;
use toml::Table;

use crate::agent::Alerts;
use crate::keypath::under_any;
use crate::limits::check_size;
use crate::load::{known_keys, syntax_problem, ConfigError};
use crate::problem::Problem;
use crate::strict;
use crate::toml_lines::key_lines;
use crate::validate::{normalize_program, validate_alerts, Checks};

/// The one section looked at.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AlertsOnly {
    alerts: Alerts,
}

/// The `[alerts]` section of the TOML `text` (another program's config file; `origin` names
/// it in problems), checked as in `agent.toml`; the defaults when the file has none (alerts
/// are logged, not e-mailed). The file's other top-level keys are the caller's business and
/// are not looked at. Every problem of the section at once, errors first.
pub fn parse_alerts_section(
    text: &str,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<Alerts, ConfigError> {
    let fail = |problem: Problem| ConfigError::Invalid {
        problems: vec![problem.in_file(origin)],
    };
    check_size(text.len()).map_err(fail)?;
    let mut table: Table = text.parse().map_err(|e| fail(syntax_problem(text, &e)))?;
    let Some(section) = table.remove("alerts") else {
        return Ok(Alerts::default());
    };
    let outcome = strict::deserialize::<AlertsOnly>(strict::one("alerts", section), known_keys);
    let mut problems = outcome.problems;
    if let Some(value) = &outcome.value {
        problems.extend(
            validate_alerts(&value.alerts, checks)
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
        Some(AlertsOnly { mut alerts }) if !problems.iter().any(Problem::is_error) => {
            if let Some(file) = alerts.email.as_mut().and_then(|e| e.password_file.as_mut()) {
                *file = normalize_program(file);
            }
            Ok(alerts)
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        parse_alerts_section(text, Some(Path::new("controller.toml")), Checks::Portable)
            .unwrap_err()
            .problems()
            .to_vec()
    }

    #[test]
    fn the_section_reads_as_in_agent_toml_and_the_rest_is_ignored() {
        let text = "listen = \"127.0.0.1:7443\"\nwhatever = 1\n\n[alerts]\nqueue_limit = 5\n\
                    dedup_window = \"1m\"\n[alerts.email]\nsmtp = \"smtp://127.0.0.1:2525\"\n\
                    from = \"ctl@example.org\"\nto = [\"ops@example.org\"]\ntimeout = \"3s\"\n";
        let a = parse_alerts_section(text, None, Checks::Full).unwrap();
        assert_eq!(a.queue_limit, 5);
        assert_eq!(a.dedup_window.get(), std::time::Duration::from_secs(60));
        let email = a.email.unwrap();
        assert_eq!(email.smtp, "smtp://127.0.0.1:2525");
        assert_eq!(email.to, ["ops@example.org"]);
        assert_eq!(email.timeout.get(), std::time::Duration::from_secs(3));
        let none = parse_alerts_section("listen = \"x\"\n", None, Checks::Full).unwrap();
        assert_eq!(none, Alerts::default());
    }

    #[test]
    fn every_problem_names_its_key_and_line() {
        let text = "state_dir = \"s\"\n[alerts]\nqueue_limt = 5\nretry_backoff = \"soon\"\n\
                    [alerts.email]\nsmtp = \"mail.example.org\"\nfrom = \"nobody\"\nto = []\n";
        let found = problems(text);
        let keys: Vec<(&str, Option<usize>)> =
            found.iter().map(|p| (p.key.as_str(), p.line)).collect();
        for (key, line) in [
            ("alerts.queue_limt", 3),
            ("alerts.retry_backoff", 4),
            ("alerts.email.smtp", 6),
            ("alerts.email.from", 7),
            ("alerts.email.to", 8),
        ] {
            assert!(
                keys.contains(&(key, Some(line))),
                "{key} at {line}: {found:#?}"
            );
        }
        let unknown = found.iter().find(|p| p.key == "alerts.queue_limt").unwrap();
        assert!(
            unknown
                .hint
                .as_deref()
                .unwrap_or("")
                .contains("queue_limit"),
            "{unknown:?}"
        );
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
        assert!(parse_alerts_section(text, None, Checks::Portable).is_ok());
        let err = parse_alerts_section(text, None, Checks::Full).unwrap_err();
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
