//! The console's listener: the controller's own accept loop ([`crate::listen::incoming`]: the
//! connection cap, the handshake timeout, TLS with the controller's certificate when it has
//! one) handed to axum. Browsers are not asked for a client certificate, and the TLS
//! configuration offers HTTP/1.1 by ALPN.
//!
//! # Theory of operation
//! [`crate::listen::incoming`] accepts on its own task and sends each connection that finished
//! its handshake through a bounded channel; [`Incoming`] is axum's `Listener` over that
//! channel, and gives axum the peer's address (the login throttle keys on it). At most
//! [`MAX_CONNECTIONS`] console connections are open at once. The accept task ends at shutdown;
//! after it, [`Incoming`] waits forever (axum's graceful shutdown ends the server).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::listen::Conn;

/// Console connections open at most.
pub const MAX_CONNECTIONS: usize = 512;

/// The peer's address, as handlers see it (`ConnectInfo<PeerAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Incoming>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Incoming>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// Ready connections, for `axum::serve`.
pub struct Incoming {
    conns: ReceiverStream<std::io::Result<Conn>>,
    local: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.conns.next().await {
                Some(Ok(conn)) => {
                    let peer = conn.peer().remote.unwrap_or(self.local);
                    return (conn, peer);
                }
                Some(Err(e)) => tracing::debug!(error = %e, "console connection lost"),
                // The accept task ended (shutdown): nothing more comes.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Starts accepting on `listener` (TLS when `tls` is given).
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<Incoming> {
    let local = listener.local_addr()?;
    let tls = tls.map(|config| {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    let conns = crate::listen::incoming(listener, tls, MAX_CONNECTIONS, shutdown);
    Ok(Incoming { conns, local })
}
