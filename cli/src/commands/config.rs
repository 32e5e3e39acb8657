//! `fleetctl config validate|hash|migrate`: work on configuration files, no controller needed.

use std::path::PathBuf;

use clap::Subcommand;

/// Configuration file commands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the SHA256 of a config file's canonical effective form.
    Hash {
        /// An agent config (TOML or legacy INI).
        file: PathBuf,
    },
}

/// Runs a config command; returns the exit code.
pub fn run(cmd: ConfigCommand) -> u8 {
    match cmd {
        ConfigCommand::Hash { file } => match h264_config::load_agent_config(&file) {
            Ok(loaded) => {
                println!("{}", loaded.config.canonical_sha256());
                0
            }
            Err(e) => {
                eprintln!("fleetctl: {e}");
                2
            }
        },
    }
}
