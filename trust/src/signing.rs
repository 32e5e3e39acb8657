//! Signed revisions: ed25519 keys kept as one-line text files, and the statement an operator
//! signs for a revision.
//!
//! The statement is the bytes `h264create-revision-v1\ngeneration=G\nsha256=HEX\n`: it binds
//! the canonical SHA256 (what agents run) to the generation (when), so a signature cannot be
//! replayed onto another spec, nor an old spec pushed as a new generation. A rollback
//! reassigns an earlier revision with its original signature.
//!
//! Files: the secret key is `ed25519-secret:BASE64` (the 32-byte seed; mode 0600), the public
//! key `ed25519:BASE64` (32 bytes), each on one line. The public form is what agents pin in
//! `[controller] trusted_keys`.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ed25519-secret:";

/// Why a key, a key file or a signature is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A public key is not `ed25519:BASE64` of 32 bytes.
    #[error("`{0}` is not a public key like ed25519:BASE64 (32 bytes)")]
    BadPublicKey(String),
    /// A secret key file is not `ed25519-secret:BASE64`.
    #[error(
        "{path}: not a secret key written by `fleetctl keys generate` (ed25519-secret:BASE64)"
    )]
    BadSecretKey {
        /// The file.
        path: PathBuf,
    },
    /// A signature is not base64 of 64 bytes.
    #[error("the signature is not base64 of 64 bytes")]
    BadSignature,
    /// The signature does not verify with the key.
    #[error(
        "the signature of generation {generation} (sha256 {sha256}) does not verify with {key}"
    )]
    Mismatch {
        /// The generation signed.
        generation: u64,
        /// The SHA256 signed.
        sha256: String,
        /// The key tried (boxed: a verifying key is large, and errors should be small).
        key: Box<PublicKey>,
    },
    /// A key file cannot be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
}

/// The bytes signed for revision `generation` with canonical SHA256 `sha256` (hex).
pub fn statement(generation: u64, sha256: &str) -> Vec<u8> {
    format!("h264create-revision-v1\ngeneration={generation}\nsha256={sha256}\n").into_bytes()
}

/// A public key (what agents trust).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads `ed25519:BASE64`.
    pub fn parse(text: &str) -> Result<PublicKey, SignatureError> {
        let bad = || SignatureError::BadPublicKey(text.chars().take(80).collect());
        let b64 = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(bad)?;
        let bytes: [u8; 32] = STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| bad())
    }

    /// Checks `signature` (base64) over the statement of (`generation`, `sha256`).
    pub fn verify(
        &self,
        generation: u64,
        sha256: &str,
        signature: &str,
    ) -> Result<(), SignatureError> {
        let bytes: [u8; 64] = STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SignatureError::BadSignature)?;
        self.0
            .verify(
                &statement(generation, sha256),
                &Signature::from_bytes(&bytes),
            )
            .map_err(|_| SignatureError::Mismatch {
                generation,
                sha256: sha256.to_owned(),
                key: Box::new(self.clone()),
            })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A secret key (an operator's or a CI system's; never the controller's).
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs revision (`generation`, `sha256`); the signature in base64.
    pub fn sign(&self, generation: u64, sha256: &str) -> String {
        STANDARD.encode(self.0.sign(&statement(generation, sha256)).to_bytes())
    }

    /// Reads a secret key file.
    pub fn read(path: &Path) -> Result<SecretKey, SignatureError> {
        let text = std::fs::read_to_string(path).map_err(|e| SignatureError::Io {
            path: path.to_owned(),
            message: format!("cannot read the key: {e}"),
        })?;
        let bad = || SignatureError::BadSecretKey {
            path: path.to_owned(),
        };
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(bad)?;
        let seed: [u8; 32] = STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Writes the key to `path` (mode 0600, refusing to replace an existing file) and its
    /// public key to `path.pub`; returns the public key.
    pub fn write_pair(&self, path: &Path) -> Result<PublicKey, SignatureError> {
        let secret = format!("{SECRET_PREFIX}{}\n", STANDARD.encode(self.0.to_bytes()));
        write_new(path, secret.as_bytes(), 0o600)?;
        let public = self.public();
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        write_new(
            Path::new(&pub_path),
            format!("{public}\n").as_bytes(),
            0o644,
        )?;
        Ok(public)
    }
}

/// Creates `path` with `mode` (never replacing a file, never following a link) and writes
/// `bytes`.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignatureError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| SignatureError::Io {
        path: path.to_owned(),
        message: if e.kind() == std::io::ErrorKind::AlreadyExists {
            "already exists; remove it first or choose another name".to_owned()
        } else {
            e.to_string()
        },
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_every_tamper_fails() {
        let key = SecretKey::generate();
        let public = key.public();
        let sig = key.sign(7, "abc");
        public.verify(7, "abc", &sig).unwrap();
        assert!(matches!(
            public.verify(8, "abc", &sig),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            public.verify(7, "abd", &sig),
            Err(SignatureError::Mismatch { .. })
        ));
        assert_eq!(
            public.verify(7, "abc", "!!"),
            Err(SignatureError::BadSignature)
        );
        let other = SecretKey::generate().public();
        assert!(other.verify(7, "abc", &sig).is_err());
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = SecretKey::generate();
        let public = key.write_pair(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(dir.path().join("release.key.pub")).unwrap();
        assert_eq!(PublicKey::parse(&text).unwrap(), public);
        let again = SecretKey::read(&path).unwrap();
        assert_eq!(again.public(), public);
        assert!(key.write_pair(&path).is_err(), "never replaces a key");
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
        assert!(PublicKey::parse("rsa:AAAA").is_err());
    }
}
