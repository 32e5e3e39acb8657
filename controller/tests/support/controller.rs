//! Starts the real `h264-controller` binary for a test, on `127.0.0.1:0` (it prints the address
//! it bound), and stops it
//! (SIGTERM, or SIGKILL to simulate a crash). Reusable by other crates' tests with
//! `#[path = "../../../controller/tests/support/controller.rs"] mod controller;` in their
//! `tests/it/main.rs` (they need `nix` as a dev-dependency) and the path of the binary:
//!
//! ```ignore
//! let state = tempfile::tempdir().unwrap();
//! let mut c = ControllerProcess::start(Path::new(env!("CARGO_BIN_EXE_h264-controller")), state.path());
//! let url = c.url();                       // http://127.0.0.1:PORT
//! c.restart();                             // same port, same state folder
//! c.kill();                                // SIGKILL: as if the machine died
//! // With a config file too (its `[alerts]`, say); --listen and --state-dir still win:
//! let c = ControllerProcess::start_with_config(bin, state.path(), Some(config.as_path()));
//! ```
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long the controller may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The admin token file of each controller this test process started, by URL, so a test's
/// `fleetctl` helper that only knows the URL can log in ([`token_file_for`]).
static TOKEN_FILES: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());

/// The admin token file of the controller at `url` (started by this process); for any other
/// URL, a file with a token no controller knows (so that fleetctl gets as far as connecting).
pub fn token_file_for(url: &str) -> PathBuf {
    if let Some(path) = TOKEN_FILES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(url)
    {
        return path.clone();
    }
    let path = std::env::temp_dir().join(format!("h264-test-unknown-{}.token", std::process::id()));
    if !path.exists() {
        std::fs::write(&path, "h264ct_known-to-no-controller\n").expect("write a token file");
    }
    path
}

/// A running controller process; killed when dropped.
#[derive(Debug)]
pub struct ControllerProcess {
    bin: PathBuf,
    /// `--config FILE`, when given.
    config: Option<PathBuf>,
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state folder.
    pub state_dir: PathBuf,
    /// Where its stderr (the log) goes, appended across restarts.
    pub log: PathBuf,
    /// Further arguments (TLS files, say), kept across restarts.
    extra: Vec<String>,
    /// Its stdout after the `listening on` line.
    stdout: mpsc::Receiver<String>,
}

impl ControllerProcess {
    /// Starts `bin` on `127.0.0.1:0` with `state_dir` (created if needed).
    pub fn start(bin: &Path, state_dir: &Path) -> Self {
        Self::start_on(bin, state_dir, "127.0.0.1:0")
    }

    /// Starts `bin` listening on `listen`.
    pub fn start_on(bin: &Path, state_dir: &Path, listen: &str) -> Self {
        Self::spawn_new(bin, state_dir, listen, None)
    }

    /// Starts `bin` on `127.0.0.1:0` with `state_dir` and, when given, `--config config` (the
    /// command-line listen address and state folder override the file's).
    pub fn start_with_config(bin: &Path, state_dir: &Path, config: Option<&Path>) -> Self {
        Self::spawn_new(bin, state_dir, "127.0.0.1:0", config)
    }

    /// Starts `bin` on `127.0.0.1:0` with `state_dir` and further arguments (`--tls-cert`...).
    pub fn start_with_args(bin: &Path, state_dir: &Path, extra: &[String]) -> Self {
        Self::spawn_with(bin, state_dir, "127.0.0.1:0", None, extra)
    }

    /// Starts `bin` on `127.0.0.1:0` with `state_dir`, `--config config` and further arguments.
    pub fn start_with_config_and_args(
        bin: &Path,
        state_dir: &Path,
        config: &Path,
        extra: &[String],
    ) -> Self {
        Self::spawn_with(bin, state_dir, "127.0.0.1:0", Some(config), extra)
    }

    fn spawn_new(bin: &Path, state_dir: &Path, listen: &str, config: Option<&Path>) -> Self {
        Self::spawn_with(bin, state_dir, listen, config, &[])
    }

    fn spawn_with(
        bin: &Path,
        state_dir: &Path,
        listen: &str,
        config: Option<&Path>,
        extra: &[String],
    ) -> Self {
        let log = state_dir.with_extension("log");
        let (child, addr, stdout) = spawn(bin, state_dir, listen, &log, config, extra);
        TOKEN_FILES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("http://{addr}"), state_dir.join("admin.token"));
        Self {
            bin: bin.to_path_buf(),
            config: config.map(Path::to_path_buf),
            child: Some(child),
            addr,
            state_dir: state_dir.to_path_buf(),
            log,
            extra: extra.to_vec(),
            stdout,
        }
    }

    /// The address of its web console (`[web] listen`, port 0 included), from the
    /// `web console on ADDR` line it prints after `listening on` (ask before
    /// [`metrics_addr`](Self::metrics_addr), which reads past it).
    pub fn web_addr(&self) -> SocketAddr {
        loop {
            let line = self
                .stdout
                .recv_timeout(START_TIMEOUT)
                .unwrap_or_else(|_| panic!("h264-controller printed no `web console on` line"));
            if let Some(addr) = line.strip_prefix("web console on ") {
                return addr.trim().parse().expect("an address");
            }
        }
    }

    /// The address of its Prometheus endpoint (`[telemetry] metrics_listen`, port 0 included),
    /// from the `metrics on http://ADDR/metrics` line it prints after `listening on`.
    pub fn metrics_addr(&self) -> SocketAddr {
        loop {
            let line = self
                .stdout
                .recv_timeout(START_TIMEOUT)
                .unwrap_or_else(|_| panic!("h264-controller printed no `metrics on` line"));
            if let Some(addr) = line
                .strip_prefix("metrics on http://")
                .and_then(|a| a.strip_suffix("/metrics"))
            {
                return addr.parse().expect("an address");
            }
        }
    }

    /// `https://127.0.0.1:PORT`, for a controller started with TLS.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `http://ADDR`, for clients and `fleetctl --controller`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin token the controller wrote at its first start.
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("admin.token")
    }

    /// The admin token itself.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .expect("the controller wrote admin.token")
            .trim()
            .to_owned()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits (at most 15 s) for it to exit; returns its status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "h264-controller did not stop within 15 s of SIGTERM ({status:?}); log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no chance to clean up), and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it (SIGTERM) and starts it again on the same address and state folder.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts it again after [`stop`](Self::stop) or [`kill`](Self::kill), on the same address.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the controller is still running");
        let (child, addr, stdout) = spawn(
            &self.bin,
            &self.state_dir,
            &self.addr.to_string(),
            &self.log,
            self.config.as_deref(),
            &self.extra,
        );
        assert_eq!(addr, self.addr);
        self.child = Some(child);
        self.stdout = stdout;
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(
    bin: &Path,
    state_dir: &Path,
    listen: &str,
    log: &Path,
    config: Option<&Path>,
    extra: &[String],
) -> (Child, SocketAddr, mpsc::Receiver<String>) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("controller log file");
    // No retry: the controller binds 127.0.0.1:0 (or, restarted, the address it had, which its
    // stopped predecessor released), so "address in use" is a real failure.
    let mut cmd = Command::new(bin);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let mut child = cmd
        .args(["--listen", listen, "--state-dir"])
        .arg(state_dir)
        .args(extra)
        .env("RUST_LOG", "info,h264_controller=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.try_clone().expect("log handle"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => {
            let addr = line
                .strip_prefix("listening on ")
                .and_then(|a| a.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected first line from h264-controller: {line}"));
            (child, addr, rx)
        }
        Err(_) => {
            let status = child.wait().ok();
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("h264-controller did not start ({status:?}); log:\n{log_text}");
        }
    }
}
