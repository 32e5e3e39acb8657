//! Legacy INI → TOML migration, proven: `fleetctl config migrate` writes the TOML twin of an INI
//! file (module `writer`), loads both from disk, and compares the SHA256 of their canonical effective
//! configs; a manifest beside the TOML (`agent.toml.sha256.json`) records both hashes so that
//! [`check_pair`] can tell later whether either file drifted.
//!
//! The INI file is only ever read, and is checked byte for byte to be unchanged afterwards. Both
//! files are loaded with [`Checks::Portable`], so migration works away from the agent's host
//! (folders need not exist there); `fleetctl config validate` on the host checks the rest.

mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::canonical::sha256_hex;
use crate::ini::parse_ini_mapped;
use crate::limits::{read_text, ReadFailure};
use crate::load::{parse_agent_config_with, ConfigError};
use crate::problem::Problem;
use crate::validate::Checks;

/// The manifest written beside a migrated file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The INI file, as given on the command line.
    pub source: String,
    /// SHA256 of the INI's canonical effective config.
    pub source_sha256: String,
    /// SHA256 of the INI file's bytes (comments and layout included).
    pub source_file_sha256: String,
    /// The TOML file, as given on the command line.
    pub output: String,
    /// SHA256 of the TOML's canonical effective config; equal to `source_sha256`.
    pub output_sha256: String,
    /// SHA256 of the TOML file's bytes.
    pub output_file_sha256: String,
    /// When the migration ran (RFC 3339, UTC).
    pub migrated_at: String,
    /// What wrote it (`fleetctl 0.1.0`).
    pub tool: String,
}

/// A finished migration.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// What was recorded beside the TOML file.
    pub manifest: Manifest,
    /// Where the manifest is.
    pub manifest_path: PathBuf,
    /// The INI file's warnings (deprecated names, risky values), worth showing.
    pub warnings: Vec<Problem>,
}

/// What [`check_pair`] found.
#[derive(Debug, Clone)]
pub struct Checked {
    /// SHA256 of the INI's canonical effective config now.
    pub source_sha256: String,
    /// SHA256 of the TOML's canonical effective config now.
    pub output_sha256: String,
    /// The manifest, when there is one.
    pub manifest: Option<Manifest>,
    /// Differences in meaning: any makes the check fail.
    pub drift: Vec<String>,
    /// Worth knowing but not a difference in meaning (comments edited, no manifest).
    pub notes: Vec<String>,
}

impl Checked {
    /// Whether both files still mean the same, and what the manifest recorded.
    pub fn is_equivalent(&self) -> bool {
        self.drift.is_empty()
    }
}

/// Why a migration or check failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A file is not a valid config (the problems say why).
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The output exists and `force` was not given.
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists {
        /// The file that would be overwritten.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The written TOML does not mean what the INI means: a bug in migration; nothing is kept.
    #[error("the TOML written for {} does not mean the same (canonical SHA256 {source_sha256} vs {output_sha256}); this is a bug: please report it with the INI file", ini.display())]
    NotEquivalent {
        /// The INI file.
        ini: PathBuf,
        /// SHA256 of the INI's canonical config.
        source_sha256: String,
        /// SHA256 of the written TOML's canonical config.
        output_sha256: String,
    },
}

/// Where the manifest of `output` lives: `agent.toml` → `agent.toml.sha256.json`.
pub fn manifest_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".sha256.json");
    PathBuf::from(name)
}

/// The commented TOML twin of INI `text` and the canonical SHA256 both share, proven in memory.
pub fn ini_to_toml(text: &str, origin: Option<&Path>) -> Result<(String, String), MigrateError> {
    let parsed = parse_ini_mapped(text, origin, Checks::Portable)?;
    let name = origin
        .and_then(Path::file_name)
        .map_or("agent.ini".into(), |n| n.to_string_lossy().into_owned());
    let toml = writer::write_toml(&parsed.doc, &parsed.mapped, &parsed.loaded.config, &name)
        .map_err(|e| MigrateError::Io {
            path: origin.unwrap_or(Path::new("agent.ini")).to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    let want = parsed.loaded.config.canonical_sha256();
    let got = parse_agent_config_with(&toml, None, Checks::Portable)?
        .config
        .canonical_sha256();
    if want != got {
        return Err(MigrateError::NotEquivalent {
            ini: origin.unwrap_or(Path::new("agent.ini")).to_path_buf(),
            source_sha256: want,
            output_sha256: got,
        });
    }
    Ok((toml, want))
}

/// Migrates the INI file `source` to the TOML file `output` (refusing to replace an existing
/// output or manifest unless `force`), proves from disk that both mean the same, and writes the
/// manifest. `tool` names the program in the manifest.
pub fn migrate_file(
    source: &Path,
    output: &Path,
    force: bool,
    tool: &str,
) -> Result<Migrated, MigrateError> {
    let manifest_path = manifest_path(output);
    for path in [output, manifest_path.as_path()] {
        if !force && path.exists() {
            return Err(MigrateError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let before = read_bytes(source)?;
    let text = read_config(source)?;
    let warnings = parse_ini_mapped(&text, Some(source), Checks::Portable)?
        .loaded
        .warnings;
    let (toml, _) = ini_to_toml(&text, Some(source))?;
    write_atomically(output, toml.as_bytes())?;

    // Prove it from what is on disk now, not from what was meant to be written.
    let source_sha256 = load_sha256(source)?;
    let output_sha256 = load_sha256(output)?;
    if source_sha256 != output_sha256 {
        return Err(MigrateError::NotEquivalent {
            ini: source.to_path_buf(),
            source_sha256,
            output_sha256,
        });
    }
    let after = read_bytes(source)?;
    if before != after {
        return Err(MigrateError::Io {
            path: source.to_path_buf(),
            source: std::io::Error::other("changed while it was being migrated; run again"),
        });
    }
    let manifest = Manifest {
        source: source.display().to_string(),
        source_sha256,
        source_file_sha256: sha256_hex(&after),
        output: output.display().to_string(),
        output_sha256,
        output_file_sha256: sha256_hex(&read_bytes(output)?),
        migrated_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        tool: tool.to_owned(),
    };
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    write_atomically(&manifest_path, json.as_bytes())?;
    Ok(Migrated {
        manifest,
        manifest_path,
        warnings,
    })
}

/// Re-proves that the INI `source` and its migrated TOML `output` mean the same, and that
/// neither changed in meaning since the manifest was written.
pub fn check_pair(source: &Path, output: &Path) -> Result<Checked, MigrateError> {
    let source_sha256 = load_sha256(source)?;
    let output_sha256 = load_sha256(output)?;
    let mut drift = Vec::new();
    let mut notes = Vec::new();
    if source_sha256 != output_sha256 {
        drift.push(format!(
            "{} and {} no longer mean the same: canonical SHA256 {source_sha256} vs {output_sha256}",
            source.display(),
            output.display()
        ));
    }
    let path = manifest_path(output);
    let manifest = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                drift.push(format!("{}: not a migration manifest: {e}", path.display()));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            notes.push(format!(
                "{} is missing: only the pair itself was compared",
                path.display()
            ));
            None
        }
        Err(source) => return Err(MigrateError::Io { path, source }),
    };
    if let Some(m) = &manifest {
        for (file, recorded, now, recorded_file) in [
            (
                source,
                &m.source_sha256,
                &source_sha256,
                &m.source_file_sha256,
            ),
            (
                output,
                &m.output_sha256,
                &output_sha256,
                &m.output_file_sha256,
            ),
        ] {
            if recorded != now {
                drift.push(format!(
                    "{} changed in meaning since the migration of {}: canonical SHA256 was {recorded}, is {now}",
                    file.display(),
                    m.migrated_at
                ));
            } else if *recorded_file != sha256_hex(&read_bytes(file)?) {
                notes.push(format!(
                    "{} was edited since the migration, without changing its meaning",
                    file.display()
                ));
            }
        }
    }
    Ok(Checked {
        source_sha256,
        output_sha256,
        manifest,
        drift,
        notes,
    })
}

/// The canonical SHA256 of the agent config in `path` (INI or TOML by extension).
fn load_sha256(path: &Path) -> Result<String, MigrateError> {
    let loaded = crate::load::load_agent_config_with(path, Checks::Portable)?;
    Ok(loaded.config.canonical_sha256())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, MigrateError> {
    std::fs::read(path).map_err(|source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_config(path: &Path) -> Result<String, MigrateError> {
    read_text(path).map_err(|e| match e {
        ReadFailure::Io(source) => MigrateError::Io {
            path: path.to_path_buf(),
            source,
        },
        ReadFailure::Refused(problem) => MigrateError::Invalid(ConfigError::Invalid {
            problems: vec![problem.in_file(Some(path))],
        }),
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced, then renamed
/// (`h264_support::write_atomic`): `path` is never seen half-written.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MigrateError> {
    let io = |source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    };
    h264_support::write_atomic(path, bytes).map_err(io)
}
