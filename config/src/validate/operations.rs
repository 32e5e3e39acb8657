//! Rules for the operational sections: `[disk]` thresholds and `[alerts]` (e-mail included).
//! They do not look at the machine; whether a password file exists is [`super::host`]'s
//! business.

use std::time::Duration;

use super::at_least;
use crate::agent::{AgentConfig, Alerts, Disk};
use crate::problem::Problem;
use crate::units::FreeSpace;

pub(super) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    disk(&config.disk, out);
    alerts(&config.alerts, out);
}

fn disk(d: &Disk, out: &mut Vec<Problem>) {
    let as_percent = |t: FreeSpace| match t {
        FreeSpace::Percent(p) => Some(p),
        FreeSpace::Bytes(_) => None,
    };
    if let (Some(w), Some(c)) = (as_percent(d.warn), as_percent(d.critical)) {
        if c > w {
            let message = format!("{} is above disk.warn ({})", d.critical, d.warn);
            let hint = "critical is the lower threshold: e.g. warn = \"10%\", critical = \"5%\"";
            out.push(Problem::error("disk.critical", message).with_hint(hint));
        }
    }
    if let (FreeSpace::Bytes(w), FreeSpace::Bytes(c)) = (d.warn, d.critical) {
        if c > w {
            let message = format!("{c} bytes is above disk.warn ({w} bytes)");
            out.push(
                Problem::error("disk.critical", message)
                    .with_hint("critical is the lower threshold"),
            );
        }
    }
    at_least(
        out,
        "disk.check_interval",
        d.check_interval,
        Duration::from_secs(1),
    );
}

pub(super) fn alerts(a: &Alerts, out: &mut Vec<Problem>) {
    if a.queue_limit == 0 {
        out.push(Problem::error("alerts.queue_limit", "must be at least 1"));
    }
    if a.retry_backoff > a.retry_backoff_max {
        let message = format!(
            "{} is longer than retry_backoff_max ({})",
            a.retry_backoff, a.retry_backoff_max
        );
        out.push(Problem::error("alerts.retry_backoff", message));
    }
    let Some(e) = &a.email else { return };
    let scheme = e.smtp.split_once("://").map(|(s, _)| s);
    if !matches!(scheme, Some("smtp" | "smtps")) {
        let message = format!("`{}` is not an smtp:// or smtps:// address", e.smtp);
        let hint =
            "e.g. \"smtp://mail.example.org:587\" (STARTTLS), or \"smtps://mail.example.org:465\"";
        out.push(Problem::error("alerts.email.smtp", message).with_hint(hint));
    }
    if !e.from.contains('@') {
        out.push(Problem::error(
            "alerts.email.from",
            format!("`{}` is not an e-mail address", e.from),
        ));
    }
    if e.to.is_empty() {
        out.push(
            Problem::error("alerts.email.to", "names no recipient")
                .with_hint("to = [\"ops@example.org\"]"),
        );
    }
    for (n, to) in e.to.iter().enumerate() {
        if !to.contains('@') {
            out.push(Problem::error(
                format!("alerts.email.to[{n}]"),
                format!("`{to}` is not an e-mail address"),
            ));
        }
    }
    let plain = e.smtp.starts_with("smtp://") && !e.uses_starttls();
    if e.username.is_some() && plain && !e.smtp_is_loopback() && !e.allow_plaintext_auth {
        let message = format!(
            "the password would go to {} without TLS, readable by anyone on the way",
            e.smtp
        );
        let hint = "set starttls = true, or use smtps://host:465; allow_plaintext_auth = true only if you accept the risk";
        out.push(Problem::error("alerts.email.starttls", message).with_hint(hint));
    }
    let sources = [
        ("password_env", e.password_env.is_some()),
        ("password_file", e.password_file.is_some()),
        ("password_credential", e.password_credential.is_some()),
    ];
    let set: Vec<&str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
    if e.username.is_some() && set.is_empty() {
        let hint = "set password_env = \"SMTP_PASSWORD\", password_file = \"/etc/h264create/smtp-password\" or, under systemd, password_credential = \"smtp-password\"";
        out.push(
            Problem::error("alerts.email.username", "is set but no password source is")
                .with_hint(hint),
        );
    }
    if set.len() > 1 {
        out.push(Problem::error(
            format!("alerts.email.{}", set[set.len() - 1]),
            format!(
                "and {} are {} set; keep one",
                set[..set.len() - 1].join(" and "),
                if set.len() == 2 { "both" } else { "all" }
            ),
        ));
    }
    if let Some(name) = &e.password_credential {
        if !crate::credentials::valid_name(name) {
            let message = format!("`{name}` is not a credential name");
            let hint = "the NAME of LoadCredential=NAME:PATH in the unit, a plain file name such as \"smtp-password\"";
            out.push(Problem::error("alerts.email.password_credential", message).with_hint(hint));
        }
    }
}
