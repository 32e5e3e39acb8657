//! The controller under a service manager: systemd's notification protocol received on a real
//! datagram socket made by the test. READY=1 once it listens (with the address in STATUS=),
//! WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 at SIGTERM, then a clean exit.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use h264_testkit::notify::NotifySocket;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn ready_once_listening_watchdog_at_half_the_interval_stopping_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut socket = NotifySocket::at_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_h264-controller"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", socket.address())
        .env("WATCHDOG_USEC", "300000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    let ready = socket.wait_for("READY=1", WAIT);
    assert_eq!(
        ready.value("STATUS"),
        Some(format!("listening on {listening}").as_str())
    );
    // It really listens when it says so.
    std::net::TcpStream::connect(&listening).unwrap();

    let pings: Vec<Instant> = socket
        .collect(Duration::from_millis(1200))
        .into_iter()
        .filter(|n| n.has("WATCHDOG=1"))
        .map(|n| n.at)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (4..=12).contains(&pings.len()),
        "pings every 150ms expected: {gaps:?}"
    );
    let mut sorted = gaps.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median >= Duration::from_millis(100) && median <= Duration::from_millis(250),
        "pings every {median:?} (median), not every 150ms: {gaps:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    socket.wait_for("STOPPING=1", WAIT);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the controller did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
