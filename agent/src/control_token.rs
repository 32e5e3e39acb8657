//! The local control API's token (security review M3): Ping, Stats and Errors are open on
//! loopback, but Pause and Resume need `authorization: Bearer <token>` with the token the agent
//! writes at each start to `control.token` in its `state_dir`, mode 0600 (the folder itself is
//! made 0700). Only users who can read the agent's state (its service user, root) can pause it;
//! `fleetctl agent pause --agent HOST:PORT` reads the file when it can, or takes
//! `--agent-token-file`.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use tonic::{Request, Status};

/// The token file's name in `state_dir`.
pub const FILE_NAME: &str = "control.token";

/// The token Pause and Resume check.
#[derive(Clone)]
pub struct ControlToken {
    token: String,
    path: PathBuf,
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ControlToken {
    /// Makes `state_dir` private (0700) and writes a fresh random token to
    /// `state_dir/control.token` (0600, never through a symlink).
    pub fn create(state_dir: &Path) -> io::Result<ControlToken> {
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))?;
        let path = state_dir.join(FILE_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut file = crate::fs_safe::create_new(&path)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        Ok(ControlToken { token, path })
    }

    /// Where the token is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok` when `request` carries the token.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared in constant time.
        let same = given.len() == self.token.len()
            && given
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            return Ok(());
        }
        Err(Status::unauthenticated(format!(
            "pause and resume need this agent's control token: run fleetctl as a user who can read {} (the agent's service user or root), or pass --agent-token-file",
            self.path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_written_token_passes() {
        let dir = tempfile::tempdir().unwrap();
        let t = ControlToken::create(dir.path()).unwrap();
        let mode = std::fs::metadata(t.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let token = std::fs::read_to_string(t.path()).unwrap();
        let mut ok = Request::new(());
        ok.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert!(t.check(&ok).is_ok());
        assert!(t.check(&Request::new(())).is_err());
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer 00".parse().unwrap());
        assert!(t.check(&wrong).is_err());
    }
}
