//! A service manager's notification socket, as systemd makes it for a `Type=notify` unit: a
//! datagram socket bound by the test (a file-system path or a Linux abstract name), whose
//! address goes to the program in `NOTIFY_SOCKET`. Every datagram is kept with the time it
//! arrived, so tests can check what was said, in which order and how often.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One notification: its `VAR=value` lines and when it arrived.
#[derive(Debug, Clone)]
pub struct Notification {
    /// When the datagram was received.
    pub at: Instant,
    /// The datagram's text.
    pub text: String,
}

impl Notification {
    /// Whether one of its lines is exactly `line` (`READY=1`).
    pub fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }

    /// The value of `VAR=` in it, if any.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(var)?.strip_prefix('='))
    }
}

/// A bound notification socket and everything received on it so far.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    address: String,
    received: Vec<Notification>,
    _dir: Option<tempfile::TempDir>,
}

impl NotifySocket {
    /// A socket at a path in a new temporary folder (`NOTIFY_SOCKET=/tmp/.../notify`).
    pub fn at_path() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        NotifySocket::new(socket, path.display().to_string(), Some(dir))
    }

    /// A socket with a unique Linux abstract name (`NOTIFY_SOCKET=@name`).
    pub fn abstract_name() -> NotifySocket {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "h264-testkit-notify-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        NotifySocket::new(socket, format!("@{name}"), None)
    }

    fn new(socket: UnixDatagram, address: String, dir: Option<tempfile::TempDir>) -> Self {
        NotifySocket {
            socket,
            address,
            received: Vec::new(),
            _dir: dir,
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Receives for at most `timeout`; `None` when nothing came.
    fn receive(&mut self, timeout: Duration) -> Option<Notification> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = vec![0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                let n = Notification {
                    at: Instant::now(),
                    text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                };
                self.received.push(n.clone());
                Some(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("receiving on the notification socket: {e}"),
        }
    }

    /// Receives until a notification has the line `line` (`READY=1`) and returns it; panics
    /// after `timeout` with everything received.
    pub fn wait_for(&mut self, line: &str, timeout: Duration) -> Notification {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no `{line}` on the notification socket within {timeout:?}; received: {:#?}",
                    self.received
                );
            }
            if let Some(n) = self.receive(left) {
                if n.has(line) {
                    return n;
                }
            }
        }
    }

    /// Receives everything that comes during `period`.
    pub fn collect(&mut self, period: Duration) -> Vec<Notification> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            if let Some(n) = self.receive(left) {
                got.push(n);
            }
        }
    }

    /// Everything received so far, oldest first.
    pub fn received(&self) -> &[Notification] {
        &self.received
    }
}
