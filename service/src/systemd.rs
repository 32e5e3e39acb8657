//! The service manager's notification protocol (`sd_notify(3)`), by hand.
//!
//! A unit with `Type=notify` hands the service the address of a datagram socket in
//! `$NOTIFY_SOCKET`: a file-system path (`/run/systemd/notify`) or, starting with `@`, a Linux
//! abstract socket name. Each notification is one datagram of newline-separated `VAR=value`
//! assignments. What h264create sends:
//!
//! | when | message |
//! | ---- | ------- |
//! | start-up is done (agent: after the start-up reconcile; controller: once it listens) | `READY=1` and `STATUS=…` ([`ready`]) |
//! | a long start-up still makes progress | `EXTEND_TIMEOUT_USEC=…` and `STATUS=…` ([`extend_timeout`]) |
//! | every half `$WATCHDOG_USEC` while the process runs (`WatchdogSec=`) | `WATCHDOG=1` ([`supervise`]) |
//! | shutdown begins (SIGTERM) | `STOPPING=1` and `STATUS=…` ([`supervise`]) |
//!
//! Without `$NOTIFY_SOCKET` nothing is sent and nothing fails: the same binary runs from a
//! terminal, in a container or under a unit. A notification that cannot be sent is logged once
//! and never stops the program. `$WATCHDOG_PID`, when set, names the process the watchdog is
//! meant for; another process (a child that inherited the environment) sends no pings.
//!
//! The watchdog pings come from a task on the program's tokio runtime, the runtime that does
//! the work: a runtime that stops scheduling tasks stops the pings, and systemd restarts the
//! service after `WatchdogSec=`. Pings go on during a graceful shutdown, until the process
//! exits.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The variable holding the notification socket's address.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The variable holding the watchdog timeout in microseconds (`WatchdogSec=`).
pub const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
/// The variable naming the process the watchdog is for.
pub const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Set once a send failed, so that a broken socket is reported once, not at every ping.
static SEND_FAILED: AtomicBool = AtomicBool::new(false);

/// Sends `state` (`VAR=value` lines) to the socket in `$NOTIFY_SOCKET`. `Ok(false)`: the
/// variable is not set (not started by a service manager), nothing was sent.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => send_to(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` as one datagram to `socket`: an absolute path, or `@name` for an abstract
/// socket.
pub fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        Some(b'/') => SocketAddr::from_pathname(socket)?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{NOTIFY_SOCKET}={}: neither an absolute path nor an abstract socket (@name)",
                    socket.to_string_lossy()
                ),
            ))
        }
    };
    let datagram = UnixDatagram::unbound()?;
    let sent = datagram.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

/// [`notify`], logging a failure (once per process) instead of returning it.
fn notify_logged(state: &str) {
    if let Err(e) = notify(state) {
        if !SEND_FAILED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                socket = ?std::env::var_os(NOTIFY_SOCKET),
                "cannot notify the service manager; the program goes on without"
            );
        }
    }
}

/// `STATUS=` with the text on one line (a newline would start another assignment).
fn status_line(status: &str) -> String {
    let one_line: String = status
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("STATUS={}", one_line.trim())
}

/// Start-up is done: `READY=1` with a status line (`systemctl status` shows it).
pub fn ready(status: &str) {
    notify_logged(&format!("READY=1\n{}", status_line(status)));
}

/// A status line for `systemctl status`.
pub fn status(status: &str) {
    notify_logged(&status_line(status));
}

/// A long start-up still makes progress: systemd waits `extra` more (from now) before it
/// gives up on `READY=1` (`TimeoutStartSec=`).
pub fn extend_timeout(extra: Duration, status: &str) {
    notify_logged(&format!(
        "EXTEND_TIMEOUT_USEC={}\n{}",
        extra.as_micros(),
        status_line(status)
    ));
}

/// Shutdown has begun: `STOPPING=1`.
pub fn stopping(status: &str) {
    notify_logged(&format!("STOPPING=1\n{}", status_line(status)));
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set (and
/// `$WATCHDOG_PID`, when set, is this process).
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var(WATCHDOG_USEC).ok();
    let pid = std::env::var(WATCHDOG_PID).ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] from the variables' values and this process's id.
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own) {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Under a service manager (`$NOTIFY_SOCKET` set): spawns the task that sends `WATCHDOG=1` at
/// [`watchdog_interval`] (when the unit has `WatchdogSec=`) and `STOPPING=1` when `shutdown`
/// is cancelled. Call from inside the tokio runtime, and keep the returned [`Supervisor`] until
/// the program is done: dropping it stops the pings and sends `STOPPING=1` if the task has not
/// yet (a shutdown so quick that the program ends before the task runs).
pub fn supervise(shutdown: CancellationToken) -> Supervisor {
    let stopping_sent = Arc::new(AtomicBool::new(false));
    if std::env::var_os(NOTIFY_SOCKET).is_none_or(|s| s.is_empty()) {
        return Supervisor {
            task: None,
            stopping_sent,
        };
    }
    let interval = watchdog_interval();
    if let Some(every) = interval {
        tracing::info!(?every, "systemd watchdog: sending WATCHDOG=1");
    }
    let sent = stopping_sent.clone();
    let task = tokio::spawn(async move {
        let stop = || {
            if !sent.swap(true, Ordering::SeqCst) {
                stopping("shutting down");
            }
        };
        let Some(every) = interval else {
            shutdown.cancelled().await;
            stop();
            return;
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping_seen = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping_seen => {
                    stop();
                    stopping_seen = true;
                }
                _ = tick.tick() => notify_logged("WATCHDOG=1"),
            }
        }
    });
    Supervisor {
        task: Some(task),
        stopping_sent,
    }
}

/// The watchdog and stopping notifications of a program ([`supervise`]); keep it while the
/// program runs.
#[derive(Debug)]
#[must_use = "dropping the Supervisor stops the watchdog pings"]
pub struct Supervisor {
    task: Option<JoinHandle<()>>,
    stopping_sent: Arc<AtomicBool>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if !self.stopping_sent.swap(true, Ordering::SeqCst) {
                stopping("stopped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_half_the_timeout_for_this_process_only() {
        let half = Some(Duration::from_millis(1500));
        assert_eq!(watchdog_interval_from(Some("3000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("3000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("3000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, Some("7"), 7), None);
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(status_line("a\nb\tc "), "STATUS=a b c");
    }

    /// The only test of this crate that sets `NOTIFY_SOCKET` (the variable is process-wide).
    #[tokio::test]
    async fn stopping_is_sent_once_even_when_the_program_ends_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        std::env::set_var(NOTIFY_SOCKET, &path);
        std::env::remove_var(WATCHDOG_USEC);
        let shutdown = CancellationToken::new();
        let supervisor = supervise(shutdown.clone());
        shutdown.cancel();
        drop(supervisor); // before the task has had a chance to run
        std::env::remove_var(NOTIFY_SOCKET);
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"STOPPING=1\n"), "{:?}", &buf[..n]);
        assert!(server.recv(&mut buf).is_err(), "a second STOPPING=1");
    }

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let name = format!("h264-service-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        let err = send_to(OsStr::new("relative/socket"), "READY=1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
