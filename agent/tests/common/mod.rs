//! Harness for the agent's integration tests: a temporary installation (incoming, output and
//! state folders plus an `agent.toml`), the real `h264-agent` binary run `--once` or as a
//! daemon, and the journal read back through the library.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use h264_agent::journal::{JobRecord, JobState, Journal};
use h264_testkit::wait::wait_for;

/// A temporary agent installation.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub input: PathBuf,
    pub output: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    /// `[agent] control` as configured: loopback port 0, so that each agent gets a port of its
    /// own and tests run in parallel; [`Setup::control`] is the address it bound.
    pub control_listen: String,
    /// Extra environment variables for the agent process.
    pub env: Vec<(String, String)>,
}

/// Settings most tests share: fast, and quick to give up.
pub const BASE: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"
min_duration = "1s"

[transcode]
preset = "ultrafast"
crf = 30
stall_timeout = "30s"
max_attempts = 2
retry_backoff = "1s"
retry_backoff_max = "2s"
"#;

impl Setup {
    /// An installation whose config is the watch root plus `sections` (whole TOML sections).
    pub fn new(watch_extra: &str, sections: &str) -> Setup {
        h264_testkit::ffmpeg::require_ffmpeg();
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("incoming");
        let output = dir.path().join("h264");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&input).unwrap();
        let config = dir.path().join("agent.toml");
        let control_listen = "127.0.0.1:0".to_owned();
        let text = format!(
            "[agent]\nstate_dir = '{}'\nworkers = 2\nshutdown_grace = \"10s\"\n\
             control = \"{control_listen}\"\n\n\
             [[watch]]\nsource = '{}'\noutput = '{}'\n{watch_extra}\n{sections}",
            state.display(),
            input.display(),
            output.display()
        );
        std::fs::write(&config, text).unwrap();
        Setup {
            dir,
            input,
            output,
            state,
            config,
            control_listen,
            env: Vec::new(),
        }
    }

    /// The default test installation.
    pub fn basic() -> Setup {
        Setup::new("", BASE)
    }

    fn command(&self) -> Command {
        self.command_with(&self.config)
    }

    fn command_with(&self, config: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_h264-agent"));
        cmd.arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,h264_agent=debug");
        // After the defaults, so that a test can override them (`RUST_LOG` included).
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the agent as a daemon on another configuration path (a file or a folder) and
    /// waits until its control API answers.
    pub fn spawn_with_config(&self, config: &Path) -> Daemon {
        self.answering(self.start_daemon(self.command_with(config)))
    }

    /// Runs `h264-agent --once` to the end.
    pub fn run_once(&self) -> Output {
        let out = self.command().arg("--once").output().unwrap();
        eprintln!(
            "--- agent stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the agent as a daemon and waits until its control API answers.
    pub fn spawn(&self) -> Daemon {
        self.answering(self.spawn_unchecked())
    }

    /// Starts the agent as a daemon; its log goes to `agent-N.log` in the installation.
    pub fn spawn_unchecked(&self) -> Daemon {
        self.start_daemon(self.command())
    }

    /// The address the running agent's control API bound (from `control.addr` in its state
    /// folder).
    pub fn control(&self) -> String {
        h264_agent::control_addr::read(&self.state)
            .unwrap_or_else(|e| panic!("the agent published no control address: {e}"))
            .to_string()
    }

    fn start_daemon(&self, mut cmd: Command) -> Daemon {
        // An earlier daemon's address must not be taken for this one's.
        h264_agent::control_addr::forget(&self.state).unwrap();
        let log = unique(
            self.dir
                .path()
                .join(format!("agent-{}.log", std::process::id())),
        );
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// Waits until `daemon`'s control API answers.
    fn answering(&self, daemon: Daemon) -> Daemon {
        wait_for(
            "the control API",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                let addr = h264_agent::control_addr::read(&self.state).ok()?;
                std::net::TcpStream::connect(addr).ok()
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", daemon.log()));
        daemon
    }

    /// Runs the agent as a daemon and waits for it to exit by itself (it should refuse to run).
    pub fn run_daemon_to_exit(&self, timeout: Duration) -> Output {
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + timeout;
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the agent kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    /// Every journal record.
    pub fn journal(&self) -> Vec<JobRecord> {
        if !self.state.join(h264_agent::journal::FILE_NAME).exists() {
            return Vec::new();
        }
        Journal::open(&self.state).unwrap().all().unwrap()
    }

    /// The journal record of the source `rel`.
    pub fn record(&self, rel: &str) -> Option<JobRecord> {
        self.journal().into_iter().find(|r| r.rel == rel)
    }

    /// Waits until the record of `rel` is in `state`.
    pub fn wait_state(&self, rel: &str, state: JobState, timeout: Duration) -> JobRecord {
        wait_for(
            &format!("{rel} to be {state:?}"),
            timeout,
            Duration::from_millis(50),
            || self.record(rel).filter(|r| r.state == state),
        )
        .unwrap_or_else(|e| panic!("{e}; journal: {:#?}", self.journal()))
    }

    /// The output path of the source `rel`.
    pub fn output_of(&self, rel: &str) -> PathBuf {
        self.output.join(rel).with_extension("mp4")
    }

    /// Files in the output folder (recursively), as relative paths, sorted.
    pub fn output_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        list(&self.output, &self.output, &mut files);
        files.sort();
        files
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut p = path.clone();
    let mut n = 1;
    while p.exists() {
        p = path.with_extension(format!("{n}.log"));
        n += 1;
    }
    p
}

fn list(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            list(base, &p, out);
        } else {
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

/// A running agent; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` to the agent.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits for the agent to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = wait_for(
            "the agent to exit",
            timeout,
            Duration::from_millis(20),
            || child.try_wait().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", self.log()));
        self.child = None;
        status
    }

    /// The FFmpeg processes the agent runs now (its transcodes, by their `-progress` argument).
    pub fn transcoding_ffmpeg(&self) -> Vec<u32> {
        h264_testkit::process::descendants_of(self.pid())
            .into_iter()
            .filter(|pid| {
                h264_testkit::process::cmdline(*pid)
                    .is_some_and(|args| args.iter().any(|a| a == "-progress"))
            })
            .collect()
    }

    /// Waits until the agent runs a transcoding FFmpeg, and returns its pid.
    pub fn wait_for_ffmpeg(&self, timeout: Duration) -> u32 {
        wait_for(
            "a transcoding FFmpeg",
            timeout,
            Duration::from_millis(20),
            || self.transcoding_ffmpeg().first().copied(),
        )
        .unwrap_or_else(|e| panic!("{e}\n--- agent log ---\n{}", self.log()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!("--- agent log {} ---\n{}", self.log.display(), self.log());
    }
}

/// Whether process `pid` still exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    h264_testkit::process::process_info(pid).is_some_and(|p| !p.is_zombie())
}
