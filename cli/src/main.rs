//! `fleetctl`: the operator's CLI. Its commands (apply, rollout, agent, config) arrive with the
//! controller; for now it only reports that, so that scripts fail clearly.

use clap::Parser;

/// Operate an h264create fleet.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("fleetctl: no commands are implemented yet");
    std::process::ExitCode::from(64)
}
