//! The Prometheus scrape endpoint: `GET /metrics` answers the text exposition format
//! (version 0.0.4) of the program's metrics; anything else is 404.
//!
//! # Concurrency
//! One accept loop (a tokio task) serves each connection in its own task: read the request
//! head (bounded to 8 KiB and 5 s), encode the registry, write the answer, close. Encoding takes
//! the registry's read lock only for the time of one gather. The loop ends when the shutdown
//! token is cancelled.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{Encoder, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

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
        loop {
            let conn = tokio::select! {
                _ = shutdown.cancelled() => return,
                c = self.listener.accept() => c,
            };
            match conn {
                Ok((stream, _)) => {
                    let registry = self.registry.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), answer(stream, &registry))
                                .await;
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

/// The exposition text of `registry`.
pub fn render(registry: &prometheus::Registry) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        return format!("# cannot encode the metrics: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

async fn answer(mut stream: TcpStream, registry: &prometheus::Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "GET" && (path == "/metrics" || path == "/") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(registry),
        )
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_owned(),
        )
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
