//! The console's live stream (server-sent events), its chart data, the operator's actions
//! (POST, CSRF-checked) and the embedded assets.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use h264_proto::v1::fleet_admin_server::FleetAdmin;
use h264_proto::v1::{
    agent_control_request, rollout_request, AgentControlRequest, ListAgentsRequest, PauseRequest,
    ReportRequest, ResumeRequest, RolloutAbort, RolloutPause, RolloutPromote, RolloutRequest,
    RolloutResume, RolloutStatusRequest, RolloutUndo,
};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;

use super::html::{fleet_rows, rollout as rollout_html};
use super::session::{self, Login};
use super::{request, status_response, Console};

type S = State<Arc<Console>>;

/// How often the live stream refreshes when nothing changed (the rollout's timers move on).
const REFRESH: Duration = Duration::from_secs(2);
/// The shortest time between two updates of one stream.
const THROTTLE: Duration = Duration::from_millis(250);

static CONSOLE_JS: &str = include_str!("../../assets/console.js");
static CONSOLE_CSS: &str = include_str!("../../assets/console.css");
static UPLOT_JS: &str = include_str!("../../assets/vendor/uplot/uPlot.iife.min.js");
static UPLOT_CSS: &str = include_str!("../../assets/vendor/uplot/uPlot.min.css");

/// `GET /assets/{name}`: the script, the style and uPlot, from the binary.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "console.js" => (CONSOLE_JS, "text/javascript; charset=utf-8"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
    session::cookie_value(cookie).map(str::to_owned)
}

/// `GET /events`: the fleet rows and the rollout section, rendered, after every change.
pub async fn events(State(c): S, headers: HeaderMap) -> Response {
    let (Some(login), Some(id)) = (c.login(&headers), session_id(&headers)) else {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(4);
    let console = c.clone();
    tokio::spawn(async move {
        let mut changes = console.registry.subscribe();
        loop {
            if console.sessions.get(&id).is_none() {
                return;
            }
            changes.borrow_and_update();
            let Some(events) = render(&console, &login).await else {
                return;
            };
            for e in events {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(THROTTLE).await;
            tokio::select! {
                _ = console.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The live events for `login`; none when its token no longer works.
async fn render(c: &Console, login: &Login) -> Option<Vec<Event>> {
    let agents = c
        .admin
        .list_agents(request(login, ListAgentsRequest::default()))
        .await
        .ok()?
        .into_inner()
        .agents;
    let status = c
        .admin
        .rollout(request(
            login,
            RolloutRequest {
                verb: Some(rollout_request::Verb::Status(RolloutStatusRequest {})),
            },
        ))
        .await
        .ok()?
        .into_inner();
    Some(vec![
        Event::default()
            .event("fleet")
            .data(fleet_rows(&agents, login.role)),
        Event::default()
            .event("rollout")
            .data(rollout_html(&status, login.role)),
    ])
}

/// The login of a mutating request whose CSRF token and origin check out.
fn mutation(c: &Console, headers: &HeaderMap) -> Result<Login, Box<Response>> {
    let login = c
        .login(headers)
        .ok_or_else(|| Box::new((StatusCode::UNAUTHORIZED, "log in first").into_response()))?;
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !session::same(sent, &login.csrf) {
        let refused = (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page",
        );
        return Err(Box::new(refused.into_response()));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        if origin_host != host {
            return Err(Box::new(
                (StatusCode::FORBIDDEN, "cross-origin request refused").into_response(),
            ));
        }
    }
    Ok(login)
}

/// `POST /api/agents/{id}/{pause|resume}` (operator).
pub async fn agent_action(
    State(c): S,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let login = match mutation(&c, &headers) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let body = match verb.as_str() {
        "pause" => agent_control_request::Body::Pause(PauseRequest {
            cancel_running: false,
        }),
        "resume" => agent_control_request::Body::Resume(ResumeRequest {}),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let req = AgentControlRequest {
        agent_id: id.clone(),
        body: Some(body),
    };
    match c.admin.agent_control(request(&login, req)).await {
        Ok(_) => (StatusCode::OK, format!("agent {id}: {verb} done")).into_response(),
        Err(s) => status_response(&s),
    }
}

/// `POST /api/rollout/{promote|abort|undo|pause|resume}` (operator).
pub async fn rollout_action(State(c): S, headers: HeaderMap, Path(verb): Path<String>) -> Response {
    let login = match mutation(&c, &headers) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    use rollout_request::Verb;
    let v = match verb.as_str() {
        "promote" => Verb::Promote(RolloutPromote { full: false }),
        "abort" => Verb::Abort(RolloutAbort {}),
        "undo" => Verb::Undo(RolloutUndo { to_generation: 0 }),
        "pause" => Verb::Pause(RolloutPause {}),
        "resume" => Verb::Resume(RolloutResume {}),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let req = RolloutRequest { verb: Some(v) };
    match c.admin.rollout(request(&login, req)).await {
        Ok(r) => {
            let r = r.into_inner();
            (
                StatusCode::OK,
                format!(
                    "rollout {verb}: now {} (generation {})",
                    r.phase().name(),
                    r.generation
                ),
            )
                .into_response()
        }
        Err(s) => status_response(&s),
    }
}

/// The chart data's window.
#[derive(Debug, Deserialize)]
pub struct ChartQuery {
    days: Option<u32>,
}

/// What `/api/charts` answers.
#[derive(Debug, Serialize)]
pub struct Charts {
    /// Days (Unix seconds of their midnight) and media hours converted.
    days: Vec<i64>,
    hours: Vec<f64>,
    /// Generations and their failure rates.
    revisions: Vec<u64>,
    failure_rates: Vec<f64>,
    /// Speed buckets (lower bound, x real time) and converted attempts in each.
    speeds: Vec<f64>,
    counts: Vec<u64>,
}

/// `GET /api/charts?days=30`.
pub async fn charts(State(c): S, headers: HeaderMap, Query(q): Query<ChartQuery>) -> Response {
    let Some(login) = c.login(&headers) else {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    };
    let days = i64::from(q.days.unwrap_or(30).clamp(1, 366));
    let since = crate::model::now_ms() - days * 86_400_000;
    let report = |by: &str| ReportRequest {
        since_ms: since,
        by: by.into(),
    };
    let per_day = match c.admin.report(request(&login, report("day"))).await {
        Ok(r) => r.into_inner(),
        Err(s) => return status_response(&s),
    };
    let per_rev = match c.admin.report(request(&login, report("revision"))).await {
        Ok(r) => r.into_inner(),
        Err(s) => return status_response(&s),
    };
    let store = c.store.clone();
    let speeds = tokio::task::spawn_blocking(move || store.speed_histogram(since)).await;
    let speeds = match speeds {
        Ok(Ok(s)) => s,
        _ => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the job history",
            )
                .into_response()
        }
    };
    let day_secs = |d: &str| {
        humantime::parse_rfc3339(&format!("{d}T00:00:00Z"))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    };
    let mut revs: Vec<(u64, f64)> = per_rev
        .rows
        .iter()
        .filter_map(|r| Some((r.key.parse().ok()?, r.failure_rate)))
        .collect();
    revs.sort_by_key(|r| r.0);
    Json(Charts {
        days: per_day.rows.iter().map(|r| day_secs(&r.key)).collect(),
        hours: per_day.rows.iter().map(|r| r.media_hours).collect(),
        revisions: revs.iter().map(|r| r.0).collect(),
        failure_rates: revs.iter().map(|r| r.1).collect(),
        speeds: speeds.iter().map(|s| s.0).collect(),
        counts: speeds.iter().map(|s| s.1).collect(),
    })
    .into_response()
}
