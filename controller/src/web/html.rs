//! HTML of the console, built on the server: every piece of text an agent or an operator wrote
//! (ids, labels, file names, messages, manifests) goes through [`esc`], so none of it can become
//! markup or script. The fragments the live view replaces ([`fleet_rows`], [`rollout`]) are built
//! here too, and the page's script only swaps them in.

use std::fmt::Write as _;

use h264_proto::v1::{AgentStatus, RolloutPhase, RolloutStatus};
use h264_trust::Role;

use super::session::Login;

/// `text` with `& < > " '` replaced by entities (safe in element text and quoted attributes).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// A Unix time in milliseconds as RFC 3339 (seconds), or `-`.
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A whole page: the navigation, who is logged in, `body`.
pub fn page(title: &str, login: Option<&Login>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(l) = login {
        let _ = write!(
            nav,
            "<nav><a href=\"/\">Fleet</a> <a href=\"/rollout\">Rollout</a> \
             <a href=\"/revisions\">Revisions</a> <a href=\"/jobs\">Jobs</a> \
             <a href=\"/charts\">Charts</a>\
             <span class=\"who\">{} ({})</span>\
             <form method=\"post\" action=\"/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Log out</button></form></nav>",
            esc(&l.who),
            l.role,
            esc(&l.csrf)
        );
    }
    let csrf = login.map(|l| esc(&l.csrf)).unwrap_or_default();
    let role = login.map(|l| l.role.as_str()).unwrap_or("");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf\" content=\"{csrf}\"><meta name=\"role\" content=\"{role}\">\
         <title>{} · h264create</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <link rel=\"stylesheet\" href=\"/assets/uPlot.min.css\">\
         <script src=\"/assets/uPlot.iife.min.js\" defer></script>\
         <script src=\"/assets/console.js\" defer></script></head>\
         <body>{nav}<main><h1>{}</h1>{body}</main>\
         <div id=\"confirm\" hidden><p id=\"confirm-text\"></p>\
         <button id=\"confirm-yes\">Confirm</button> <button id=\"confirm-no\">Cancel</button></div>\
         <p id=\"result\" role=\"status\"></p></body></html>",
        esc(title),
        esc(title)
    )
}

/// A button that POSTs to `action` after the operator confirms `question`.
pub fn action(label: &str, action: &str, question: &str) -> String {
    format!(
        "<button class=\"action\" data-action=\"{}\" data-confirm=\"{}\">{}</button>",
        esc(action),
        esc(question),
        esc(label)
    )
}

fn disk(a: &AgentStatus) -> String {
    let Some(stats) = &a.stats else {
        return "-".into();
    };
    let volumes = volumes(stats);
    match stats.held_roots.len() {
        0 => volumes,
        1 => format!("1 root missing, {volumes}"),
        n => format!("{n} roots missing, {volumes}"),
    }
}

/// The fullest volume as `level N% free`.
fn volumes(stats: &h264_proto::v1::StatsReply) -> String {
    stats
        .volumes
        .iter()
        .filter(|v| v.total_bytes > 0)
        .map(|v| {
            let level = if v.level.is_empty() { "ok" } else { &v.level };
            (
                v.free_bytes as f64 / v.total_bytes as f64,
                level.to_string(),
            )
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(free, level)| format!("{level} {:.0}% free", free * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The rows of the fleet table.
pub fn fleet_rows(agents: &[AgentStatus], role: Role) -> String {
    let mut out = String::new();
    for a in agents {
        let (queue, running, paused) = match &a.stats {
            Some(s) => (
                s.queue_depth.to_string(),
                s.running.len().to_string(),
                s.paused,
            ),
            None => ("-".into(), "-".into(), false),
        };
        let mut labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let actions = if role >= Role::Operator && a.connected {
            let id = &a.agent_id;
            if paused {
                action(
                    "Resume",
                    &format!("/api/agents/{id}/resume"),
                    &format!("Resume agent {id}?"),
                )
            } else {
                action(
                    "Pause",
                    &format!("/api/agents/{id}/pause"),
                    &format!("Pause agent {id}? Running jobs finish; no new job starts."),
                )
            }
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr data-agent=\"{id}\"><td class=\"id\">{id}</td><td>{conn}</td>\
             <td class=\"generation\">{run}</td><td>{desired}</td><td class=\"sync\">{sync}</td>\
             <td>{queue}</td><td>{running}{p}</td><td>{disk}</td><td>{labels}</td><td>{actions}</td></tr>",
            id = esc(&a.agent_id),
            conn = if a.connected { "yes" } else { "no" },
            run = a.running_generation,
            desired = a.desired_generation,
            sync = esc(a.sync_state().name()),
            p = if paused { " (paused)" } else { "" },
            disk = esc(&disk(a)),
            labels = esc(&labels.join(", ")),
        );
    }
    out
}

/// The fleet table with its rows.
pub fn fleet_table(agents: &[AgentStatus], role: Role) -> String {
    format!(
        "<table id=\"fleet\"><thead><tr><th>Agent</th><th>Connected</th><th>Generation</th>\
         <th>Desired</th><th>Sync</th><th>Queue</th><th>Running</th><th>Disk</th><th>Labels</th>\
         <th></th></tr></thead><tbody id=\"fleet-body\">{}</tbody></table>",
        fleet_rows(agents, role)
    )
}

/// The rollout's state, steps, gates (with their measurements over time) and, for operators,
/// its actions.
pub fn rollout(r: &RolloutStatus, role: Role) -> String {
    if r.id == 0 {
        return "<p id=\"rollout-phase\" data-phase=\"none\">No rollout yet.</p>".into();
    }
    let mut out = format!(
        "<p>Rollout {} of generation <a href=\"/revisions/{g}\">{g}</a> (stable: {}): \
         <strong id=\"rollout-phase\" data-phase=\"{phase}\">{phase}</strong>, step \
         <span id=\"rollout-step\">{}</span> of {}: {}</p>",
        r.id,
        r.stable_generation,
        r.step + 1,
        r.steps.len(),
        esc(&r.step_description),
        g = r.generation,
        phase = esc(r.phase().name()),
    );
    if let Some(c) = &r.cohort {
        let _ = write!(
            out,
            "<p>Cohort: {} agents of {}; {} synced, {} pending, {} in error, {} offline.</p>",
            c.agents, r.fleet_agents, c.synced, c.pending, c.error, c.offline
        );
    }
    if !r.reason.is_empty() {
        let _ = write!(out, "<p class=\"reason\">{}</p>", esc(&r.reason));
    }
    out.push_str("<ol class=\"steps\">");
    for (i, s) in r.steps.iter().enumerate() {
        let class = match (i as u32).cmp(&r.step) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Greater => "todo",
        };
        let _ = write!(out, "<li class=\"{class}\">{}</li>", esc(s));
    }
    out.push_str(
        "</ol><table><thead><tr><th>Time</th><th>Step</th><th>Gate</th><th>Passed</th>\
                  <th>Measured</th><th>Threshold</th></tr></thead><tbody>",
    );
    for g in &r.gates {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(g.at_ms),
            g.step + 1,
            esc(&g.gate),
            if g.passed { "yes" } else { "no" },
            esc(&g.measured),
            esc(&g.threshold)
        );
    }
    out.push_str("</tbody></table>");
    if role >= Role::Operator {
        out.push_str("<p class=\"actions\">");
        let active = matches!(
            r.phase(),
            RolloutPhase::Pending | RolloutPhase::Progressing | RolloutPhase::Paused
        );
        if active {
            out.push_str(&action(
                "Promote",
                "/api/rollout/promote",
                "Promote the rollout past its current step?",
            ));
            out.push_str(&action(
                "Abort",
                "/api/rollout/abort",
                "Abort the rollout and put the fleet back on the stable revision?",
            ));
        }
        if !active {
            out.push_str(&action(
                "Undo",
                "/api/rollout/undo",
                &format!(
                    "Undo: put the whole fleet back on generation {}?",
                    r.stable_generation
                ),
            ));
        }
        out.push_str("</p>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let a = AgentStatus {
            agent_id: "a".into(),
            labels: [("site".to_owned(), "<img src=x onerror=alert(1)>".to_owned())].into(),
            ..AgentStatus::default()
        };
        let rows = fleet_rows(&[a], Role::Viewer);
        assert!(!rows.contains("<img"), "{rows}");
        assert!(rows.contains("&lt;img"));
    }
}
