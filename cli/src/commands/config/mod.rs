//! `fleetctl config validate|hash|migrate`: work on configuration files, no controller needed.
//!
//! Exit codes, for scripts:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done: the file is valid (warnings allowed), the hash is printed, the migration is proven |
//! | 1 | `migrate --check`: the two files no longer mean the same (drift) |
//! | 2 | a config file is invalid or cannot be read (also: bad command line) |
//! | 3 | `migrate` would overwrite a file without `--force`, or could not write one |

mod file;
mod hash;
mod migrate;
mod validate;

use std::path::PathBuf;

use clap::Subcommand;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The files differ in meaning.
pub const EXIT_DRIFT: u8 = 1;
/// A config is invalid or unreadable.
pub const EXIT_INVALID: u8 = 2;
/// An output could not be written (or would be overwritten).
pub const EXIT_WRITE: u8 = 3;

/// Configuration file commands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file and print every problem and warning: an agent config (TOML or legacy
    /// INI) or a fleet manifest (YAML, `kind: FleetConfig`). Exits 2 when it has errors.
    Validate {
        /// The file: `.toml`, `.ini`, `.yaml`/`.yml` (others are recognised by their content);
        /// or a directory, checked the way the agent loads it (agent.toml, else agent.ini).
        file: PathBuf,
        /// Skip the checks that look at this machine (folders exist and are writable,
        /// CCExtractor installed): for checking a file away from its agent's host.
        #[arg(long)]
        portable: bool,
    },
    /// Print the SHA256 of a config file's canonical effective form: equal for files that mean
    /// the same, whatever their format, comments or key order.
    Hash {
        /// An agent config (TOML or legacy INI) or a fleet manifest (YAML).
        file: PathBuf,
    },
    /// Turn a legacy INI file into a commented TOML file and prove both mean the same (by the
    /// SHA256 of their canonical effective configs); the INI file is left untouched. A manifest
    /// `<output>.sha256.json` records both hashes.
    Migrate {
        /// The legacy INI file.
        ini: PathBuf,
        /// The TOML file to write (default: the INI's name with `.toml`).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace the output (and its manifest) when they exist.
        #[arg(long, conflicts_with = "check")]
        force: bool,
        /// Write nothing: re-prove that an existing pair still means the same, and what its
        /// manifest recorded. Exits 1 on drift.
        #[arg(long)]
        check: bool,
    },
}

/// Runs a config command; returns the exit code.
pub fn run(cmd: ConfigCommand) -> u8 {
    match cmd {
        ConfigCommand::Validate { file, portable } => validate::run(&file, portable),
        ConfigCommand::Hash { file } => hash::run(&file),
        ConfigCommand::Migrate {
            ini,
            output,
            force,
            check,
        } => {
            let output = output.unwrap_or_else(|| ini.with_extension("toml"));
            if check {
                migrate::check(&ini, &output)
            } else {
                migrate::migrate(&ini, &output, force)
            }
        }
    }
}
