//! `fleetctl`: the operator's CLI for an h264create fleet. Each verb lives in its own module
//! under `commands/`; `main` only parses arguments and maps results to exit codes.
//!
//! Exit codes of the controller and agent verbs: 0 done; 1 the operation failed or was
//! refused; 2 usage or invalid input; 3 the controller or agent cannot be reached (see
//! `commands/client.rs`). `config` has its own table (`commands/config/mod.rs`).

mod commands;

use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

/// Operate an h264create fleet: configuration, agents, rollouts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The controller's address.
    #[arg(
        long,
        global = true,
        env = "FLEETCTL_CONTROLLER",
        default_value = "http://127.0.0.1:7443"
    )]
    controller: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send a fleet manifest to the controller: a new revision when its spec changed, assigned
    /// to every agent.
    Apply(commands::apply::ApplyArgs),
    /// List agents or revisions.
    Get(commands::get::GetArgs),
    /// Show one agent in detail.
    Describe(commands::describe::DescribeArgs),
    /// Assign a revision to one agent, the agents a selector matches, or every agent.
    Assign(commands::assign::AssignArgs),
    /// Start, follow and steer rollouts (canary, percentages, gates, rollback).
    Rollout(commands::rollout::RolloutArgs),
    /// The fleet at a glance; --watch follows it live.
    Status(commands::status::StatusArgs),
    /// Ping, pause, resume, stats, errors of one agent (through the controller or directly).
    Agent(commands::agent::AgentArgs),
    /// Validate, hash and migrate configuration files.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Print the shell completion script (`fleetctl completion bash > ~/.local/share/bash-completion/completions/fleetctl`).
    Completion(CompletionArgs),
}

#[derive(Args, Debug)]
struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: h264_service::cli::Shell,
}

fn main() -> ExitCode {
    let cli = h264_service::cli::parse::<Cli>();
    let c = &cli.controller;
    let code = match cli.command {
        Command::Apply(args) => commands::apply::run(c, args),
        Command::Get(args) => commands::get::run(c, args),
        Command::Describe(args) => commands::describe::run(c, args),
        Command::Assign(args) => commands::assign::run(c, args),
        Command::Rollout(args) => commands::rollout::run(c, args),
        Command::Status(args) => commands::status::run(c, args),
        Command::Agent(args) => commands::agent::run(c, args),
        Command::Config(cmd) => commands::config::run(cmd),
        Command::Completion(args) => {
            h264_service::cli::write_completion(Cli::command(), args.shell, &mut std::io::stdout());
            0
        }
    };
    ExitCode::from(code)
}
