//! `fleetctl`: the operator's CLI for an h264create fleet. Each verb lives in its own module
//! under `commands/`; `main` only parses arguments and maps results to exit codes.
//!
//! Exit codes of the controller and agent verbs: 0 done; 1 the operation failed or was
//! refused; 2 usage or invalid input; 3 the controller or agent cannot be reached (see
//! `commands/client.rs`); 4 not allowed (no or unknown credential, or a role too low). `config` has its own table (`commands/config/mod.rs`).

mod commands;

use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand};

/// Operate an h264create fleet: configuration, agents, rollouts.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    connect: commands::client::Connect,
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
    /// The job history across the fleet: any file's attempts, newest first.
    Jobs(commands::jobs::JobsArgs),
    /// What the fleet converted: files, failures, hours of media, bytes, speed, captions.
    Report(commands::report::ReportArgs),
    /// Ping, pause, resume, stats, errors of one agent (through the controller or directly).
    Agent(commands::agent::AgentArgs),
    /// Validate, hash and migrate configuration files.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Set or remove an agent's labels (the ones rollouts select on).
    Label(commands::trust::LabelArgs),
    /// Forget an agent.
    Delete(commands::trust::DeleteArgs),
    /// API tokens (admin).
    #[command(subcommand)]
    Token(commands::trust::TokenCommand),
    /// The audit trail: every mutating call and automated decision.
    Audit(commands::trust::AuditArgs),
    /// Who the controller takes you for, and your role.
    Whoami,
    /// Keys for signing revisions.
    #[command(subcommand)]
    Keys(commands::trust::KeysCommand),
    /// A small certificate authority for the fleet's TLS.
    #[command(subcommand)]
    Pki(commands::trust::PkiCommand),
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
    let c = &cli.connect;
    let code = match cli.command {
        Command::Apply(args) => commands::apply::run(c, args),
        Command::Get(args) => commands::get::run(c, args),
        Command::Describe(args) => commands::describe::run(c, args),
        Command::Assign(args) => commands::assign::run(c, args),
        Command::Rollout(args) => commands::rollout::run(c, args),
        Command::Status(args) => commands::status::run(c, args),
        Command::Jobs(args) => commands::jobs::run(c, args),
        Command::Report(args) => commands::report::run(c, args),
        Command::Agent(args) => commands::agent::run(c, args),
        Command::Config(cmd) => commands::config::run(cmd),
        Command::Label(args) => commands::trust::label(c, args),
        Command::Delete(args) => commands::trust::delete(c, args),
        Command::Token(cmd) => commands::trust::token(c, cmd),
        Command::Audit(args) => commands::trust::audit(c, args),
        Command::Whoami => commands::trust::whoami(c),
        Command::Keys(cmd) => commands::trust::keys(cmd),
        Command::Pki(cmd) => commands::trust::pki(cmd),
        Command::Completion(args) => {
            h264_service::cli::write_completion(Cli::command(), args.shell, &mut std::io::stdout());
            0
        }
    };
    ExitCode::from(code)
}
