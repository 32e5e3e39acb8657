//! `h264-controller`: keeps versioned, SHA256-verified fleet configuration and pushes it to
//! agents. Not implemented yet: this binary only reports that, so that scripts fail clearly.

use clap::Parser;

/// The fleet controller of h264create.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("h264-controller: not implemented yet; run h264-agent standalone");
    std::process::ExitCode::from(64)
}
