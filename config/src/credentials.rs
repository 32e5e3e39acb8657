//! systemd credentials: secrets a unit hands its service with `LoadCredential=NAME:PATH` (or
//! `LoadCredentialEncrypted=`, `SetCredential=`). The service manager copies each into a
//! private, read-only folder (`/run/credentials/UNIT/NAME`, owned by the service's user and
//! invisible to other services) and names the folder in `$CREDENTIALS_DIRECTORY`, so a secret
//! file can stay readable by root only.
//!
//! `[alerts.email] password_credential = "NAME"` reads the SMTP password from
//! `$CREDENTIALS_DIRECTORY/NAME` (its first line, as `password_file`).

use std::path::PathBuf;

/// The variable naming the folder of the service's credentials.
pub const DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Why a credential cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The program was not started with credentials.
    #[error(
        "${DIRECTORY} is not set, so credential `{name}` cannot be read: the program was not \
         started by systemd with LoadCredential={name}:PATH"
    )]
    NoDirectory {
        /// The credential's name.
        name: String,
    },
    /// The name cannot be a credential's.
    #[error("`{name}` is not a credential name (a file name: no `/`, not `.` or `..`)")]
    BadName {
        /// The name given.
        name: String,
    },
}

/// Whether `name` can name a credential: a plain file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Where the credential `name` is: `$CREDENTIALS_DIRECTORY/name`.
pub fn path(name: &str) -> Result<PathBuf, CredentialError> {
    if !valid_name(name) {
        return Err(CredentialError::BadName { name: name.into() });
    }
    match std::env::var_os(DIRECTORY) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir).join(name)),
        _ => Err(CredentialError::NoDirectory { name: name.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for good in ["smtp-password", "tls.key", "a"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "/etc/passwd"] {
            assert!(!valid_name(bad), "{bad}");
            assert!(matches!(path(bad), Err(CredentialError::BadName { .. })));
        }
    }
}
