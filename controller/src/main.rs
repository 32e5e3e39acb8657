//! `h264-controller`: the binary. Parses arguments (or a TOML file), sets up logging and
//! signals, binds, prints `listening on ADDR` on stdout (for scripts and tests that pass port
//! 0), and serves until SIGTERM or SIGINT. Exit codes: 0 stopped cleanly; 2 invalid
//! configuration; 3 cannot start (state folder locked or unusable, address taken) or failed.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use h264_controller::config::{self, Overrides};
use tokio_util::sync::CancellationToken;

/// The fleet controller of h264create: versioned configuration pushed to agents.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (agent sessions, admin API, health); port 0 picks a free port.
    #[arg(long)]
    listen: Option<String>,
    /// Folder of the controller's database.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A TOML file with `listen`, `state_dir` (and optional settings); flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

const EXIT_CONFIG: u8 = 2;
const EXIT_START: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            state_dir: args.state_dir,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("h264-controller: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(args.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h264-controller: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    runtime.block_on(async move {
        let bound = match h264_controller::bind(config).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("h264-controller: cannot start: {e}");
                return ExitCode::from(EXIT_START);
            }
        };
        println!("listening on {}", bound.local_addr());
        let _ = std::io::stdout().flush();
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match bound.serve(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("h264-controller: {e}");
                ExitCode::from(EXIT_START)
            }
        }
    })
}

fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// First SIGTERM or SIGINT: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if n == 0 {
            tracing::info!("signal received: shutting down gracefully (send it again to force)");
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    }
}
