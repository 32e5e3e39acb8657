//! The controller's listeners (the gRPC services and the web console, [`crate::web::tls`]):
//! TCP connections, TLS (rustls) when configured, and who the peer
//! is, handed to tonic as the connection's `ConnectInfo` ([`Peer`]).
//!
//! # Theory of operation
//! One task accepts connections. Each connection takes a permit of a semaphore of
//! `max_connections` (held until the connection closes; past it, new connections are closed at
//! once and logged) and gets its own task for the handshake, bounded by [`HANDSHAKE`]: the TLS
//! handshake, or for plaintext the first bytes of the HTTP/2 preface. A peer that connects and
//! says nothing is dropped after that, so idle sockets cannot pile up. The client certificate
//! (verified by rustls against the client CA) is read once per connection into an
//! [`Identity`]; handlers find it in the request's extensions ([`peer_of`]). Finished
//! connections go to tonic through a bounded channel; the accept task ends with `shutdown`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use h264_trust::Identity;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// How long a new connection may take to finish its TLS handshake (or to start speaking).
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// Who is at the other end of a connection.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// Its address.
    pub remote: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The identity its verified client certificate names, if it presented one.
    pub identity: Option<Identity>,
    /// It presented a verified certificate that names no identity of ours.
    pub anonymous_cert: bool,
}

/// The peer of a request (a default, anonymous one if tonic gave none).
pub fn peer_of<T>(request: &tonic::Request<T>) -> Peer {
    request
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or_default()
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// One accepted connection.
pub struct Conn {
    io: Io,
    peer: Peer,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    /// Who is at the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;
    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts connections on `listener` until `shutdown`, as a stream for tonic's
/// `serve_with_incoming_shutdown`.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    shutdown: CancellationToken,
) -> ReceiverStream<std::io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(256);
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(max_connections));
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: wait a little instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%remote, max_connections, "too many connections: closing a new one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, handshake(stream, remote, acceptor)).await {
                    Ok(Ok((io, peer))) => {
                        let _ = tx
                            .send(Ok(Conn {
                                io,
                                peer,
                                _permit: permit,
                            }))
                            .await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "handshake failed"),
                    Err(_) => tracing::debug!(%remote, "no handshake within {HANDSHAKE:?}: closed"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: Option<TlsAcceptor>,
) -> std::io::Result<(Io, Peer)> {
    let mut peer = Peer {
        remote: Some(remote),
        ..Peer::default()
    };
    let Some(acceptor) = acceptor else {
        // Wait for the first byte of the preface, so a silent socket is closed in time.
        let mut byte = [0u8; 1];
        if stream.peek(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        return Ok((Io::Plain(stream), peer));
    };
    let tls = acceptor.accept(stream).await?;
    peer.tls = true;
    if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        peer.identity = Identity::from_cert_der(cert);
        peer.anonymous_cert = peer.identity.is_none();
    }
    Ok((Io::Tls(Box::new(tls)), peer))
}
