//! `h264-controller`: the binary. Parses arguments (or a TOML file), sets up telemetry,
//! logging and signals, binds, prints `listening on ADDR` on stdout (for scripts and tests
//! that pass port 0; then `metrics on http://ADDR/metrics` when metrics are served), and
//! serves until SIGTERM or SIGINT. Exit codes: 0 stopped cleanly; 2 invalid configuration
//! (plaintext on a non-loopback address without `--insecure-plaintext` among them); 3 cannot
//! start (state folder locked or unusable, address taken, TLS files unusable) or failed.
//!
//! `h264-controller token create --state-dir DIR --role ROLE --name NAME` makes an API token
//! and prints it once on stdout (it works while a controller runs on that folder).
//!
//! Telemetry (`[telemetry]` and the standard `OTEL_*` variables) is set up inside the runtime
//! (the OTLP exporter needs it), before the log subscriber, whose OpenTelemetry layer exports
//! the spans; at exit what is buffered is flushed for at most [`TELEMETRY_FLUSH`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use h264_controller::config::{self, ControllerConfig, Overrides};
use h264_telemetry::scrape::ScrapeEndpoint;
use h264_telemetry::{Settings, Telemetry};
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
    /// Serve Prometheus metrics on this address (`GET /metrics`; port 0 picks a free port),
    /// overriding `[telemetry] metrics_listen`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// The controller's TLS certificate chain (PEM); with --tls-key, every connection is TLS.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The CA of agent and operator certificates: agents must then present one naming them.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address (unsafe; warned about at every start).
    #[arg(long)]
    insecure_plaintext: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Make a token and print it once on stdout (only its hash is kept).
    Create {
        /// The controller's state folder.
        #[arg(long)]
        state_dir: PathBuf,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// A name for the token (shown in the audit trail).
        #[arg(long)]
        name: String,
    },
}

/// `token create`: exit 0 with the token on stdout, 2 for a bad role or name, 3 when the
/// database cannot take it.
fn token_create(state_dir: &std::path::Path, role: &str, name: &str) -> ExitCode {
    use h264_controller::auth::tokens;
    let role = match h264_trust::Role::parse(role) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h264-controller: --role: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(e) = tokens::check_name(name) {
        eprintln!("h264-controller: --name: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let token = tokens::generate();
    match h264_controller::store::add_token_offline(
        state_dir,
        name,
        role.as_str(),
        &tokens::hash(&token),
        h264_controller::model::now_ms(),
    ) {
        Ok(()) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let text = e.to_string();
            if text.contains("UNIQUE") {
                eprintln!(
                    "h264-controller: a token named `{name}` exists already: choose another name"
                );
            } else {
                eprintln!("h264-controller: cannot store the token: {text}");
            }
            ExitCode::from(EXIT_START)
        }
    }
}

const EXIT_CONFIG: u8 = 2;
const EXIT_START: u8 = 3;
/// The longest the exit waits for buffered spans and metrics to be exported.
const TELEMETRY_FLUSH: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = h264_service::cli::parse::<Args>();
    if let Some(Command::Token(TokenCommand::Create {
        state_dir,
        role,
        name,
    })) = &args.command
    {
        return token_create(state_dir, role, name);
    }
    let mut config = match config::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            state_dir: args.state_dir,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            client_ca: args.client_ca,
            insecure_plaintext: args.insecure_plaintext,
        },
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("h264-controller: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(addr) = &args.metrics_listen {
        match config::parse_metrics_listen(addr) {
            Ok(a) => config.telemetry.metrics_listen = Some(a),
            Err(e) => {
                eprintln!("h264-controller: invalid configuration: --metrics-listen: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h264-controller: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    runtime.block_on(async move {
        let telemetry = match start_telemetry(&config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("h264-controller: invalid configuration: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        init_logging(args.log_json, &telemetry);
        let code = serve(config, &telemetry).await;
        telemetry.shutdown(TELEMETRY_FLUSH).await;
        code
    })
}

/// Binds, serves the metrics (when configured) and the controller until a signal.
async fn serve(config: ControllerConfig, telemetry: &Telemetry) -> ExitCode {
    let metrics_listen = config.telemetry.metrics_listen;
    let bound = match h264_controller::bind(config).await {
        Ok(b) => b.with_meter(telemetry.meter("h264-controller")),
        Err(e) => {
            eprintln!("h264-controller: cannot start: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    let shutdown = CancellationToken::new();
    let scrape = match (metrics_listen, telemetry.registry()) {
        (Some(addr), Some(registry)) => match ScrapeEndpoint::bind(addr, registry.clone()).await {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                eprintln!(
                    "h264-controller: cannot serve the metrics on {addr}: {e}; free the address or change [telemetry] metrics_listen (--metrics-listen)"
                );
                return ExitCode::from(EXIT_START);
            }
        },
        _ => None,
    };
    println!("listening on {}", bound.local_addr());
    if let Some(path) = bound.admin_token_file() {
        tracing::info!(file = %path.display(), "first start: the admin token was written (mode 0600); fleetctl --token-file reads it");
    }
    if let Some(endpoint) = scrape {
        let addr = endpoint.local_addr();
        println!("metrics on http://{addr}/metrics");
        tracing::info!(%addr, "Prometheus metrics served at /metrics");
        tokio::spawn(endpoint.serve(shutdown.clone()));
    }
    let _ = std::io::stdout().flush();
    tokio::spawn(watch_signals(shutdown.clone()));
    // Under systemd (Type=notify): READY=1 now that it listens, WATCHDOG=1, STOPPING=1.
    h264_service::systemd::ready(&format!("listening on {}", bound.local_addr()));
    let _systemd = h264_service::systemd::supervise(shutdown.clone());
    match bound.serve(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("h264-controller: {e}");
            ExitCode::from(EXIT_START)
        }
    }
}

/// OTLP export from `[telemetry]` (or `OTEL_EXPORTER_OTLP_ENDPOINT`), Prometheus metrics when
/// `metrics_listen` is set; nothing at all when neither is.
fn start_telemetry(config: &ControllerConfig) -> Result<Telemetry, h264_telemetry::TelemetryError> {
    let mut settings = Settings::new("h264-controller", env!("CARGO_PKG_VERSION"))
        .with_resource("controller.listen", config.listen.to_string());
    settings
        .otlp_endpoint
        .clone_from(&config.telemetry.otlp_endpoint);
    settings.otlp_protocol = config.telemetry.otlp_protocol;
    Telemetry::init(
        settings.with_env(),
        config.telemetry.metrics_listen.is_some(),
    )
}

/// Logs to stderr (`RUST_LOG`, default `info`; text or JSON) and, when spans are exported,
/// hands the h264create spans to the OpenTelemetry layer (which filters on its own, so
/// `RUST_LOG=warn` quiets the log without emptying the traces).
fn init_logging(json: bool, telemetry: &Telemetry) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let stderr = if json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(telemetry.layer())
        .init();
}

/// First SIGTERM or SIGINT: graceful shutdown. Second: exit at once.
fn watch_signals(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    let second = h264_service::signals::watch(shutdown);
    async move {
        second.await;
        std::process::exit(130);
    }
}
