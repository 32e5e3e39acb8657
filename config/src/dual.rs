//! The dual-format loader: which file an agent runs on.
//!
//! Given a directory, it looks for `agent.toml`, then `agent.ini`. Given a file, it loads that
//! file; for a `.toml` path, the INI beside it (same stem, `.ini`) is the fallback:
//!
//! | TOML            | INI beside it | result                                                 |
//! |-----------------|---------------|--------------------------------------------------------|
//! | valid           | any           | the TOML                                               |
//! | missing         | valid         | the INI (with the deprecation warning)                 |
//! | invalid         | valid         | the INI, **loudly**: [`Loaded::fallback`] and a warning naming both files and the TOML's errors |
//! | invalid         | missing       | error: every problem of the TOML                       |
//! | invalid         | invalid       | error: every problem of both files                     |
//! | missing         | missing       | [`ConfigError::NotFound`] naming both                  |
//!
//! A path ending in `.ini` (or `.cfg`, `.conf`) loads that INI and nothing else.

use std::path::Path;

use crate::load::{load_agent_config_with, ConfigError, Fallback, Format, Loaded};
use crate::problem::Problem;
use crate::validate::Checks;

/// Loads the agent config at `path` (a file or a directory), falling back from a broken TOML
/// file to the INI beside it; every check ([`Checks::Full`]).
pub fn load_config(path: &Path) -> Result<Loaded, ConfigError> {
    load_config_with(path, Checks::Full)
}

/// [`load_config`] with a choice of checks.
pub fn load_config_with(path: &Path, checks: Checks) -> Result<Loaded, ConfigError> {
    let (toml, ini) = if path.is_dir() {
        (path.join("agent.toml"), path.join("agent.ini"))
    } else if Format::of_path(path) == Format::Ini {
        return load_agent_config_with(path, checks);
    } else {
        (path.to_path_buf(), path.with_extension("ini"))
    };
    if !toml.exists() {
        if ini.is_file() {
            return load_agent_config_with(&ini, checks);
        }
        return Err(ConfigError::NotFound {
            tried: vec![toml, ini],
        });
    }
    let broken = match load_agent_config_with(&toml, checks) {
        Ok(loaded) => return Ok(loaded),
        Err(e) if !ini.is_file() => return Err(e),
        Err(e) => problems_of(e, &toml),
    };
    match load_agent_config_with(&ini, checks) {
        Ok(mut loaded) => {
            loaded
                .warnings
                .insert(0, fallback_warning(&toml, &ini, &broken));
            loaded.fallback = Some(Fallback {
                toml,
                ini,
                problems: broken,
            });
            Ok(loaded)
        }
        Err(e) => {
            let mut problems = broken;
            problems.extend(problems_of(e, &ini));
            Err(ConfigError::Invalid { problems })
        }
    }
}

/// A load failure as problems located in `path`.
fn problems_of(error: ConfigError, path: &Path) -> Vec<Problem> {
    match error {
        ConfigError::Invalid { problems } => problems,
        ConfigError::Read { source, .. } => {
            vec![Problem::error("", format!("cannot be read: {source}")).in_file(Some(path))]
        }
        ConfigError::NotFound { .. } => {
            vec![Problem::error("", "does not exist").in_file(Some(path))]
        }
    }
}

/// The warning that says the agent runs on the INI because the TOML is broken, with the TOML's
/// errors, so that nobody mistakes the INI's settings for the TOML's.
fn fallback_warning(toml: &Path, ini: &Path, broken: &[Problem]) -> Problem {
    let errors: Vec<String> = broken
        .iter()
        .filter(|p| p.is_error())
        .map(|p| {
            // Line, key and message; the hints are in `Loaded::fallback` and `fleetctl`.
            let mut p = p.clone();
            p.file = None;
            p.hint = None;
            p.to_string()
        })
        .collect();
    let plural = if errors.len() == 1 { "" } else { "s" };
    let message = format!(
        "is invalid, so the agent runs on the legacy {} beside it instead; {} error{plural} in {}: {}",
        ini.display(),
        errors.len(),
        file_name(toml),
        errors.join("; ")
    );
    Problem::warning("", message)
        .with_hint(format!(
            "fix {} (check it with `fleetctl config validate {}`); until then changes to it have no effect",
            file_name(toml),
            toml.display()
        ))
        .in_file(Some(toml))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
