//! Loopback ports for the servers a test starts (controller, agent control API, metrics).

/// A loopback port that was free a moment ago (another process may still take it: start the
/// server soon, and prefer port 0 where the server reports the port it bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}
