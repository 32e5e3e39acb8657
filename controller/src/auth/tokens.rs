//! API tokens: `h264ct_` and 43 characters of base64url (256 random bits). Only their SHA256
//! is stored; the token itself is shown once, when it is made. At the first start (no token
//! yet) the controller makes an `admin` token and writes it to `STATE_DIR/admin.token` (0600).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use h264_trust::Role;
use sha2::{Digest as _, Sha256};

use crate::model::now_ms;
use crate::store::{Store, StoreError};

/// The file of the first admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A new random token.
pub fn generate() -> String {
    format!(
        "h264ct_{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// What the database keeps of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a token name: 1-64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 64 || !h264_trust::identity::valid_name(name) {
        return Err(format!(
            "`{}` is not a token name: 1-64 characters of A-Z a-z 0-9 . _ -",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Makes a token in an open store; returns it (the only time it is seen).
pub fn create(store: &Store, name: &str, role: Role) -> Result<String, String> {
    check_name(name)?;
    let token = generate();
    store
        .add_token(name, role.as_str(), &hash(&token), now_ms())
        .map_err(|e| match e {
            StoreError::Sqlite { source, .. } if source.to_string().contains("UNIQUE") => {
                format!("a token named `{name}` exists already: choose another name")
            }
            other => other.to_string(),
        })?;
    Ok(token)
}

/// At the first start (no token at all) makes the `admin` token and writes it to
/// `dir/admin.token` (0600, replacing a stale file); returns the file's path when it did.
pub fn bootstrap(store: &Store, dir: &Path) -> Result<Option<PathBuf>, String> {
    if store.token_count().map_err(|e| e.to_string())? > 0 {
        return Ok(None);
    }
    let token = create(store, "admin", Role::Admin)?;
    let path = dir.join(ADMIN_TOKEN_FILE);
    let _ = std::fs::remove_file(&path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)?;
        f.write_all(format!("{token}\n").as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Some(path))
}
