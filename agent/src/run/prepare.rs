//! Start-up checks and crash recovery: what the agent cannot work without (the state folder
//! and its lock, the control address, the journal, FFmpeg and ffprobe, the watch roots), each
//! failing with a [`FatalError`] that names it; then the clean-up after a crash (FFmpeg left
//! running, leftover temporaries, jobs the journal says were running).

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_config::AgentConfig;
use tokio_util::sync::CancellationToken;

use super::error::FatalError;
use crate::control_token::ControlToken;
use crate::journal::Journal;
use crate::known_roots::KnownRoots;
use crate::plumbing::lock::StateLock;
use crate::roots::Root;

/// What start-up secured.
#[derive(Debug)]
pub struct Ground {
    /// The state folder's lock, held as long as the agent runs.
    pub lock: StateLock,
    /// The control API's listener and the token its pause and resume need (none in `--once`
    /// mode); its bound address is published in `state_dir` ([`crate::control_addr`]).
    pub control: Option<(tokio::net::TcpListener, ControlToken)>,
    /// The journal, with interrupted jobs recovered.
    pub journal: Journal,
    /// The resolved watch roots.
    pub roots: Vec<Root>,
}

/// Checks and secures what the agent needs, and cleans up after a crash.
pub async fn prepare(config: &AgentConfig, once: bool) -> Result<Ground, FatalError> {
    let state_dir = &config.agent.state_dir;
    std::fs::create_dir_all(state_dir).map_err(|source| FatalError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let state_err = |source| FatalError::StateDir {
        path: state_dir.clone(),
        source,
    };
    // The port first (port 0 picks one), so that the lock names the address really bound.
    let listener = if once {
        None
    } else {
        let listener = crate::control::bind(&config.agent.control).await?;
        let addr = listener
            .local_addr()
            .map_err(|source| crate::control::BindError::Io {
                addr: config.agent.control.clone(),
                source,
            })?;
        Some((listener, addr))
    };
    let holder = listener
        .as_ref()
        .map_or_else(|| config.agent.control.clone(), |(_, a)| a.to_string());
    let lock = crate::plumbing::lock::acquire(state_dir, &holder)?;
    let control = match listener {
        Some((listener, addr)) => {
            crate::control_addr::forget(state_dir).map_err(state_err)?;
            let token = ControlToken::create(state_dir).map_err(state_err)?;
            crate::control_addr::publish(state_dir, addr).map_err(state_err)?;
            Some((listener, token))
        }
        None => None,
    };
    let journal = Journal::open(state_dir)?;
    // Side by side: each is a start of FFmpeg's libraries (about 0.1 s), paid by every run.
    let (ffmpeg, ffprobe) = tokio::join!(
        check_tool(&config.transcode.ffmpeg, "ffmpeg"),
        check_tool(&config.transcode.ffprobe, "ffprobe"),
    );
    ffmpeg?;
    ffprobe?;
    let mut known = KnownRoots::load(state_dir).map_err(FatalError::Root)?;
    let roots = config
        .watch
        .iter()
        .map(|cfg| Root::resolve(cfg, &mut known))
        .collect::<Result<Vec<_>, _>>()
        .map_err(FatalError::Root)?;
    recover(&roots, &journal)?;
    Ok(Ground {
        lock,
        control,
        journal,
        roots,
    })
}

/// Cleans up after an earlier agent that crashed or was killed.
fn recover(roots: &[Root], journal: &Journal) -> Result<(), FatalError> {
    let outputs: Vec<PathBuf> = roots.iter().map(|r| r.output.clone()).collect();
    for pid in crate::orphans::kill_orphans(&outputs) {
        tracing::warn!(
            pid,
            "killed an FFmpeg left running by an earlier agent that crashed"
        );
    }
    for root in roots {
        for path in crate::publish::remove_leftovers(&root.output) {
            tracing::info!(path = %path.display(), "removed a temporary file left by an earlier run");
        }
    }
    for job in journal.recover_interrupted()? {
        tracing::warn!(source = %Path::new(&job.root).join(&job.rel).display(), "a job was interrupted by a crash or kill; it will be redone");
    }
    Ok(())
}

/// Whether `program -version` runs.
async fn check_tool(program: &Path, key: &'static str) -> Result<(), FatalError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("-version");
    let fail = |why: String| FatalError::MissingTool {
        program: program.display().to_string(),
        key,
        why,
    };
    let timeout = Duration::from_secs(20);
    match crate::plumbing::child::run_captured(&mut cmd, timeout, &CancellationToken::new()).await {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(fail(format!(
            "`{} -version` exited with {}",
            program.display(),
            out.status
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}
