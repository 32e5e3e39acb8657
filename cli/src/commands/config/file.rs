//! Which kind of config a file is, and loading it: by extension (`.toml`, `.ini`/`.cfg`/
//! `.conf`, `.yaml`/`.yml`), else by content (`apiVersion:`/`kind:` lines make a manifest, text
//! that parses as TOML is TOML, anything else is read as INI).

use std::path::Path;

use h264_config::fleet::{self, LoadedManifest};
use h264_config::limits::read_config_text;
use h264_config::{Checks, ConfigError, Format, Loaded};

/// A loaded config file of either kind.
pub enum Config {
    /// An agent config.
    Agent(Box<Loaded>),
    /// A fleet manifest.
    Fleet(Box<LoadedManifest>),
}

/// What a file holds, as far as its name and first look tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Agent(Format),
    Fleet,
}

/// The kind of config at `path` holding `text`.
pub fn kind_of(path: &Path, text: &str) -> Kind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yaml" | "yml") => Kind::Fleet,
        Some("toml") => Kind::Agent(Format::Toml),
        Some("ini" | "cfg" | "conf") => Kind::Agent(Format::Ini),
        _ if fleet::looks_like_manifest(text) => Kind::Fleet,
        _ if text.parse::<toml::Table>().is_ok() => Kind::Agent(Format::Toml),
        _ => Kind::Agent(Format::Ini),
    }
}

/// Loads `path` as what it is.
pub fn load(path: &Path, checks: Checks) -> Result<Config, ConfigError> {
    let text = read_config_text(path)?;
    let origin = Some(path);
    match kind_of(path, &text) {
        Kind::Fleet => {
            fleet::parse_fleet_manifest(&text, origin).map(|m| Config::Fleet(Box::new(m)))
        }
        Kind::Agent(Format::Toml) => h264_config::parse_agent_config_with(&text, origin, checks)
            .map(|l| Config::Agent(Box::new(l))),
        Kind::Agent(Format::Ini) => {
            h264_config::parse_ini_config(&text, origin, checks).map(|l| Config::Agent(Box::new(l)))
        }
    }
}

/// Prints every problem of a failed load to stderr.
pub fn print_error(error: &ConfigError) {
    match error {
        ConfigError::Invalid { problems } => {
            for p in problems {
                if p.is_error() {
                    eprintln!("error: {p}");
                } else {
                    eprintln!("{p}");
                }
            }
            let errors = problems.iter().filter(|p| p.is_error()).count();
            let plural = if errors == 1 { "" } else { "s" };
            eprintln!("fleetctl: {errors} error{plural}: the file cannot be used");
        }
        other => eprintln!("fleetctl: {other}"),
    }
}
