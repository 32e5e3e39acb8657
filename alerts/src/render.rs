//! Turns an alert into the e-mail that is queued: a subject, a plain-text body and an HTML
//! body carrying the same things (who sent it: program, instance and host; time, event,
//! subject, every fact, the action taken), plus the summary that stands for messages a full
//! queue replaced.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::queue::{unix_ms, Dropped, Message};
use crate::Alert;

/// The program that raises the alerts, and which instance of it: the same for every message
/// of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The program's name, e.g. `h264-agent`: it opens every subject (`[h264-agent ingest-1]
    /// ...`) and is part of every `Message-ID`.
    pub program: String,
    /// What the instance is, the label of the first row of every message: `Agent`,
    /// `Controller`.
    pub role: String,
    /// The instance: the agent's id, the controller's listen address.
    pub id: String,
}

impl Origin {
    /// `h264-agent` with the agent's id.
    pub fn agent(id: impl Into<String>) -> Origin {
        Origin {
            program: "h264-agent".into(),
            role: "Agent".into(),
            id: id.into(),
        }
    }

    /// `h264-controller`, known by the address it listens on (what operators give fleetctl).
    pub fn controller(listen: impl Into<String>) -> Origin {
        Origin {
            program: "h264-controller".into(),
            role: "Controller".into(),
            id: listen.into(),
        }
    }
}

/// Who sends, as every message shows it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The program and its instance.
    pub origin: Origin,
    /// The machine's host name.
    pub host: String,
}

impl Context {
    /// The rows every message starts with: the instance, the host, the time and the event.
    fn header(&self, at: SystemTime, event: String) -> Vec<(String, String)> {
        vec![
            (self.origin.role.clone(), self.origin.id.clone()),
            ("Host".to_owned(), self.host.clone()),
            (
                "Time".to_owned(),
                humantime::format_rfc3339_seconds(at).to_string(),
            ),
            ("Event".to_owned(), event),
        ]
    }
}

/// Alerts held back by deduplication before this one.
#[derive(Debug, Clone, Copy)]
pub struct HeldBack {
    /// How many.
    pub count: u64,
    /// Since when (the previous message with the same key).
    pub since: SystemTime,
    /// The deduplication window.
    pub window: Duration,
}

/// The queued e-mail for `alert`, raised at `at`.
pub fn alert(ctx: &Context, alert: &Alert, at: SystemTime, held: Option<HeldBack>) -> Message {
    let event = format!("{} ({})", alert.kind.label(), alert.kind.as_str());
    let mut rows = ctx.header(at, event);
    rows.extend(alert.facts.iter().cloned());
    let note = held.filter(|h| h.count > 0).map(|h| {
        format!(
            "{} more alert(s) like this one were held back since {} (one message per {} for \
             the same alert).",
            h.count,
            humantime::format_rfc3339_seconds(h.since),
            humantime::format_duration(h.window)
        )
    });
    let heading = format!("{}: {}", alert.kind.label(), alert.subject);
    Message {
        kind: alert.kind.as_str().to_owned(),
        created_ms: unix_ms(at),
        subject: subject_line(ctx, &alert.subject),
        text: text(&heading, &rows, &alert.action, note.as_deref()),
        html: html(&heading, &rows, &alert.action, note.as_deref()),
        message_id: message_id(ctx, at),
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        stands_for: Vec::new(),
    }
}

/// The message that stands for `dropped`, which a full queue replaced at `at`.
pub fn summary(ctx: &Context, dropped: &[Dropped], at: SystemTime) -> Message {
    let subject = format!(
        "{} alert message(s) replaced by this summary",
        dropped.len()
    );
    let mut rows = ctx.header(at, "alert queue full (queue_summary)".to_owned());
    for d in dropped {
        let when = SystemTime::UNIX_EPOCH + Duration::from_millis(d.created_ms);
        let when = humantime::format_rfc3339_seconds(when).to_string();
        rows.push((when, d.subject.clone()));
    }
    let action = format!(
        "The e-mail queue reached its limit (alerts.queue_limit) while messages could not be \
         delivered; the oldest were replaced by this list of their subjects. The log of {} {} \
         has every alert in full.",
        ctx.origin.program, ctx.origin.id
    );
    Message {
        kind: "queue_summary".to_owned(),
        created_ms: unix_ms(at),
        subject: subject_line(ctx, &subject),
        text: text(&subject, &rows, &action, None),
        html: html(&subject, &rows, &action, None),
        message_id: message_id(ctx, at),
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
        stands_for: Vec::new(),
    }
}

/// `[<program> <id>] <subject>` on one line, e.g. `[h264-agent ingest-1] disk critical: /data`.
fn subject_line(ctx: &Context, subject: &str) -> String {
    let line = format!("[{} {}] {}", ctx.origin.program, ctx.origin.id, subject);
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn message_id(ctx: &Context, at: SystemTime) -> String {
    let domain: String = ctx
        .host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let domain = if domain.is_empty() {
        "localhost"
    } else {
        &domain
    };
    let program: String = ctx
        .origin
        .program
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let nonce: u64 = rand::rng().random();
    format!("<{}.{nonce:016x}.{program}@{domain}>", unix_ms(at))
}

/// The instance, host, time and event come first in every message; the facts follow.
const HEADER_ROWS: usize = 4;

fn text(heading: &str, rows: &[(String, String)], action: &str, note: Option<&str>) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = format!("h264create alert\n\n{heading}\n\n");
    for (n, (key, value)) in rows.iter().enumerate() {
        if n == HEADER_ROWS {
            out.push('\n');
        }
        let label = format!("{key}:");
        let mut lines = value.lines();
        let _ = writeln!(out, "{label:<width$}{}", lines.next().unwrap_or(""));
        for line in lines {
            let _ = writeln!(out, "{:width$}{line}", "");
        }
    }
    let _ = write!(out, "\nAction taken: {action}\n");
    if let Some(note) = note {
        let _ = write!(out, "\nNote: {note}\n");
    }
    out
}

fn html(heading: &str, rows: &[(String, String)], action: &str, note: Option<&str>) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">\n",
    );
    let _ = writeln!(out, "<h2>{}</h2>", escape(heading));
    out.push_str("<table style=\"border-collapse:collapse\">\n");
    for (key, value) in rows {
        let _ = writeln!(
            out,
            "<tr><th style=\"text-align:left;vertical-align:top;padding:2px 12px 2px 0\">{}</th>\
             <td style=\"white-space:pre-wrap;font-family:monospace\">{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    out.push_str("</table>\n");
    let _ = writeln!(out, "<p><b>Action taken:</b> {}</p>", escape(action));
    if let Some(note) = note {
        let _ = writeln!(out, "<p><i>{}</i></p>", escape(note));
    }
    out.push_str("</body></html>\n");
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlertKind;

    fn ctx() -> Context {
        Context {
            origin: Origin::agent("ingest-1"),
            host: "studio<b>".into(),
        }
    }

    fn failed() -> Alert {
        Alert {
            kind: AlertKind::FileFailed,
            subject: "news.ts failed\r\nBcc: x@y".into(),
            facts: vec![
                ("file".into(), "/rec/news & <weather>.ts".into()),
                ("error".into(), "line one\nline two".into()),
            ],
            action: "moved to quarantine".into(),
            dedup_key: "k".into(),
        }
    }

    #[test]
    fn both_bodies_carry_everything_and_html_is_escaped() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let held = HeldBack {
            count: 4,
            since: at,
            window: Duration::from_secs(900),
        };
        let m = alert(&ctx(), &failed(), at, Some(held));
        assert_eq!(m.subject, "[h264-agent ingest-1] news.ts failed  Bcc: x@y");
        for needle in [
            "ingest-1",
            "studio<b>",
            "2023-11-14T22:13:20Z",
            "file failed",
        ] {
            assert!(m.text.contains(needle), "{needle} in {}", m.text);
        }
        assert!(
            m.text.contains("file:  /rec/news & <weather>.ts"),
            "{}",
            m.text
        );
        assert!(m.text.contains("line one\n       line two"), "{}", m.text);
        assert!(m.text.contains("Action taken: moved to quarantine"));
        assert!(m
            .text
            .contains("4 more alert(s) like this one were held back"));
        assert!(
            m.html.contains("/rec/news &amp; &lt;weather&gt;.ts"),
            "{}",
            m.html
        );
        assert!(m.html.contains("studio&lt;b&gt;"));
        assert!(!m.html.contains("<weather>") && !m.html.contains("studio<b>"));
        assert!(m.html.contains("4 more alert(s)"));
        assert!(m.message_id.starts_with('<') && m.message_id.ends_with("@studiob>"));
    }

    #[test]
    fn a_summary_lists_subjects_and_times() {
        let dropped = [
            Dropped {
                created_ms: 1_700_000_000_000,
                subject: "[h264-agent ingest-1] a <1>".into(),
            },
            Dropped {
                created_ms: 1_700_000_060_000,
                subject: "[h264-agent ingest-1] b".into(),
            },
        ];
        let m = summary(&ctx(), &dropped, SystemTime::now());
        assert_eq!(m.kind, "queue_summary");
        assert!(m.subject.contains("2 alert message(s) replaced"));
        assert!(m
            .text
            .contains("2023-11-14T22:13:20Z: [h264-agent ingest-1] a <1>"));
        assert!(m
            .text
            .contains("2023-11-14T22:14:20Z: [h264-agent ingest-1] b"));
        assert!(m.html.contains("a &lt;1&gt;"));
    }

    #[test]
    fn a_controller_names_itself_instead_of_an_agent() {
        let ctx = Context {
            origin: Origin::controller("10.0.0.5:7443"),
            host: "control-1".into(),
        };
        let rolled_back = Alert {
            kind: AlertKind::RolloutRolledBack,
            subject: "rollout 3 rolled back: gate `nack` failed".into(),
            facts: vec![("gate".into(), "nack".into())],
            action: "every agent was assigned the stable revision 1".into(),
            dedup_key: "rollout-3".into(),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = alert(&ctx, &rolled_back, at, None);
        assert_eq!(
            m.subject,
            "[h264-controller 10.0.0.5:7443] rollout 3 rolled back: gate `nack` failed"
        );
        assert_eq!(m.kind, "rollout_rolled_back");
        let first = m.text.lines().nth(4).unwrap_or_default();
        assert!(
            first.starts_with("Controller:") && first.ends_with("10.0.0.5:7443"),
            "{}",
            m.text
        );
        assert!(!m.text.contains("Agent"), "{}", m.text);
        assert!(m.html.contains("<th style=\"text-align:left;vertical-align:top;padding:2px 12px 2px 0\">Controller</th>"));
        assert!(m.message_id.ends_with(".h264-controller@control-1>"));
        let s = summary(&ctx, &[], at);
        assert!(
            s.text.contains("The log of h264-controller 10.0.0.5:7443"),
            "{}",
            s.text
        );
    }

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
