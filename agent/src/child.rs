//! Supervised child processes (FFmpeg, ffprobe).
//!
//! # Theory of operation
//! Every child is started through [`spawn`]: never through a shell, with stdin closed and in a
//! process group of its own, so that a stop reaches its grandchildren too. A [`Supervised`] child
//! is stopped with [`Supervised::terminate`]: SIGTERM to the whole group, a grace period, then
//! SIGKILL, and it is always reaped. If a `Supervised` is dropped without being waited for (a task
//! aborted mid-flight), its `Drop` kills the group, so no child outlives the agent's interest in it.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A child process in its own process group, killed with its group unless reaped.
#[derive(Debug)]
pub struct Supervised {
    child: Child,
    pgid: Option<Pid>,
    reaped: bool,
}

/// Starts `cmd` in a new process group with stdin closed.
pub fn spawn(cmd: &mut Command) -> io::Result<Supervised> {
    cmd.stdin(Stdio::null()).process_group(0).kill_on_drop(true);
    let child = cmd.spawn()?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    Ok(Supervised {
        child,
        pgid,
        reaped: false,
    })
}

impl Supervised {
    /// The child's process id (also its process group id), while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Mutable access to the child, to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the child to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.reaped = true;
        // The leader is gone; make sure nothing it started lingers in its group.
        self.signal_group(Signal::SIGKILL);
        Ok(status)
    }

    /// Stops the whole process group: SIGTERM, up to `grace` to exit, then SIGKILL; always reaps.
    pub async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if self.reaped {
            return self.child.wait().await;
        }
        self.signal_group(Signal::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                self.reaped = true;
                self.signal_group(Signal::SIGKILL);
                status
            }
            Err(_) => {
                self.signal_group(Signal::SIGKILL);
                let status = self.child.wait().await;
                self.reaped = true;
                status
            }
        }
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is already empty) is the normal case after an exit.
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal_group(Signal::SIGKILL);
        }
    }
}

/// What a short-lived child printed, and how it ended.
#[derive(Debug)]
pub struct Captured {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr (at most `MAX_CAPTURE` bytes are kept).
    pub stderr: String,
}

/// Why a captured run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The program ran longer than allowed and was killed.
    #[error("{program} did not finish within {timeout:?} and was killed")]
    TimedOut {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
    /// The run was cancelled (shutdown or the job was cancelled).
    #[error("{program} was stopped because the job was cancelled")]
    Cancelled {
        /// The program.
        program: String,
    },
    /// Reading the child's output failed.
    #[error("reading the output of {program} failed: {source}")]
    Io {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

const MAX_CAPTURE: usize = 4 * 1024 * 1024;

/// Runs `cmd` to completion, capturing stdout and stderr, with a timeout and a cancel token.
pub async fn run_captured(
    cmd: &mut Command,
    timeout: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Captured, RunError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(cmd).map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let mut stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let mut stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let read_all = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut out_limited = (&mut stdout).take(MAX_CAPTURE as u64);
        let mut err_limited = (&mut stderr).take(MAX_CAPTURE as u64);
        let (a, b) = tokio::join!(
            out_limited.read_to_end(&mut out),
            err_limited.read_to_end(&mut err)
        );
        a.and(b).map(|_| (out, err))
    };
    let outcome = tokio::select! {
        read = read_all => Some(read),
        _ = tokio::time::sleep(timeout) => None,
        _ = cancel.cancelled() => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            return Err(RunError::Cancelled { program });
        }
    };
    match outcome {
        None => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            Err(RunError::TimedOut { program, timeout })
        }
        Some(Err(source)) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            Err(RunError::Io { program, source })
        }
        Some(Ok((stdout, stderr))) => {
            let status = child.wait().await.map_err(|source| RunError::Io {
                program: program.clone(),
                source,
            })?;
            Ok(Captured {
                status,
                stdout,
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        }
    }
}

/// The last `max_lines` lines of `text`, for error messages.
pub fn tail_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}
