//! The web console (`[web] listen`, off by default): the fleet live, the rollout with its
//! steps and gates, each revision's manifest and its diff against the previous one, the job
//! history with filters, charts, and for operators pause/resume of an agent and
//! promote/abort/undo of a rollout, each after a confirmation. Served by the controller from
//! its binary (pages, script, style and the vendored uPlot chart library are compiled in: no
//! CDN, it works on an isolated network), over TLS with the admin API's certificate when the
//! controller has one.
//!
//! # Security
//! Login is a POST of an admin-API token ([`session`]), throttled per peer and overall
//! ([`throttle`]: failures only; a failure is logged with the peer, never the token); the browser gets an `HttpOnly`,
//! `SameSite=Strict` session cookie, never the token, and no token ever travels in a URL.
//! Every read and action goes through the admin API ([`crate::admin::Admin`]) as that token:
//! the same roles (viewer < operator < admin), the same audit trail. Mutating requests need the
//! session's CSRF token in `X-CSRF-Token` and, when the browser sends an `Origin`, one that
//! names this host. Everything agents or operators wrote is HTML-escaped on the server
//! ([`html`]); the script never builds markup from data. Each response carries a strict
//! Content-Security-Policy (scripts and styles from this origin only), `X-Frame-Options: DENY`,
//! `nosniff`, `no-referrer` and `no-store`.
//!
//! # Theory of operation
//! axum serves the routes on the console's own listener ([`tls`]); handlers are short and
//! await the admin API or the store (on the blocking pool). The live view is one
//! server-sent-events stream per open page ([`api::events`]): after every registry change
//! (at most four times a second) and every two seconds, it renders the fleet rows and the
//! rollout section (escaped) and sends them; the page swaps them in. A stream ends when its
//! session does or at shutdown.

mod api;
pub mod diff;
pub mod html;
mod pages;
pub mod session;
pub mod throttle;
pub mod tls;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::registry::Registry;
use crate::store::Store;
use session::{Login, Sessions};

/// What the console's handlers share.
#[derive(Debug)]
pub struct Console {
    admin: Admin,
    registry: Arc<Registry>,
    store: Arc<Store>,
    sessions: Sessions,
    /// Failed logins per peer and overall ([`throttle`]).
    throttle: throttle::Throttle,
    /// Served over TLS (cookies are then `Secure`).
    secure: bool,
    shutdown: CancellationToken,
}

impl Console {
    /// The console over the controller's admin API, registry and store.
    pub fn new(
        admin: Admin,
        registry: Arc<Registry>,
        store: Arc<Store>,
        secure: bool,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            admin,
            registry,
            store,
            sessions: Sessions::default(),
            throttle: throttle::Throttle::default(),
            secure,
            shutdown,
        }
    }

    /// The login of the request's session cookie.
    fn login(&self, headers: &HeaderMap) -> Option<Login> {
        let cookie = headers.get(header::COOKIE)?.to_str().ok()?;
        self.sessions.get(session::cookie_value(cookie)?)
    }
}

/// A tonic request carrying `login`'s token, for the admin API.
fn request<T>(login: &Login, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    if let Ok(v) = format!("Bearer {}", login.token).parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// An admin API refusal or failure as an HTTP answer (plain text, the API's message).
fn status_response(s: &tonic::Status) -> Response {
    use tonic::Code;
    let code = match s.code() {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, s.message().to_owned()).into_response()
}

/// The security headers of every answer.
async fn harden(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    res
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/rollout", get(pages::rollout))
        .route("/revisions", get(pages::revisions))
        .route("/revisions/{generation}", get(pages::revision))
        .route("/jobs", get(pages::jobs))
        .route("/charts", get(pages::charts))
        .route("/events", get(api::events))
        .route("/api/charts", get(api::charts))
        .route("/api/agents/{id}/{verb}", post(api::agent_action))
        .route("/api/rollout/{verb}", post(api::rollout_action))
        .route("/assets/{name}", get(api::asset))
        .layer(axum::middleware::from_fn(harden))
        .with_state(console)
}

/// Serves the console on `listener` (TLS with `tls`) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    console: Arc<Console>,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    let secure = tls.is_some();
    let incoming = match tls::incoming(listener, tls, shutdown.clone()) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "the web console cannot serve");
            return;
        }
    };
    tracing::info!(addr = ?addr, tls = secure, "web console serving");
    let app = router(console);
    let app = app.into_make_service_with_connect_info::<tls::PeerAddr>();
    let served = axum::serve(incoming, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the web console failed");
    }
}
