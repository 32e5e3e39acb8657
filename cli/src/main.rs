//! `fleetctl`: the operator's CLI for an h264create fleet. Each verb lives in its own module
//! under `commands/`; `main` only parses arguments and maps results to exit codes.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate an h264create fleet: configuration, agents, rollouts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate, hash and migrate configuration files.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Config(cmd) => commands::config::run(cmd),
    };
    ExitCode::from(code)
}
