//! Connecting to a controller or an agent, and turning every failure into an exit code that
//! scripts can trust.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | the operation failed or was refused (unknown agent or revision, agent offline, a NACK-free refusal, not confirmed in time) |
//! | 2 | usage or invalid input (bad flags, an invalid manifest, a bad selector) |
//! | 3 | cannot reach the controller or the agent (connection refused, no answer) |

use std::future::Future;
use std::time::Duration;

use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

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
pub async fn admin(controller: &str) -> Result<FleetAdminClient<Channel>, Failure> {
    let what = format!("the controller at {controller}");
    Ok(FleetAdminClient::new(channel(controller, &what).await?))
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

/// Runs an async command on a small runtime and prints its failure; returns the exit code.
pub fn run(fut: impl Future<Output = Result<(), Failure>>) -> u8 {
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
    match runtime.block_on(fut) {
        Ok(()) => EXIT_OK,
        Err(f) => {
            for line in f.message.lines() {
                eprintln!("fleetctl: {line}");
            }
            f.code
        }
    }
}
