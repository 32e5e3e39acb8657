//! The last-known-good revision: the last fleet revision this agent accepted, kept in
//! `state_dir/last-known-good.json` so that it runs the same configuration after a restart
//! while the controller is unreachable.
//!
//! Written atomically (temporary file, fsync, rename, fsync of the folder): a crash leaves the
//! old file or the new one, never half of one. A file that cannot be read back (bad JSON, an
//! unknown format, bytes that do not match their SHA256) is *damaged*: it is reported, moved
//! aside to `last-known-good.json.damaged` for a person to look at, and the agent carries on
//! with its local file. It never stops the agent from starting.

use std::path::{Path, PathBuf};

use h264_config::sha256_hex;
use serde::{Deserialize, Serialize};

/// The file's name in the state folder.
pub const FILE_NAME: &str = "last-known-good.json";

/// The layout version written in the file.
const FORMAT: u32 = 1;

/// One accepted revision, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The layout version (`FORMAT`).
    pub format: u32,
    /// The revision's generation.
    pub generation: u64,
    /// SHA256 (hex) of `canonical`.
    pub sha256: String,
    /// Whether it was accepted as a rollback (below the highest generation accepted).
    pub rollback: bool,
    /// The highest generation this agent ever accepted (older ones need the rollback mark).
    pub highest_accepted: u64,
    /// When it was accepted (Unix milliseconds).
    pub accepted_at_ms: i64,
    /// The revision's canonical bytes (a fleet spec as canonical JSON).
    pub canonical: String,
    /// The trusted key that signed it (`ed25519:BASE64`), when the agent pinned keys; absent
    /// in files written before signatures existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_key: Option<String>,
    /// The signature (base64), checked again at start-up while keys are pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Record {
    /// A record of a revision accepted now.
    pub fn new(
        generation: u64,
        sha256: &str,
        rollback: bool,
        highest_accepted: u64,
        canonical: &str,
    ) -> Self {
        Self {
            format: FORMAT,
            generation,
            sha256: sha256.to_ascii_lowercase(),
            rollback,
            highest_accepted,
            accepted_at_ms: now_ms(),
            canonical: canonical.to_owned(),
            signer_key: None,
            signature: None,
        }
    }

    /// The same record, signed by `signer_key` with `signature`.
    pub fn signed(self, signer_key: &str, signature: &str) -> Self {
        Self {
            signer_key: Some(signer_key.to_owned()),
            signature: Some(signature.to_owned()),
            ..self
        }
    }
}

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LkgError {
    /// It exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It was read but does not hold a valid record.
    #[error("{} is damaged: {why}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// It cannot be written.
    #[error("cannot save {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The file's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// The stored record; `None` when there is none.
pub fn load(state_dir: &Path) -> Result<Option<Record>, LkgError> {
    let path = path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LkgError::Read { path, source }),
    };
    let damaged = |why: String| LkgError::Damaged {
        path: path.clone(),
        why,
    };
    let record: Record =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a record: {e}")))?;
    if record.format != FORMAT {
        return Err(damaged(format!(
            "format {} is not {FORMAT} (written by another version of the agent?)",
            record.format
        )));
    }
    let actual = sha256_hex(record.canonical.as_bytes());
    if !actual.eq_ignore_ascii_case(&record.sha256) {
        return Err(damaged(format!(
            "its revision hashes to {actual}, not to the {} recorded",
            record.sha256
        )));
    }
    Ok(Some(record))
}

/// Replaces the stored record atomically ([`h264_support::write_atomic`]: a temporary file
/// beside it, fsynced, renamed over it, and the folder fsynced so that the rename survives a
/// power cut).
pub fn store(state_dir: &Path, record: &Record) -> Result<(), LkgError> {
    let path = path(state_dir);
    let fail = |source: std::io::Error| LkgError::Write {
        path: path.clone(),
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| fail(e.into()))?;
    bytes.push(b'\n');
    h264_support::write_atomic(&path, &bytes).map_err(fail)
}

/// Moves a damaged file aside (`last-known-good.json.damaged`, replacing an older one) so that
/// it is reported once and kept for a person to look at; returns where it went.
pub fn set_aside(state_dir: &Path) -> Option<PathBuf> {
    let from = path(state_dir);
    let to = state_dir.join(format!("{FILE_NAME}.damaged"));
    std::fs::rename(&from, &to).ok().map(|()| to)
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"crf":23}}}"#;

    fn record(generation: u64) -> Record {
        Record::new(
            generation,
            &sha256_hex(SPEC.as_bytes()),
            false,
            generation,
            SPEC,
        )
    }

    #[test]
    fn stores_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        store(dir.path(), &record(3)).unwrap();
        store(dir.path(), &record(4)).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        let stamp = |r: Record| Record {
            accepted_at_ms: 0,
            ..r
        };
        assert_eq!(stamp(back), stamp(record(4)));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary file is left");
    }

    #[test]
    fn damage_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        let cases: [(&str, String); 4] = [
            ("not a record", "{\"generation\":".to_owned()),
            ("not a record", "[]".to_owned()),
            (
                "format 9",
                serde_json::to_string(&Record {
                    format: 9,
                    ..record(1)
                })
                .unwrap(),
            ),
            (
                "hashes to",
                serde_json::to_string(&Record {
                    canonical: SPEC.replace("23", "24"),
                    ..record(1)
                })
                .unwrap(),
            ),
        ];
        for (want, text) in cases {
            std::fs::write(&file, text).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert!(matches!(err, LkgError::Damaged { .. }), "{err}");
            assert!(err.to_string().contains(want), "{err}");
        }
        let aside = set_aside(dir.path()).unwrap();
        assert!(aside.exists() && !file.exists());
        assert_eq!(load(dir.path()).unwrap(), None);
    }
}
