//! Connecting to a controller or an agent, and turning every failure into an exit code that
//! scripts can trust.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the operation failed or was refused (unknown agent or revision, agent offline, a NACK-free refusal, not confirmed in time) |
//! | 2 | usage or invalid input (bad flags, an invalid manifest, a bad selector) |
//! | 3 | cannot reach the controller or the agent (connection refused, no answer) |
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

use std::future::Future;
use std::time::Duration;

use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_telemetry::propagate::InjectTraceContext;
use h264_telemetry::{Settings, Telemetry};
use tonic::service::interceptor::InterceptedService;
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

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a unary answer (a pause waits for the agent's confirmation: 10 s).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest fleetctl waits at exit for its span to be exported (and the longest one export
/// may take).
pub const TELEMETRY_FLUSH: Duration = Duration::from_secs(3);

/// The controller's admin API, every call carrying the trace context of the command's span.
pub type AdminClient = FleetAdminClient<InterceptedService<Channel, InjectTraceContext>>;

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

async fn channel(url: &str, what: &str) -> Result<Channel, Failure> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| Failure::new(EXIT_INVALID, format!("`{url}` is not a valid address: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
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
pub async fn admin(controller: &str) -> Result<AdminClient, Failure> {
    let what = format!("the controller at {controller}");
    tracing::Span::current().set_attribute("controller", controller.to_owned());
    Ok(FleetAdminClient::with_interceptor(
        channel(controller, &what).await?,
        InjectTraceContext,
    ))
}

/// Connects to one agent's local control API.
pub async fn agent(address: &str) -> Result<AgentControlClient<Channel>, Failure> {
    let url = url_of(address);
    let what = format!("the agent at {address}");
    Ok(AgentControlClient::new(channel(&url, &what).await?))
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
