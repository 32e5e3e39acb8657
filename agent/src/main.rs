//! `h264-agent`: the binary. Parses arguments, loads the configuration, starts the async
//! runtime, sets up telemetry (OpenTelemetry export, the Prometheus endpoint), logging and
//! signals, and calls [`h264_agent::run`]. Exit codes: 0 success; 1 a file failed (`--once`) or
//! the agent failed while running; 2 invalid configuration (the telemetry endpoint from
//! `OTEL_EXPORTER_OTLP_ENDPOINT` included); 3 the agent could not start.
//!
//! # Concurrency
//! Everything runs on one multi-threaded tokio runtime, built first because the OTLP exporter's
//! export task and the metrics endpoint live on it. A signal task cancels the shutdown token; the
//! metrics endpoint is a task stopped by its own token once [`h264_agent::run`] has returned;
//! then buffered telemetry is flushed, within a bound, before the process exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use h264_agent::{run, RunOptions};
use h264_config::agent::OtlpProtocol;
use h264_config::{AgentConfig, Severity};
use h264_telemetry::scrape::ScrapeEndpoint;
use h264_telemetry::{Protocol, Settings, Telemetry};
use tokio_util::sync::CancellationToken;

/// Watches recorder folders and converts finished recordings to verified H.264 MP4.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The agent's configuration: a TOML file, a legacy INI file, or a folder holding
    /// `agent.toml` (and `agent.ini`, used loudly when the TOML is broken). Without it, a
    /// built-in default watches ./var/incoming and writes ./var/h264.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Convert every recording that is ready now, then exit (non-zero if any failed).
    #[arg(long)]
    once: bool,
    /// Only validate the configuration and print its problems.
    #[arg(long)]
    check: bool,
    /// Join the fleet of this controller (`http://host:7443`, or `https://host:7443` with
    /// `[controller] ca` in the configuration), overriding `[controller] endpoint` there.
    #[arg(long, value_name = "URL")]
    controller: Option<String>,
}

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_START: u8 = 3;

/// The longest the final flush of spans and metrics may take at shutdown (each).
const TELEMETRY_FLUSH: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let args = h264_service::cli::parse::<Args>();
    let (mut config, config_warnings, config_rejected) = match load(&args) {
        Ok(loaded) => loaded,
        Err(code) => return ExitCode::from(code),
    };
    if let Some(url) = &args.controller {
        config.controller.endpoint = Some(url.clone());
        let problems: Vec<_> = h264_config::validate::validate(&config, None)
            .into_iter()
            .filter(|p| (p.key.starts_with("controller") || p.key == "agent.id") && p.is_error())
            .collect();
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("h264-agent: --controller {url}: {p}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let settings = match telemetry_settings(&config) {
        Ok(settings) => settings,
        Err(code) => return ExitCode::from(code),
    };
    if args.check {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("h264-agent: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    // The exporter's task needs the runtime: set up inside it.
    let serve_metrics = config.telemetry.metrics_listen.is_some();
    let telemetry = match runtime.block_on(async { Telemetry::init(settings, serve_metrics) }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("h264-agent: invalid telemetry configuration, nothing started: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _log_files = init_logging(&config, &telemetry);
    let scrape = match runtime.block_on(bind_metrics(&config, &telemetry)) {
        Ok(scrape) => scrape,
        Err(code) => return ExitCode::from(code),
    };
    let meter = (serve_metrics || telemetry.settings().otlp_endpoint.is_some())
        .then(|| telemetry.meter(h264_agent::metrics::METER));
    let shutdown = CancellationToken::new();
    let once = args.once;
    runtime.block_on(async move {
        tokio::spawn(watch_signals(shutdown.clone()));
        // Under systemd: WATCHDOG=1 while running, STOPPING=1 at shutdown (READY=1 is sent by
        // `run` after the start-up reconcile).
        let _systemd = h264_service::systemd::supervise(shutdown.clone());
        let scrape_stop = CancellationToken::new();
        if let Some(endpoint) = scrape {
            tracing::info!("metrics on http://{}/metrics", endpoint.local_addr());
            tokio::spawn(endpoint.serve(scrape_stop.clone()));
        }
        if let Some(endpoint) = &telemetry.settings().otlp_endpoint {
            let protocol = telemetry.settings().otlp_protocol.as_str();
            tracing::info!(%endpoint, protocol, "exporting traces and metrics over OTLP");
        }
        let result = run(
            config,
            RunOptions {
                once,
                config_warnings,
                config_rejected,
                meter,
            },
            shutdown,
        )
        .await;
        let code = match result {
            Ok(summary) if once && summary.any_failed() => {
                let s = summary.stats;
                eprintln!(
                    "h264-agent: {} converted, {} failed, {} conflicts, {} not ready",
                    s.converted, s.failed, s.conflicts, s.not_ready
                );
                ExitCode::from(EXIT_FAILED)
            }
            Ok(summary) => {
                if once {
                    let s = summary.stats;
                    eprintln!(
                        "h264-agent: {} converted, {} failed, {} not ready",
                        s.converted, s.failed, s.not_ready
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("h264-agent: cannot run: {e}");
                ExitCode::from(EXIT_START)
            }
        };
        // After the agent's own shutdown (and its last log lines): what its last jobs traced is
        // flushed, within a bound.
        scrape_stop.cancel();
        telemetry.shutdown(TELEMETRY_FLUSH).await;
        code
    })
}

/// Loads and validates the configuration, printing every problem; `Err` is the exit code.
/// The configuration, the loader's warnings, and what it rejected (a broken TOML replaced by
/// its INI), for the control API and the alerts.
type Effective = (AgentConfig, Vec<String>, Vec<String>);

fn load(args: &Args) -> Result<Effective, u8> {
    let Some(path) = &args.config else {
        let config = AgentConfig::embedded_default();
        for dir in [
            &config.agent.state_dir,
            &config.watch[0].source,
            &config.watch[0].output,
        ] {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("h264-agent: cannot create {}: {e}", dir.display());
                return Err(EXIT_START);
            }
        }
        eprintln!(
            "h264-agent: no --config given; using the built-in default: drop recordings into {} \
             and find the MP4 files in {}",
            config.watch[0].source.display(),
            config.watch[0].output.display()
        );
        return Ok((config, Vec::new(), Vec::new()));
    };
    // A file or a directory; TOML first, the legacy INI beside it when the TOML is missing or
    // broken (loudly: the fallback is also the first warning).
    match h264_config::load_config(path) {
        Ok(loaded) => {
            if let Some(fallback) = &loaded.fallback {
                eprintln!(
                    "h264-agent: WARNING: {} is invalid; running on the legacy {} instead",
                    fallback.toml.display(),
                    fallback.ini.display()
                );
            }
            for w in loaded
                .warnings
                .iter()
                .filter(|p| p.severity == Severity::Warning)
            {
                eprintln!("{w}");
            }
            let warnings = loaded.warnings.iter().map(ToString::to_string).collect();
            let rejected = loaded
                .fallback
                .iter()
                .map(|f| {
                    let errors: Vec<String> = f.problems.iter().map(ToString::to_string).collect();
                    format!(
                        "{} is invalid, so the agent runs on {}:\n{}",
                        f.toml.display(),
                        f.ini.display(),
                        errors.join("\n")
                    )
                })
                .collect();
            Ok((loaded.config, warnings, rejected))
        }
        Err(e) => {
            eprintln!("h264-agent: invalid configuration, nothing started:\n{e}");
            Err(EXIT_CONFIG)
        }
    }
}

/// The telemetry settings: `[telemetry]`, then the standard `OTEL_*` variables; an endpoint or
/// protocol from the environment is held to the rules of one in the file. `Err` is the exit code.
fn telemetry_settings(config: &AgentConfig) -> Result<Settings, u8> {
    let t = &config.telemetry;
    let id = h264_agent::agent_id(config);
    let mut settings =
        Settings::new("h264-agent", env!("CARGO_PKG_VERSION")).with_resource("agent.id", id);
    settings.otlp_endpoint = t.otlp_endpoint.clone();
    settings.otlp_protocol = match t.otlp_protocol {
        OtlpProtocol::Grpc => Protocol::Grpc,
        OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
    };
    settings.span_queue = t.span_queue;
    settings.metrics_interval = t.metrics_interval.get();
    let settings = settings.with_env();
    if t.otlp_endpoint.is_some() {
        return Ok(settings);
    }
    let Some(endpoint) = &settings.otlp_endpoint else {
        return Ok(settings);
    };
    const PROTOCOL_VAR: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    if let Ok(value) = std::env::var(PROTOCOL_VAR) {
        if !value.trim().is_empty() && Protocol::parse(&value).is_none() {
            eprintln!(
                "h264-agent: invalid telemetry configuration, nothing started: {PROTOCOL_VAR}: \
                 `{value}` is not supported (hint: \"grpc\" or \"http/protobuf\")"
            );
            return Err(EXIT_CONFIG);
        }
    }
    let protocol = match settings.otlp_protocol {
        Protocol::Grpc => OtlpProtocol::Grpc,
        Protocol::HttpProtobuf => OtlpProtocol::HttpProtobuf,
    };
    let problems = h264_config::validate::telemetry::otlp_endpoint(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        endpoint,
        protocol,
    );
    for p in &problems {
        eprintln!("h264-agent: {p}");
    }
    if problems.iter().any(|p| p.is_error()) {
        eprintln!(
            "h264-agent: invalid telemetry configuration, nothing started: fix \
             OTEL_EXPORTER_OTLP_ENDPOINT in the agent's environment, or unset it"
        );
        return Err(EXIT_CONFIG);
    }
    Ok(settings)
}

/// Binds the Prometheus endpoint when `[telemetry] metrics_listen` is set. `Err` is the exit
/// code.
async fn bind_metrics(
    config: &AgentConfig,
    telemetry: &Telemetry,
) -> Result<Option<ScrapeEndpoint>, u8> {
    let (Some(listen), Some(registry)) = (&config.telemetry.metrics_listen, telemetry.registry())
    else {
        return Ok(None);
    };
    let addr = match listen.parse() {
        Ok(addr) => addr,
        Err(_) => {
            eprintln!(
                "h264-agent: invalid configuration: telemetry.metrics_listen: `{listen}` is not an \
                 address with a port"
            );
            return Err(EXIT_CONFIG);
        }
    };
    match ScrapeEndpoint::bind(addr, registry.clone()).await {
        Ok(endpoint) => Ok(Some(endpoint)),
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve metrics");
            eprintln!(
                "h264-agent: cannot serve metrics on {addr} (telemetry.metrics_listen): {e}; \
                 choose a free address, or remove the key to serve none"
            );
            Err(EXIT_START)
        }
    }
}

/// Logs to stderr and, with `[logging] dir`, to rotated files (written on their own thread;
/// the returned guard flushes them when dropped, so `main` keeps it to the end); text or JSON.
/// The telemetry layer, when spans are exported, sits beside the log layers with its own
/// filter, so the log level does not decide what is traced.
fn init_logging(
    config: &AgentConfig,
    telemetry: &Telemetry,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let json = config.logging.format == h264_config::agent::LogFormat::Json;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let mut layers: Vec<Boxed> = vec![if json {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    }];
    let mut guard = None;
    if let Some(dir) = &config.logging.dir {
        let l = &config.logging;
        match h264_agent::plumbing::logfile::non_blocking(dir, "h264-agent", l.rotation, l.keep) {
            Ok((files, flush)) => {
                guard = Some(flush);
                let layer = tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(files);
                layers.push(if json {
                    layer.json().boxed()
                } else {
                    layer.boxed()
                });
            }
            Err(e) => eprintln!(
                "h264-agent: cannot log to {}: {e}; logging to stderr only",
                dir.display()
            ),
        }
    }
    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .with(telemetry.layer())
        .init();
    guard
}

/// First SIGTERM or SIGINT: graceful shutdown. Second: exit at once.
fn watch_signals(shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    let second = h264_service::signals::watch(shutdown);
    async move {
        second.await;
        std::process::exit(130);
    }
}
