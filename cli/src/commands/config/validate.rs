//! `fleetctl config validate FILE|DIR`: every problem and warning, then a verdict. A directory
//! is loaded the way the agent loads it (`agent.toml`, else `agent.ini`, with the fallback from
//! a broken TOML to the INI), so an operator sees which file the agent would run on.

use std::path::Path;

use h264_config::Checks;

use super::file::{load, print_error, Config};
use super::{EXIT_INVALID, EXIT_OK};

pub fn run(path: &Path, portable: bool) -> u8 {
    let checks = if portable {
        Checks::Portable
    } else {
        Checks::Full
    };
    if path.is_dir() {
        return directory(path, checks);
    }
    match load(path, checks) {
        Ok(config) => {
            let (warnings, what, sha) = match &config {
                Config::Agent(l) => (
                    &l.warnings,
                    format!("{} agent config", l.format),
                    l.config.canonical_sha256(),
                ),
                Config::Fleet(m) => (
                    &m.warnings,
                    "fleet manifest".to_owned(),
                    m.manifest.spec.canonical_sha256(),
                ),
            };
            for w in warnings {
                println!("{w}");
            }
            let plural = if warnings.len() == 1 { "" } else { "s" };
            println!(
                "{}: valid {what}, {} warning{plural}; canonical sha256 {sha}",
                path.display(),
                warnings.len()
            );
            EXIT_OK
        }
        Err(e) => {
            print_error(&e);
            EXIT_INVALID
        }
    }
}

/// A config directory, as the agent would load it. Running on the INI because the TOML is
/// broken still fails validation: the TOML needs fixing.
fn directory(dir: &Path, checks: Checks) -> u8 {
    match h264_config::load_config_with(dir, checks) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("{w}");
            }
            let file = loaded.path.as_deref().unwrap_or(dir);
            if let Some(fallback) = &loaded.fallback {
                println!(
                    "{}: the agent would start on {}, because {} has errors; fix it",
                    dir.display(),
                    fallback.ini.display(),
                    fallback.toml.display()
                );
                return EXIT_INVALID;
            }
            println!(
                "{}: the agent would run on {} ({}), valid; canonical sha256 {}",
                dir.display(),
                file.display(),
                loaded.format,
                loaded.config.canonical_sha256()
            );
            EXIT_OK
        }
        Err(e) => {
            print_error(&e);
            EXIT_INVALID
        }
    }
}
