//! Semantic checks of an [`AgentConfig`]: every error and warning at once, each with its key path.
//!
//! The rules are split the way the config is: `local` checks the facts that belong to one
//! agent (identity, state, watch roots and how they relate), `pipeline` the sections a fleet
//! may set (readiness, transcode, captions, logging; fleet manifests are checked with these same
//! rules), `operations` the disk thresholds and alerts, `controller` the fleet connection and
//! `trust` its TLS files and trusted signing keys (the files only with [`Checks::Full`]),
//! [`telemetry`] the OpenTelemetry export and metrics endpoint, and `host` looks at this
//! machine's file system (folders exist, can be written, CCExtractor is installed).
//! [`Checks::Portable`] leaves the host out, for checking a file on another machine than the
//! agent's (migration, hashing, CI of config repositories).
//!
//! Paths are resolved against the current directory (not the config file's folder); folders are
//! compared after resolving symlinks of the parts that exist. [`normalize`] then tidies what
//! validation accepted.

mod controller;
mod host;
mod local;
mod operations;
pub(crate) mod pipeline;
pub mod telemetry;
mod trust;

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::agent::{AgentConfig, Alerts};
use crate::problem::Problem;
use crate::suggest::did_you_mean;
use crate::units::HumanDuration;

pub use pipeline::{CAPTION_FORMATS, PRESETS, PROFILES, RESERVED_ARGS};

/// Which rules to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checks {
    /// Every rule, including those that look at this machine (folders exist and can be written,
    /// CCExtractor is installed): what the agent runs before it starts.
    #[default]
    Full,
    /// Only the rules whose answer is the same on every machine: for checking, hashing or
    /// migrating a file away from the agent's host.
    Portable,
}

/// Every problem with `config` ([`Checks::Full`]); errors make it unusable. `origin` names the
/// file in problems.
pub fn validate(config: &AgentConfig, origin: Option<&Path>) -> Vec<Problem> {
    validate_with(config, origin, Checks::Full)
}

/// Every problem with an `[alerts]` section read on its own (the controller's file, see
/// [`crate::controller`]) under `checks`: the rules `agent.toml`'s section follows.
pub(crate) fn validate_alerts(alerts: &Alerts, checks: Checks) -> Vec<Problem> {
    let mut out = Vec::new();
    operations::alerts(alerts, &mut out);
    if checks == Checks::Full {
        host::alerts_password_file(alerts, &mut out);
    }
    out
}

/// Every problem with `config` under `checks`.
pub fn validate_with(config: &AgentConfig, origin: Option<&Path>, checks: Checks) -> Vec<Problem> {
    let mut out = Vec::new();
    local::check(config, &mut out);
    pipeline::check(config, &mut out);
    operations::check(config, &mut out);
    controller::check(&config.controller, &mut out);
    trust::check(config, &mut out);
    telemetry::check(config, &mut out);
    if checks == Checks::Full {
        host::check(config, &mut out);
        trust::files(config, &mut out);
    }
    out.into_iter().map(|p| p.in_file(origin)).collect()
}

/// Tidies a validated config so that equal meanings are equal values (and hash the same):
/// extensions lose their leading dot, become lower case and are listed once; folders are
/// spelt one way ([`normalize_dir`]: `./var//state/` → `var/state`), programs and files lose
/// only what cannot change their meaning ([`normalize_program`]), trusted keys lose stray
/// spaces.
pub fn normalize(config: &mut AgentConfig) {
    for root in &mut config.watch {
        let mut seen = Vec::new();
        for ext in &root.extensions {
            let ext = normalize_extension(ext);
            if !seen.contains(&ext) {
                seen.push(ext);
            }
        }
        root.extensions = seen;
        for path in [&mut root.source, &mut root.output] {
            *path = normalize_dir(path);
        }
        for path in [&mut root.done_dir, &mut root.quarantine_dir]
            .into_iter()
            .flatten()
        {
            *path = normalize_dir(path);
        }
    }
    config.agent.state_dir = normalize_dir(&config.agent.state_dir);
    if let Some(dir) = &mut config.logging.dir {
        *dir = normalize_dir(dir);
    }
    let programs = [
        Some(&mut config.transcode.ffmpeg),
        Some(&mut config.transcode.ffprobe),
        config.captions.ccextractor.as_mut(),
        config
            .alerts
            .email
            .as_mut()
            .and_then(|e| e.password_file.as_mut()),
        config.controller.ca.as_mut(),
        config.controller.cert.as_mut(),
        config.controller.key.as_mut(),
    ];
    for path in programs.into_iter().flatten() {
        *path = normalize_program(path);
    }
    for key in &mut config.controller.trusted_keys {
        if let Ok(parsed) = h264_trust::PublicKey::parse(key) {
            *key = parsed.to_string();
        }
    }
}

/// A folder spelt one way: no `.` parts, doubled or trailing slashes (`./var//state/` and
/// `var/state` are both `var/state`; `./` alone is `.`). `..` is kept: what it means depends on
/// symlinks.
pub fn normalize_dir(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return PathBuf::new();
    }
    let tidy: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if tidy.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        tidy
    }
}

/// A program or file path with doubled and trailing slashes and inner `.` parts removed; a
/// leading `./` is kept, since `./ffmpeg` (this folder) and `ffmpeg` (looked up on `PATH`)
/// are different programs.
pub fn normalize_program(path: &Path) -> PathBuf {
    path.components().collect()
}

pub(crate) fn normalize_extension(ext: &str) -> String {
    ext.trim().trim_start_matches('.').to_lowercase()
}

/// An error when `value` is shorter than `min`.
pub(crate) fn at_least(out: &mut Vec<Problem>, key: &str, value: HumanDuration, min: Duration) {
    if value.get() < min {
        let message = format!(
            "{value} is too short; it must be at least {}",
            HumanDuration(min)
        );
        out.push(Problem::error(key, message));
    }
}

/// An error when `value` is longer than `max`.
pub(crate) fn at_most(
    out: &mut Vec<Problem>,
    key: &str,
    value: HumanDuration,
    max: Duration,
    hint: &str,
) {
    if value.get() > max {
        let message = format!("{value} is longer than {}", HumanDuration(max));
        out.push(Problem::error(key, message).with_hint(hint));
    }
}

/// An error (with "did you mean") when `value` is not one of `allowed`.
pub(crate) fn one_of(out: &mut Vec<Problem>, key: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        let hint = did_you_mean(value, allowed.iter().copied())
            .unwrap_or_else(|| format!("one of: {}", allowed.join(", ")));
        out.push(Problem::error(key, format!("unknown value `{value}`")).with_hint(hint));
    }
}

/// `path` made absolute against the current directory, `.` and `..` removed, and symlinks
/// resolved in the part that exists; used only to compare folders.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let absolute = std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.into());
    let mut lexical = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut missing = Vec::new();
    let mut existing = lexical.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return missing.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_without_touching_meaning() {
        for (input, want) in [
            ("./var//state/", "var/state"),
            ("var/state", "var/state"),
            ("D:/Recordings/", "D:/Recordings"),
            ("/srv/rec/./in/", "/srv/rec/in"),
            ("../up/x", "../up/x"),
            ("./", "."),
            ("", ""),
        ] {
            assert_eq!(normalize_dir(Path::new(input)), Path::new(want), "{input}");
        }
        for (input, want) in [
            ("ffmpeg", "ffmpeg"),
            ("./ffmpeg", "./ffmpeg"),
            ("/opt//bin/./ffmpeg", "/opt/bin/ffmpeg"),
        ] {
            assert_eq!(
                normalize_program(Path::new(input)),
                Path::new(want),
                "{input}"
            );
        }
    }
}
