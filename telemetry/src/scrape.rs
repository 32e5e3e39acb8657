//! The Prometheus scrape endpoint: `GET /metrics` (and `HEAD`) answers the text exposition
//! format (version 0.0.4) of the program's metrics; any other path is 404.
//!
//! The HTTP is not hand-written: requests are routed by `axum`'s router and each connection is
//! driven by `hyper`'s HTTP/1 server, both already in the build through tonic.
//!
//! # Concurrency
//! One accept loop (a tokio task) serves each connection in its own task, for at most 5 s and
//! one request (no keep-alive: a scraper connects per scrape). Encoding takes the registry's
//! read lock only for the time of one gather. The loop ends when the shutdown token is
//! cancelled; a connection being served then finishes on its own.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of the text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long one connection may take, request and answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A bound scrape endpoint, not yet serving.
#[derive(Debug)]
pub struct ScrapeEndpoint {
    listener: TcpListener,
    registry: prometheus::Registry,
}

impl ScrapeEndpoint {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, registry: prometheus::Registry) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, registry })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) {
        let app = router(self.registry);
        loop {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = self.listener.accept() => c,
            };
            match conn {
                Ok((stream, _)) => {
                    let service = TowerToHyperService::new(app.clone());
                    tokio::spawn(async move {
                        let mut http = hyper::server::conn::http1::Builder::new();
                        http.keep_alive(false);
                        let served = http.serve_connection(TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, served).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("metrics endpoint: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// `/metrics` (and `/`, as before) answer the exposition; anything else is 404.
fn router(registry: prometheus::Registry) -> Router {
    let metrics = move || {
        let text = render(&registry);
        async move { ([(header::CONTENT_TYPE, EXPOSITION)], text) }
    };
    Router::new()
        .route("/metrics", get(metrics.clone()))
        .route("/", get(metrics))
        .fallback(not_found)
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found: the metrics are at /metrics\n",
    )
}

/// The exposition text of `registry`.
pub fn render(registry: &prometheus::Registry) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        return format!("# cannot encode the metrics: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `request` as it is and reads the answer to the end (the server closes).
    async fn ask(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .expect("the server closes the connection after one answer")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn metrics_head_and_not_found_over_real_http() {
        let registry = prometheus::Registry::new();
        let counter = prometheus::IntCounter::new("h264_test_total", "A test counter").unwrap();
        counter.inc();
        registry.register(Box::new(counter)).unwrap();
        let endpoint = ScrapeEndpoint::bind("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        let addr = endpoint.local_addr();
        let stop = CancellationToken::new();
        let server = tokio::spawn(endpoint.serve(stop.clone()));

        // No `Connection: close`: the answer still ends the connection.
        let got = ask(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains(EXPOSITION), "{head}");
        assert!(body.contains("h264_test_total 1"), "{body}");

        let got = ask(addr, "HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
        let (head, body) = got.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(body.is_empty(), "{body}");

        let got = ask(addr, "GET /nothing HTTP/1.1\r\nHost: test\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 404 Not Found"), "{got}");
        assert!(
            got.ends_with("not found: the metrics are at /metrics\n"),
            "{got}"
        );

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
