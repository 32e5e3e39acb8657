//! Strict loading of one agent config file, TOML or legacy INI: every syntax, unknown-key, type
//! and validation problem is reported at once, each with its key path, line and, where it helps,
//! a "did you mean".
//!
//! Both formats become the same TOML-shaped table with a line for each key (`KeyLines`), then
//! go through one pipeline (`finish`): strict deserialization (`strict`), validation
//! ([`crate::validate`]), normalisation. So a problem reads the same whichever format the file
//! is in, and equal meanings give equal configs. Choosing *which* file to load (directory, TOML
//! then INI, fallback) is the dual loader's job ([`crate::load_config`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use toml::Table;

use crate::agent::{
    AgentConfig, AgentSection, Alerts, Captions, Controller, Disk, Email, Logging, Readiness,
    Telemetry, Transcode, WatchRoot,
};
use crate::fields::field_names;
use crate::keypath::{under_any, Seg};
use crate::limits::{check_size, read_text, ReadFailure};
use crate::lines::KeyLines;
use crate::problem::Problem;
use crate::strict;
use crate::toml_spans::key_lines;
use crate::validate::{normalize, validate_with, Checks};

/// The two formats of an agent config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// `agent.toml`, the current format.
    #[default]
    Toml,
    /// The legacy INI layout (`docs/legacy-ini.md`), still read.
    Ini,
}

impl Format {
    /// The format a file name says: `.ini`, `.cfg` and `.conf` are INI, anything else TOML.
    pub fn of_path(path: &Path) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("ini" | "cfg" | "conf") => Self::Ini,
            _ => Self::Toml,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Ini => "legacy INI",
        })
    }
}

/// The agent ran on the INI beside a broken TOML file: what to surface (start-up warning now,
/// control API and alerts later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The TOML file that could not be used.
    pub toml: PathBuf,
    /// The INI file used instead.
    pub ini: PathBuf,
    /// Everything wrong with the TOML file (errors first).
    pub problems: Vec<Problem>,
}

/// A config that loaded, with the warnings worth showing to the operator.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config, normalised (see [`normalize`]).
    pub config: AgentConfig,
    /// Problems that do not stop the agent: risky values, deprecated keys, the fallback itself.
    pub warnings: Vec<Problem>,
    /// The file the config came from; `None` when parsed from text without a name.
    pub path: Option<PathBuf>,
    /// The format of that file.
    pub format: Format,
    /// Set when a broken TOML file was passed over for the INI beside it.
    pub fallback: Option<Fallback>,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No config file was found where one was looked for.
    #[error("no config file found: looked for {}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and "))]
    NotFound {
        /// The files looked for, in order.
        tried: Vec<PathBuf>,
    },
    /// The file has at least one error; `problems` holds every error and warning, errors first.
    #[error("{}", list(problems))]
    Invalid {
        /// Everything wrong with the file (or files, after a failed fallback).
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found (none for [`ConfigError::Read`] and [`ConfigError::NotFound`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } | Self::NotFound { .. } => &[],
            Self::Invalid { problems } => problems,
        }
    }
}

/// A header line and then one problem per line.
fn list(problems: &[Problem]) -> String {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut out = format!("invalid configuration: {errors} error{}", plural(errors));
    if warnings > 0 {
        let _ = write!(out, ", {warnings} warning{}", plural(warnings));
    }
    for problem in problems {
        let _ = write!(out, "\n{problem}");
    }
    out
}

/// Reads, parses and validates exactly the agent config at `path` (INI when its extension says
/// so, else TOML), with every check ([`Checks::Full`]). No fallback: see [`crate::load_config`].
///
/// Relative paths inside the file are relative to the current directory, not to the file.
pub fn load_agent_config(path: &Path) -> Result<Loaded, ConfigError> {
    load_agent_config_with(path, Checks::Full)
}

/// [`load_agent_config`] with a choice of checks.
pub fn load_agent_config_with(path: &Path, checks: Checks) -> Result<Loaded, ConfigError> {
    let text = match read_text(path) {
        Ok(text) => text,
        Err(ReadFailure::Io(source)) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(ReadFailure::Refused(problem)) => {
            return Err(ConfigError::Invalid {
                problems: vec![problem.in_file(Some(path))],
            })
        }
    };
    match Format::of_path(path) {
        Format::Toml => parse_agent_config_with(&text, Some(path), checks),
        Format::Ini => crate::ini::parse_ini_config(&text, Some(path), checks),
    }
}

/// Parses and validates an agent config in TOML; `origin` names the file in problems.
pub fn parse_agent_config(text: &str, origin: Option<&Path>) -> Result<Loaded, ConfigError> {
    parse_agent_config_with(text, origin, Checks::Full)
}

/// [`parse_agent_config`] with a choice of checks.
pub fn parse_agent_config_with(
    text: &str,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<Loaded, ConfigError> {
    let fail = |problem: Problem| ConfigError::Invalid {
        problems: vec![problem.in_file(origin)],
    };
    check_size(text.len()).map_err(fail)?;
    let table: Table = text.parse().map_err(|e| fail(syntax_problem(text, &e)))?;
    let input = Input {
        table,
        lines: key_lines(text),
        ..Input::default()
    };
    finish(input, origin, checks)
}

/// A config file turned into a TOML-shaped table, ready for [`finish`].
#[derive(Debug, Default)]
pub(crate) struct Input {
    /// The keys and values, in the shape of `agent.toml`.
    pub table: Table,
    /// The line of each key path.
    pub lines: KeyLines,
    /// Problems the format's own parser found (INI values, deprecated keys).
    pub problems: Vec<Problem>,
    /// Key paths whose values the format's parser rejected; validation problems under them
    /// would only repeat those.
    pub failed: Vec<String>,
    /// Where the table came from.
    pub format: Format,
}

/// Deserializes, validates and normalises `input`; every problem at once, errors first.
pub(crate) fn finish(
    input: Input,
    origin: Option<&Path>,
    checks: Checks,
) -> Result<Loaded, ConfigError> {
    let outcome = strict::deserialize::<AgentConfig>(input.table, known_keys);
    let mut problems = input.problems;
    problems.extend(outcome.problems);
    let mut failed = input.failed;
    failed.extend(outcome.failed);
    if let Some(config) = &outcome.value {
        problems.extend(
            validate_with(config, None, checks)
                .into_iter()
                .filter(|p| !under_any(&p.key, &failed)),
        );
    }
    // Errors first, then by key, which groups them by section.
    problems.sort_by(|a, b| (a.severity, &a.key).cmp(&(b.severity, &b.key)));
    let problems: Vec<Problem> = input
        .lines
        .locate(problems)
        .into_iter()
        .map(|p| p.in_file(origin))
        .collect();
    match outcome.value {
        Some(mut config) if !problems.iter().any(Problem::is_error) => {
            normalize(&mut config);
            Ok(Loaded {
                config,
                warnings: problems,
                path: origin.map(Path::to_path_buf),
                format: input.format,
                fallback: None,
            })
        }
        _ => Err(ConfigError::Invalid { problems }),
    }
}

/// The keys valid in the table at `parent` of an agent config.
pub(crate) fn known_keys(parent: &[Seg]) -> Option<&'static [&'static str]> {
    let section = match parent {
        [] => return Some(field_names::<AgentConfig>()),
        [Seg::Key(s)] => s.as_str(),
        [Seg::Key(s), Seg::Index(_)] if s == "watch" => return Some(field_names::<WatchRoot>()),
        [Seg::Key(a), Seg::Key(e)] if a == "alerts" && e == "email" => "alerts.email",
        _ => return None,
    };
    section_keys(section)
}

/// The keys of the section `[name]` (or `[alerts.email]`) of an agent config.
pub(crate) fn section_keys(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "agent" => field_names::<AgentSection>(),
        "watch" => field_names::<WatchRoot>(),
        "readiness" => field_names::<Readiness>(),
        "transcode" => field_names::<Transcode>(),
        "captions" => field_names::<Captions>(),
        "disk" => field_names::<Disk>(),
        "alerts" => field_names::<Alerts>(),
        "alerts.email" => field_names::<Email>(),
        "logging" => field_names::<Logging>(),
        "controller" => field_names::<Controller>(),
        "telemetry" => field_names::<Telemetry>(),
        _ => return None,
    })
}

pub(crate) fn syntax_problem(text: &str, error: &toml::de::Error) -> Problem {
    let message = error.message().trim().replace('\n', "; ");
    let Some(span) = error.span() else {
        return Problem::error("", format!("TOML syntax error: {message}"));
    };
    let before = text.get(..span.start.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Problem::error(
        "",
        format!("TOML syntax error at line {line}, column {column}: {message}"),
    )
    .at_line(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_known_keys() {
        for section in field_names::<AgentConfig>() {
            let parent = match *section {
                "watch" => vec![Seg::Key("watch".into()), Seg::Index(0)],
                s => vec![Seg::Key(s.into())],
            };
            assert!(
                known_keys(&parent).is_some_and(|k| !k.is_empty()),
                "{section}"
            );
        }
    }

    #[test]
    fn formats_follow_the_extension() {
        for (path, format) in [
            ("agent.toml", Format::Toml),
            ("AGENT.INI", Format::Ini),
            ("legacy.conf", Format::Ini),
            ("agent", Format::Toml),
        ] {
            assert_eq!(Format::of_path(Path::new(path)), format, "{path}");
        }
    }
}
