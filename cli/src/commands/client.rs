//! Connecting to a controller or an agent, and turning every failure into an exit code that
//! scripts can trust.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the operation failed or was refused (unknown agent or revision, agent offline, a NACK-free refusal, not confirmed in time) |
//! | 2 | usage or invalid input (bad flags, an invalid manifest, a bad selector) |
//! | 3 | cannot reach the controller or the agent (connection refused, no answer) |
//! | 4 | not allowed: no credential or an unknown token (`UNAUTHENTICATED`), or a role too low (`PERMISSION_DENIED`) |
//!
//! # Credentials
//! [`Connect`] holds the controller's address and how to prove who we are: a bearer token
//! (`--token`, `FLEETCTL_TOKEN`, or a file with `--token-file`, `FLEETCTL_TOKEN_FILE`), and for
//! `https://` the fleet CA (`--ca`, `FLEETCTL_CA`) with, optionally, an operator certificate
//! (`--cert`/`--key`). The token travels in the `authorization` metadata of every admin call.
//!
//! # Tracing
//! When `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and only then: nothing is set up otherwise),
//! every command is one span, `fleetctl VERB` (e.g. `fleetctl rollout start`, with the verb's
//! arguments as attributes), exported over OTLP as service `fleetctl`; every admin API call
//! carries its W3C trace context in the gRPC metadata, so the controller's spans (and, through
//! the assignments, the agents') join the same trace. [`run`] builds a current-thread runtime
//! per command, sets telemetry up inside it, and before exiting waits at most
//! [`TELEMETRY_FLUSH`] for the span to reach the collector: an unreachable collector costs at
//! most that, a refused connection nothing noticeable.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_telemetry::propagate::InjectTraceContext;
use h264_telemetry::{Settings, Telemetry};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed or was refused.
pub const EXIT_FAILED: u8 = 1;
/// Usage or invalid input.
pub const EXIT_INVALID: u8 = 2;
/// The controller or agent cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Not allowed: no or unknown credential, or a role too low.
pub const EXIT_DENIED: u8 = 4;
/// The largest reply fleetctl reads (a large fleet's list of agents).
const REPLY_MAX: usize = 64 * 1024 * 1024;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a unary answer (a pause waits for the agent's confirmation: 10 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest fleetctl waits at exit for its span to be exported (and the longest one export
/// may take).
pub const TELEMETRY_FLUSH: Duration = Duration::from_secs(3);

/// The controller's admin API, every call carrying the trace context of the command's span
/// and the token, if any.
pub type AdminClient = FleetAdminClient<InterceptedService<Channel, AdminInterceptor>>;

/// Where the controller is and how to prove who we are (module docs).
#[derive(clap::Args, Debug, Clone)]
pub struct Connect {
    /// The controller's address (http:// on loopback, https:// elsewhere).
    #[arg(
        long,
        global = true,
        env = "FLEETCTL_CONTROLLER",
        default_value = "http://127.0.0.1:7443"
    )]
    pub controller: String,
    /// The fleet CA that signed the controller's certificate (PEM), for https://.
    #[arg(long, global = true, env = "FLEETCTL_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// An operator certificate to log in with (PEM; with --key).
    #[arg(long, global = true, env = "FLEETCTL_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, global = true, env = "FLEETCTL_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// An API token (prefer --token-file: a token on the command line shows in `ps`).
    #[arg(long, global = true, env = "FLEETCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the API token (e.g. the controller's STATE_DIR/admin.token).
    #[arg(long, global = true, env = "FLEETCTL_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.controller)
    }
}

impl Connect {
    /// The token to send, if any: `--token`, else the content of `--token-file`.
    fn token(&self) -> Result<Option<AsciiMetadataValue>, Failure> {
        let text = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    Failure::new(
                        EXIT_INVALID,
                        format!(
                            "--token-file {}: cannot read the token: {e}",
                            path.display()
                        ),
                    )
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if text.is_empty() {
            return Err(Failure::new(EXIT_INVALID, "the token is empty"));
        }
        AsciiMetadataValue::try_from(format!("Bearer {text}"))
            .map(Some)
            .map_err(|_| {
                Failure::new(
                    EXIT_INVALID,
                    "the token holds characters a token cannot have",
                )
            })
    }

    /// The TLS settings for `url` (https:// only).
    fn tls(&self, url: &str) -> Result<Option<tonic::transport::ClientTlsConfig>, Failure> {
        if !url.starts_with("https://") {
            if self.cert.is_some() || self.ca.is_some() {
                eprintln!("fleetctl: warning: --ca/--cert are ignored for {url} (not https://)");
            }
            return Ok(None);
        }
        let ca = self.ca.as_deref().ok_or_else(|| {
            Failure::new(
                EXIT_INVALID,
                format!("{url} is https://: give the fleet CA with --ca FILE (or FLEETCTL_CA)"),
            )
        })?;
        let identity = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(Failure::new(
                    EXIT_INVALID,
                    "--cert and --key go together (an operator certificate and its key)",
                ))
            }
        };
        let host = h264_trust::tls::host_of(url).unwrap_or_default();
        h264_trust::tls::client_config(ca, identity, &host)
            .map(Some)
            .map_err(|e| Failure::new(EXIT_INVALID, e.to_string()))
    }
}

/// Adds the trace context and the token to every admin call.
#[derive(Debug, Clone)]
pub struct AdminInterceptor {
    token: Option<AsciiMetadataValue>,
}

impl Interceptor for AdminInterceptor {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let mut request = InjectTraceContext.call(request)?;
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A failed command: its exit code and what to print on stderr.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// The message (may span lines).
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Maps a gRPC status from `what` (e.g. "the controller at http://...") to an exit code.
    pub fn from_status(what: &str, status: &Status) -> Self {
        let msg = status.message();
        match status.code() {
            Code::Unavailable | Code::Cancelled => {
                Self::new(EXIT_UNREACHABLE, format!("cannot reach {what}: {msg}"))
            }
            Code::InvalidArgument => Self::new(EXIT_INVALID, msg),
            Code::Unauthenticated => {
                Self::new(EXIT_DENIED, format!("not authenticated by {what}: {msg}"))
            }
            Code::PermissionDenied => Self::new(EXIT_DENIED, format!("not allowed: {msg}")),
            Code::Unimplemented => Self::new(
                EXIT_FAILED,
                format!("{what} does not offer this call (another version?): {msg}"),
            ),
            _ => Self::new(EXIT_FAILED, msg),
        }
    }
}

/// Turns `--agent HOST:PORT` or a URL into a URL.
pub fn url_of(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

async fn channel(
    url: &str,
    what: &str,
    tls: Option<tonic::transport::ClientTlsConfig>,
) -> Result<Channel, Failure> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| Failure::new(EXIT_INVALID, format!("`{url}` is not a valid address: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Failure::new(EXIT_INVALID, format!("TLS for {url}: {e}")))?;
    }
    endpoint.connect().await.map_err(|e| {
        // The innermost cause says the most ("Connection refused (os error 111)").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        Failure::new(EXIT_UNREACHABLE, format!("cannot reach {what}: {cause}"))
    })
}

/// Connects to the controller's admin API.
pub async fn admin(connect: &Connect) -> Result<AdminClient, Failure> {
    let controller = &connect.controller;
    let what = format!("the controller at {controller}");
    tracing::Span::current().set_attribute("controller", controller.to_owned());
    let interceptor = AdminInterceptor {
        token: connect.token()?,
    };
    let tls = connect.tls(controller)?;
    Ok(
        FleetAdminClient::with_interceptor(channel(controller, &what, tls).await?, interceptor)
            .max_decoding_message_size(REPLY_MAX),
    )
}

/// Connects to one agent's local control API.
pub async fn agent(address: &str) -> Result<AgentControlClient<Channel>, Failure> {
    let url = url_of(address);
    let what = format!("the agent at {address}");
    Ok(AgentControlClient::new(channel(&url, &what, None).await?))
}

/// Awaits a unary call with [`CALL_TIMEOUT`], mapping its status.
pub async fn call<T>(
    what: &str,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(Failure::from_status(what, &status)),
        Err(_) => Err(Failure::new(
            EXIT_UNREACHABLE,
            format!("no answer from {what} within {CALL_TIMEOUT:?}"),
        )),
    }
}

/// Sets an attribute of the command's span (see the module docs); a no-op when nothing is
/// exported.
pub fn attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    tracing::Span::current().set_attribute(key, value);
}

/// Runs the async command `command` (e.g. `"rollout start"`) on a small runtime, as one span
/// when tracing is configured (module docs), and prints its failure; returns the exit code.
pub fn run(command: &str, fut: impl Future<Output = Result<(), Failure>>) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetctl: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let result = runtime.block_on(traced(command, fut));
    match result {
        Ok(()) => EXIT_OK,
        Err(f) => {
            for line in f.message.lines() {
                eprintln!("fleetctl: {line}");
            }
            f.code
        }
    }
}

/// Runs `fut` inside the command's span, then flushes the span (at most [`TELEMETRY_FLUSH`]).
async fn traced(
    command: &str,
    fut: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    let Some(telemetry) = telemetry() else {
        return fut.await;
    };
    let Some(layer) = telemetry.layer() else {
        return fut.await;
    };
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(layer);
    let guard = tracing::subscriber::set_default(subscriber);
    let span = tracing::info_span!(
        "fleetctl",
        otel.name = %format!("fleetctl {command}"),
        otel.kind = "client",
        command,
        exit_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
    );
    let result = fut.instrument(span.clone()).await;
    match &result {
        Ok(()) => span.record("exit_code", i64::from(EXIT_OK)),
        Err(f) => span
            .record("exit_code", i64::from(f.code))
            .record("otel.status_description", f.message.as_str()),
    };
    drop(span);
    drop(guard);
    telemetry.shutdown(TELEMETRY_FLUSH).await;
    result
}

/// Telemetry from the standard `OTEL_*` variables; `None` when no endpoint is set (or it is
/// unusable: then a warning, and the command runs untraced).
fn telemetry() -> Option<Telemetry> {
    let mut settings = Settings::new("fleetctl", env!("CARGO_PKG_VERSION")).with_env();
    settings.otlp_endpoint.as_ref()?;
    settings.export_timeout = TELEMETRY_FLUSH;
    // One attempt: a collector that is down must not hold the command up; and no metrics.
    settings.export_retries = false;
    settings.export_metrics = false;
    match Telemetry::init(settings, false) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("fleetctl: warning: {e}; the command runs without tracing");
            None
        }
    }
}
