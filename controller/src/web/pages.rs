//! The console's pages (GET) and its login and logout (POST forms).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use h264_proto::v1::fleet_admin_server::FleetAdmin;
use h264_proto::v1::{
    rollout_request, ListAgentsRequest, ListJobsRequest, ListRevisionsRequest, RolloutRequest,
    RolloutStatusRequest, WhoAmIRequest,
};
use h264_trust::Role;
use serde::Deserialize;

use super::diff::{diff, Line};
use super::html::{esc, fleet_table, page, rollout as rollout_html, time};
use super::session;
use super::tls::PeerAddr;
use super::{request, status_response, Console};

/// The longest token a login form may carry.
const MAX_TOKEN: usize = 512;

type S = State<Arc<Console>>;

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// `GET /login`.
pub async fn login_form() -> Html<String> {
    Html(login_page(""))
}

fn login_page(error: &str) -> String {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", esc(error))
    };
    page(
        "Log in",
        None,
        &format!(
            "{error}<form method=\"post\" action=\"/login\" id=\"login\">\
             <label>API token <input type=\"password\" name=\"token\" id=\"token\" \
             autocomplete=\"off\" required></label> <button type=\"submit\">Log in</button></form>\
             <p>A token from <code>h264-controller token create</code> or \
             <code>fleetctl token create</code>; it is sent once and kept by the controller, \
             not the browser.</p>"
        ),
    )
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: checks the token with the admin API, then sets the session cookie. Refused
/// unchecked (429) while the peer or the console is out of login attempts ([`super::throttle`]).
pub async fn login(
    State(c): S,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    if let Err(wait) = c.throttle.begin(ip) {
        let secs = wait.as_secs() + 1;
        tracing::warn!(peer = %ip, retry_after_secs = secs, "console login refused: too many failed logins");
        let mut res = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(login_page(&format!(
                "Too many failed logins: try again in {secs} s."
            ))),
        )
            .into_response();
        if let Ok(v) = secs.to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let token = form.token.trim().to_owned();
    if token.is_empty() || token.len() > MAX_TOKEN {
        tracing::warn!(peer = %ip, length = token.len(), "console login refused: no token or a too long one");
        return (
            StatusCode::UNAUTHORIZED,
            Html(login_page("That token is not known to this controller.")),
        )
            .into_response();
    }
    let probe = session::probe(token.clone());
    match c.admin.who_am_i(request(&probe, WhoAmIRequest {})).await {
        Ok(reply) => {
            let me = reply.into_inner();
            let Ok(role) = Role::parse(&me.role) else {
                tracing::warn!(peer = %ip, who = %me.identity, "console login refused: the token has no role");
                return (
                    StatusCode::FORBIDDEN,
                    Html(login_page("That token has no role.")),
                )
                    .into_response();
            };
            c.throttle.succeeded(ip);
            tracing::info!(peer = %ip, who = %me.identity, role = %role, "console login");
            let id = c.sessions.create(token, me.identity, role);
            let mut res = Redirect::to("/").into_response();
            if let Ok(v) = session::set_cookie(&id, c.secure).parse() {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(s) => {
            // The admin API's message names no token; the token itself is never logged.
            tracing::warn!(peer = %ip, reason = %s.message(), "console login refused");
            (
                StatusCode::UNAUTHORIZED,
                Html(login_page("That token is not known to this controller.")),
            )
                .into_response()
        }
    }
}

/// The logout form's fields.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(State(c): S, headers: HeaderMap, Form(form): Form<LogoutForm>) -> Response {
    if let Some(login) = c.login(&headers) {
        if !session::same(&form.csrf, &login.csrf) {
            return (StatusCode::FORBIDDEN, "the form's CSRF token is wrong").into_response();
        }
        if let Some(id) = headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(session::cookie_value)
        {
            c.sessions.remove(id);
        }
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = session::clear_cookie(c.secure).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// `GET /`: the fleet, live.
pub async fn fleet(State(c): S, headers: HeaderMap) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    let agents = match c
        .admin
        .list_agents(request(&login, ListAgentsRequest::default()))
        .await
    {
        Ok(r) => r.into_inner().agents,
        Err(s) => return status_response(&s),
    };
    let body = format!(
        "<p class=\"live\" data-live=\"fleet\">Live: <span id=\"live-state\">connecting</span></p>{}",
        fleet_table(&agents, login.role)
    );
    Html(page("Fleet", Some(&login), &body)).into_response()
}

/// `GET /rollout`: the current (or last) rollout, live.
pub async fn rollout(State(c): S, headers: HeaderMap) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    let req = RolloutRequest {
        verb: Some(rollout_request::Verb::Status(RolloutStatusRequest {})),
    };
    match c.admin.rollout(request(&login, req)).await {
        Ok(r) => {
            let body = format!(
                "<p class=\"live\" data-live=\"rollout\">Live: <span id=\"live-state\">connecting</span></p>\
                 <section id=\"rollout\">{}</section>",
                rollout_html(&r.into_inner(), login.role)
            );
            Html(page("Rollout", Some(&login), &body)).into_response()
        }
        Err(s) => status_response(&s),
    }
}

/// `GET /revisions`.
pub async fn revisions(State(c): S, headers: HeaderMap) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    let list = match c
        .admin
        .list_revisions(request(&login, ListRevisionsRequest {}))
        .await
    {
        Ok(r) => r.into_inner().revisions,
        Err(s) => return status_response(&s),
    };
    let mut body = String::from(
        "<table><thead><tr><th>Generation</th><th>Name</th><th>Created</th><th>Assigned</th>\
         <th>ACKed</th><th>SHA256</th><th>Signed by</th></tr></thead><tbody>",
    );
    for r in &list {
        let _ = write!(
            body,
            "<tr><td><a href=\"/revisions/{g}\">{g}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(&r.name),
            time(r.created_at_ms),
            r.assigned,
            r.acked,
            esc(&r.sha256),
            esc(&r.signer_key),
            g = r.generation
        );
    }
    body.push_str("</tbody></table>");
    Html(page("Revisions", Some(&login), &body)).into_response()
}

fn pretty(canonical: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(canonical)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(canonical).into_owned())
}

/// `GET /revisions/{generation}`: the manifest (canonical spec) and its diff against the
/// revision before it.
pub async fn revision(State(c): S, headers: HeaderMap, Path(generation): Path<u64>) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    // Reading a revision is a viewer's right, checked by the admin API.
    if let Err(s) = c
        .admin
        .list_revisions(request(&login, ListRevisionsRequest {}))
        .await
    {
        return status_response(&s);
    }
    let Some(rev) = c.registry.revision(generation) else {
        return (StatusCode::NOT_FOUND, format!("no revision {generation}")).into_response();
    };
    let text = pretty(&rev.canonical);
    let previous = (1..generation).rev().find_map(|g| c.registry.revision(g));
    let mut body = format!(
        "<p>Generation {generation}, <code>{}</code>, applied {} as <em>{}</em>.</p>",
        esc(&rev.sha256),
        time(rev.created_at_ms),
        esc(&rev.name)
    );
    match &previous {
        Some(p) => {
            let old = pretty(&p.canonical);
            let _ = write!(
                body,
                "<h2>Changes from generation <a href=\"/revisions/{g}\">{g}</a></h2>",
                g = p.generation
            );
            match diff(&old, &text) {
                Some(lines) => {
                    body.push_str("<pre class=\"diff\" id=\"diff\">");
                    for l in lines {
                        let (class, mark, t) = match l {
                            Line::Same(t) => ("same", ' ', t),
                            Line::Removed(t) => ("del", '-', t),
                            Line::Added(t) => ("add", '+', t),
                        };
                        let _ = writeln!(body, "<span class=\"{class}\">{mark} {}</span>", esc(t));
                    }
                    body.push_str("</pre>");
                }
                None => body.push_str("<p>Too long to compare here.</p>"),
            }
        }
        None => body.push_str("<p>The first revision kept: nothing to compare with.</p>"),
    }
    let _ = write!(
        body,
        "<h2>Spec</h2><pre id=\"manifest\">{}</pre>",
        esc(&text)
    );
    Html(page(&format!("Revision {generation}"), Some(&login), &body)).into_response()
}

/// The job history page's filters.
#[derive(Debug, Default, Deserialize)]
pub struct JobFilters {
    agent: Option<String>,
    failed: Option<String>,
    file: Option<String>,
    since: Option<String>,
}

/// `GET /jobs`: the job history with filters.
pub async fn jobs(State(c): S, headers: HeaderMap, Query(f): Query<JobFilters>) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    let since = f.since.clone().unwrap_or_else(|| "7d".into());
    let since_ms = match humantime::parse_duration(&since) {
        Ok(d) => crate::model::now_ms() - d.as_millis().min(i64::MAX as u128 / 2) as i64,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("`{since}` is not a duration like 7d"),
            )
                .into_response()
        }
    };
    let failed = f.failed.as_deref() == Some("1");
    let req = ListJobsRequest {
        agent_id: f.agent.clone().unwrap_or_default(),
        failed_only: failed,
        file_glob: f.file.clone().unwrap_or_default(),
        since_ms,
        limit: 500,
    };
    let reply = match c.admin.list_jobs(request(&login, req)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return status_response(&s),
    };
    let mut body = format!(
        "<form method=\"get\" action=\"/jobs\" id=\"filters\">\
         <label>Agent <input name=\"agent\" value=\"{}\"></label> \
         <label>File <input name=\"file\" value=\"{}\" placeholder=\"*news*\"></label> \
         <label>Since <input name=\"since\" value=\"{}\" size=\"5\"></label> \
         <label><input type=\"checkbox\" name=\"failed\" value=\"1\"{}> failed only</label> \
         <button type=\"submit\">Filter</button></form>\
         <table id=\"jobs\"><thead><tr><th>Ended</th><th>Agent</th><th>Outcome</th><th>Stage</th>\
         <th>Gen</th><th>Try</th><th>Mode</th><th>Media</th><th>Speed</th><th>Captions</th>\
         <th>File</th><th>Message</th></tr></thead><tbody>",
        esc(f.agent.as_deref().unwrap_or("")),
        esc(f.file.as_deref().unwrap_or("")),
        esc(&since),
        if failed { " checked" } else { "" }
    );
    for j in &reply.jobs {
        let speed = if j.outcome == "converted" && j.wall_secs > 0.0 {
            format!("{:.1}x", j.media_secs / j.wall_secs)
        } else {
            "-".into()
        };
        let _ = write!(
            body,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.0}s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.outcome),
            time(j.ended_at_ms),
            esc(&j.agent_id),
            esc(&j.outcome),
            esc(&j.failed_stage),
            j.generation,
            j.attempt,
            esc(&j.mode),
            j.media_secs,
            speed,
            esc(&j.captions),
            esc(&j.file),
            esc(&j.message)
        );
    }
    body.push_str("</tbody></table>");
    if reply.truncated {
        body.push_str("<p>More attempts match: narrow the filters.</p>");
    }
    Html(page("Job history", Some(&login), &body)).into_response()
}

/// `GET /charts`: media hours per day, failure rate per revision, speed distribution (drawn
/// by the page's script from `/api/charts`).
pub async fn charts(State(c): S, headers: HeaderMap) -> Response {
    let Some(login) = c.login(&headers) else {
        return to_login();
    };
    let body = "<p>The last 30 days.</p>\
        <h2>Media converted per day (hours)</h2><div class=\"chart\" id=\"chart-hours\"></div>\
        <h2>Failure rate per revision</h2><div class=\"chart\" id=\"chart-failures\"></div>\
        <h2>Speed distribution (converted attempts, x real time)</h2><div class=\"chart\" id=\"chart-speed\"></div>";
    Html(page("Charts", Some(&login), body)).into_response()
}
