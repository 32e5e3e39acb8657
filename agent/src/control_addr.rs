//! The control API's bound address, published in `control.addr` in `state_dir` beside
//! `control.token`. `[agent] control` may name port 0 ("127.0.0.1:0": the system picks a free
//! port), so the configured address is not always where the agent listens; this file is. Once
//! the agent holds the state folder's lock it removes an earlier run's file (which may name a
//! port it no longer holds), then writes the bound address atomically (mode 0600, in the 0700
//! state folder) after its token; `fleetctl agent ... --agent-state-dir DIR` reads it. It
//! stays after the agent stops, like the token: a reader that cannot connect asks again.
//! The file holds one line, `HOST:PORT`.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The address file's name in `state_dir`.
pub const FILE_NAME: &str = "control.addr";

/// Where the address file of the agent with `state_dir` is.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Removes an earlier run's address file (none is fine).
pub fn forget(state_dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(path(state_dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `addr` to `state_dir/control.addr` atomically, mode 0600.
pub fn publish(state_dir: &Path, addr: SocketAddr) -> io::Result<()> {
    let path = path(state_dir);
    h264_support::write_atomic(&path, format!("{addr}\n").as_bytes())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
}

/// The address the agent with `state_dir` published.
pub fn read(state_dir: &Path) -> io::Result<SocketAddr> {
    let path = path(state_dir);
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not hold HOST:PORT: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_address_reads_back_private_and_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        forget(dir.path()).unwrap();
        let addr: SocketAddr = "127.0.0.1:45678".parse().unwrap();
        publish(dir.path(), addr).unwrap();
        assert_eq!(read(dir.path()).unwrap(), addr);
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        forget(dir.path()).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
