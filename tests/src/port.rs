//! A loopback port held for a server that comes and goes, with no guessing: the test binds a
//! socket to `127.0.0.1:0` with `SO_REUSEPORT` and never listens on it. While it is held no
//! other socket can take the port (only one that also sets `SO_REUSEPORT`, as the server does);
//! while the server is not running, connections are refused, as with a server that is down. The
//! port is the server's for as long as the [`HeldPort`] lives.

use socket2::{Domain, Socket, Type};

/// A held loopback port; released when dropped.
#[derive(Debug)]
pub struct HeldPort {
    _socket: Socket,
    port: u16,
}

impl HeldPort {
    /// Holds a free loopback port (the system picks it).
    pub fn new() -> HeldPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
        socket.bind(&any.into()).expect("bind a loopback port");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound socket has an address")
            .port();
        HeldPort {
            _socket: socket,
            port,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Holds a port for the rest of the test process: an address that refuses connections.
    pub fn refusing_forever() -> u16 {
        let held = HeldPort::new();
        let port = held.port;
        std::mem::forget(held);
        port
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        HeldPort::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_refuses_and_a_reuseport_server_can_listen_on_it() {
        let held = HeldPort::new();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], held.port()));
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            std::net::TcpListener::bind(addr).is_err(),
            "nobody else takes it"
        );
        let server = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        server.set_reuse_port(true).unwrap();
        server.bind(&addr.into()).unwrap();
        server.listen(8).unwrap();
        std::net::TcpStream::connect(addr).unwrap();
        drop(server);
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
