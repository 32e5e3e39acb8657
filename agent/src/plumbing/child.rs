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

/// How a watched run ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit status.
    pub status: ExitStatus,
    /// The end of what the child wrote to stdout and stderr.
    pub tail: String,
}

/// Why a watched run did not finish by itself.
#[derive(Debug, thiserror::Error)]
pub enum WatchedError {
    /// The program could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// It showed no sign of life (no output, no growth of its files) for the stall timeout.
    #[error(
        "{program} showed no sign of life for {timeout:?} and was killed; last output: {tail}"
    )]
    Stalled {
        /// The program.
        program: String,
        /// The stall timeout.
        timeout: Duration,
        /// The end of its output.
        tail: String,
    },
    /// The run was cancelled.
    #[error("{program} was stopped because the job was cancelled")]
    Cancelled {
        /// The program.
        program: String,
    },
}

/// Runs `cmd` until it exits, killing its process group when it shows no sign of life for
/// `stall_timeout`: a line on stdout or stderr, or growth of one of `files`, counts as life.
pub async fn run_watched(
    cmd: &mut Command,
    files: &[std::path::PathBuf],
    stall_timeout: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Finished, WatchedError> {
    use tokio::io::AsyncBufReadExt;
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(cmd).map_err(|source| WatchedError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.child_mut().stdout.take().expect("stdout is piped");
    let stderr = child.child_mut().stderr.take().expect("stderr is piped");
    let mut out = tokio::io::BufReader::new(stdout).split(b'\n');
    let mut err = tokio::io::BufReader::new(stderr).split(b'\n');
    let (mut out_open, mut err_open) = (true, true);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut note = |line: Vec<u8>| {
        // Progress output often uses carriage returns; keep the last piece of each line.
        let text = String::from_utf8_lossy(&line);
        let text = text
            .rsplit('\r')
            .find(|s| !s.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        if !text.is_empty() {
            tail.push_back(text);
            if tail.len() > 5 {
                tail.pop_front();
            }
        }
    };
    let size = |files: &[std::path::PathBuf]| -> u64 {
        files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    };
    let mut last_size = size(files);
    let mut deadline = tokio::time::Instant::now() + stall_timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let outcome = loop {
        tokio::select! {
            line = out.next_segment(), if out_open => match line {
                Ok(Some(l)) => { note(l); deadline = tokio::time::Instant::now() + stall_timeout; }
                _ => out_open = false,
            },
            line = err.next_segment(), if err_open => match line {
                Ok(Some(l)) => { note(l); deadline = tokio::time::Instant::now() + stall_timeout; }
                _ => err_open = false,
            },
            status = child.wait(), if !out_open && !err_open => break Ok(status),
            _ = tick.tick() => {
                let now = size(files);
                if now != last_size {
                    last_size = now;
                    deadline = tokio::time::Instant::now() + stall_timeout;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break Err(true),
            _ = cancel.cancelled() => break Err(false),
        }
    };
    let tail_text = || tail.iter().cloned().collect::<Vec<_>>().join("\n");
    match outcome {
        Ok(Ok(status)) => Ok(Finished {
            status,
            tail: tail_text(),
        }),
        Ok(Err(e)) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            Err(WatchedError::Spawn { program, source: e })
        }
        Err(stalled) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            if stalled {
                Err(WatchedError::Stalled {
                    program,
                    timeout: stall_timeout,
                    tail: tail_text(),
                })
            } else {
                Err(WatchedError::Cancelled { program })
            }
        }
    }
}
