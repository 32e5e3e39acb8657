//! The single-instance lock on `state_dir`: an exclusive `flock` on `agent.lock`, holding the pid
//! and control address of the agent that owns the folder. The control port is the first guard
//! (two agents on one port); this one covers two agents configured with different ports but the
//! same state folder. The lock goes away with the process, even after `kill -9`.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file's name inside `state_dir`.
pub const FILE_NAME: &str = "agent.lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds it.
    #[error("another h264-agent ({holder}) already uses the state folder {dir}; stop it first, or give this agent its own agent.state_dir")]
    Held {
        /// The folder.
        dir: PathBuf,
        /// What the lock file says about the holder.
        holder: String,
    },
    /// The lock file cannot be opened or written.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock on `state_dir` and records this process as its holder.
pub fn acquire(state_dir: &Path, control: &str) -> Result<StateLock, LockError> {
    let path = state_dir.join(FILE_NAME);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, _)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "pid unknown".to_string()
            } else {
                holder.to_string()
            };
            return Err(LockError::Held {
                dir: state_dir.to_path_buf(),
                holder,
            });
        }
    };
    lock.set_len(0).map_err(io)?;
    lock.rewind().map_err(io)?;
    writeln!(lock, "pid {}, control {control}", std::process::id()).map_err(io)?;
    lock.sync_all().map_err(io)?;
    Ok(StateLock { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "127.0.0.1:1").unwrap();
        // flock locks belong to the open file description: a second open conflicts even in one
        // process.
        let err = acquire(dir.path(), "127.0.0.1:2").unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("127.0.0.1:1"), "{err}");
        drop(first);
        acquire(dir.path(), "127.0.0.1:2").unwrap();
    }
}
