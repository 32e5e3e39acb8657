//! `fleetctl agent ping|pause|resume|stats|errors`: through the controller (`ID`), or straight
//! to one agent's local control API (`--agent HOST:PORT`, as in `[agent] control`, or
//! `--agent-state-dir DIR`: the address the agent bound, from `DIR/control.addr`, and its token,
//! `DIR/control.token`; the way to reach an agent configured with port 0).
//!
//! Through the controller, pause and resume travel over the agent's session and are confirmed
//! by its next stats; stats and errors are what the controller last heard. `ping` always talks
//! to the agent itself.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Subcommand};
use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::agent_control_reply::Body as Reply;
use h264_proto::v1::agent_control_request::Body as Req;
use h264_proto::v1::{
    AgentControlRequest, ErrorsReply, ErrorsRequest, PauseReply, PauseRequest, PingRequest,
    ResumeReply, ResumeRequest, StatsReply, StatsRequest,
};
use serde::Serialize;
use tonic::transport::Channel;

use super::client::{self, Failure, EXIT_FAILED};
use super::output::{emit, pairs, Format, OutputArg, Table};
use super::views::{ErrorView, StatsView};

/// `agent` arguments.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub verb: AgentVerb,
    #[command(flatten)]
    pub out: OutputArg,
}

/// Which agent: by id through the controller, or by address directly.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "agent", "agent_state_dir"])))]
#[command(group(ArgGroup::new("direct").args(["agent", "agent_state_dir"])))]
pub struct Which {
    /// The agent's id (through the controller).
    pub id: Option<String>,
    /// The agent's control address, HOST:PORT (straight to the agent, no controller).
    #[arg(long, value_name = "HOST:PORT")]
    pub agent: Option<String>,
    /// The agent's state_dir (straight to the agent, no controller): the address it bound, from
    /// `control.addr` there, and its `control.token` for pause and resume.
    #[arg(long, value_name = "DIR")]
    pub agent_state_dir: Option<PathBuf>,
    /// With --agent or --agent-state-dir: the agent's control token for pause and resume
    /// (default: the `control.token` file in its state_dir, which the agent names, when this
    /// user may read it).
    #[arg(long, value_name = "FILE", requires = "direct")]
    pub agent_token_file: Option<PathBuf>,
}

/// The address file the agent writes in its state_dir at each start (the agent's
/// `control_addr` module): one line, the `HOST:PORT` its control API bound.
const ADDR_FILE: &str = "control.addr";

/// The longest address file taken (an IPv6 address with a scope and a port fits many times).
const ADDR_FILE_MAX: u64 = 256;

/// The token file the agent writes beside it.
const TOKEN_FILE: &str = "control.token";

/// The control address of the agent whose state_dir is `dir`.
fn address_in(dir: &Path) -> Result<String, Failure> {
    let path = dir.join(ADDR_FILE);
    let cannot = |why: String| {
        Failure::new(
            EXIT_FAILED,
            format!(
                "cannot find the agent's control address in {}: {why}; is an agent running with \
                 this state_dir, and may this user read it (the agent's service user or root)?",
                path.display()
            ),
        )
    };
    // Where the address is read from decides where the token is sent: only a small regular
    // file that no one but its owner may change, owned by the owner of the folder (the agent's
    // service user), is taken; never one reached through a symlink.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(&path).map_err(|e| cannot(e.to_string()))?;
    let dir_owner = std::fs::metadata(dir)
        .map_err(|e| cannot(e.to_string()))?
        .uid();
    if !meta.file_type().is_file() {
        return Err(cannot("it is not a regular file (a symlink?)".into()));
    }
    if meta.mode() & 0o022 != 0 || meta.uid() != dir_owner {
        return Err(cannot(format!(
            "others than the agent's user may change it (mode {:o}, owner {}, the folder's \
             owner {dir_owner}); the agent writes it with mode 0600",
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    if meta.len() > ADDR_FILE_MAX {
        return Err(cannot(format!(
            "it holds {} bytes, not one HOST:PORT line",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| cannot(e.to_string()))?;
    let addr = text.trim();
    addr.parse::<std::net::SocketAddr>()
        .map_err(|e| cannot(format!("`{addr}` is not HOST:PORT ({e})")))?;
    Ok(addr.to_owned())
}

/// The agent verbs.
#[derive(Debug, Subcommand)]
pub enum AgentVerb {
    /// Who the agent is, its version, uptime and configuration generation (direct only).
    Ping {
        /// The agent's control address, HOST:PORT.
        #[arg(
            long,
            value_name = "HOST:PORT",
            required_unless_present = "agent_state_dir"
        )]
        agent: Option<String>,
        /// The agent's state_dir: the address it bound, from `control.addr` there.
        #[arg(long, value_name = "DIR", conflicts_with = "agent")]
        agent_state_dir: Option<PathBuf>,
    },
    /// Stop starting jobs (running jobs finish unless --cancel-running).
    Pause {
        #[command(flatten)]
        which: Which,
        /// Also cancel the running jobs (they are converted again after the resume).
        #[arg(long, alias = "cancel")]
        cancel_running: bool,
    },
    /// Start jobs again after a pause.
    Resume {
        #[command(flatten)]
        which: Which,
    },
    /// Counters, queue, running jobs, disk.
    Stats {
        #[command(flatten)]
        which: Which,
    },
    /// The most recent errors, newest first.
    Errors {
        #[command(flatten)]
        which: Which,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Runs an `agent` verb.
pub fn run(controller: &client::Connect, args: AgentArgs) -> u8 {
    let command = match &args.verb {
        AgentVerb::Ping { .. } => "agent ping",
        AgentVerb::Pause { .. } => "agent pause",
        AgentVerb::Resume { .. } => "agent resume",
        AgentVerb::Stats { .. } => "agent stats",
        AgentVerb::Errors { .. } => "agent errors",
    };
    client::run(command, agent(controller, args.verb, args.out.output))
}

/// What a verb asks for, whichever way it travels.
enum Ask {
    Pause(PauseRequest),
    Resume(ResumeRequest),
    Stats(StatsRequest),
    Errors(ErrorsRequest),
}

async fn agent(
    controller: &client::Connect,
    verb: AgentVerb,
    format: Format,
) -> Result<(), Failure> {
    let (which, ask) = match verb {
        AgentVerb::Ping {
            agent,
            agent_state_dir,
        } => {
            let addr = match (agent, agent_state_dir) {
                (Some(addr), _) => addr,
                (None, Some(dir)) => address_in(&dir)?,
                (None, None) => unreachable!("clap requires --agent or --agent-state-dir"),
            };
            return ping(&addr, format).await;
        }
        AgentVerb::Pause {
            which,
            cancel_running,
        } => (which, Ask::Pause(PauseRequest { cancel_running })),
        AgentVerb::Resume { which } => (which, Ask::Resume(ResumeRequest {})),
        AgentVerb::Stats { which } => (which, Ask::Stats(StatsRequest {})),
        AgentVerb::Errors { which, limit } => (which, Ask::Errors(ErrorsRequest { limit })),
    };
    let reply = match (which.agent, which.agent_state_dir, which.id) {
        (Some(addr), _, _) => direct(&addr, ask, which.agent_token_file.as_deref()).await?,
        (None, Some(dir), _) => {
            let addr = address_in(&dir)?;
            let token = which
                .agent_token_file
                .unwrap_or_else(|| dir.join(TOKEN_FILE));
            direct(&addr, ask, Some(&token)).await?
        }
        (None, None, Some(id)) => through(controller, id, ask).await?,
        (None, None, None) => unreachable!("clap requires an id, --agent or --agent-state-dir"),
    };
    print(reply, format);
    Ok(())
}

async fn direct(addr: &str, ask: Ask, token_file: Option<&Path>) -> Result<Reply, Failure> {
    let mut c = client::agent(addr).await?;
    let what = format!("the agent at {addr}");
    Ok(match ask {
        Ask::Pause(r) => {
            let r = with_token(&mut c, &what, r, token_file).await?;
            Reply::Pause(client::call(&what, c.pause(r)).await?)
        }
        Ask::Resume(r) => {
            let r = with_token(&mut c, &what, r, token_file).await?;
            Reply::Resume(client::call(&what, c.resume(r)).await?)
        }
        Ask::Stats(r) => Reply::Stats(client::call(&what, c.stats(r)).await?),
        Ask::Errors(r) => Reply::Errors(client::call(&what, c.errors(r)).await?),
    })
}

/// `request` with the agent's control token, read from `token_file` or from the file the agent
/// names in its Ping; without a readable token the request goes as it is (and the agent refuses
/// it, saying why).
async fn with_token<T>(
    c: &mut AgentControlClient<Channel>,
    what: &str,
    request: T,
    token_file: Option<&Path>,
) -> Result<tonic::Request<T>, Failure> {
    let mut request = tonic::Request::new(request);
    let path = match token_file {
        Some(path) => path.to_path_buf(),
        None => {
            let ping = client::call(what, c.ping(PingRequest {})).await?;
            if ping.control_token_file.is_empty() {
                return Ok(request);
            }
            PathBuf::from(ping.control_token_file)
        }
    };
    let token = match std::fs::read_to_string(&path) {
        Ok(token) => token,
        Err(e) if token_file.is_some() => {
            return Err(Failure::new(
                EXIT_FAILED,
                format!("cannot read the token file {}: {e}", path.display()),
            ))
        }
        Err(_) => return Ok(request),
    };
    if let Ok(value) = format!("Bearer {}", token.trim()).parse() {
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

async fn through(controller: &client::Connect, id: String, ask: Ask) -> Result<Reply, Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let body = match ask {
        Ask::Pause(r) => Req::Pause(r),
        Ask::Resume(r) => Req::Resume(r),
        Ask::Stats(r) => Req::Stats(r),
        Ask::Errors(r) => Req::Errors(r),
    };
    let reply = client::call(
        &what,
        admin.agent_control(AgentControlRequest {
            agent_id: id,
            body: Some(body),
        }),
    )
    .await?;
    reply
        .body
        .ok_or_else(|| Failure::new(EXIT_FAILED, "the controller sent an empty answer"))
}

#[derive(Debug, Serialize)]
struct PingView {
    agent_id: String,
    version: String,
    uptime_seconds: u64,
    config_generation: u64,
    config_sha256: String,
    pid: u32,
    config_warnings: Vec<String>,
}

async fn ping(addr: &str, format: Format) -> Result<(), Failure> {
    let mut c = client::agent(addr).await?;
    let p = client::call(&format!("the agent at {addr}"), c.ping(PingRequest {})).await?;
    let view = PingView {
        agent_id: p.agent_id,
        version: p.version,
        uptime_seconds: p.uptime_seconds,
        config_generation: p.config_generation,
        config_sha256: p.config_sha256,
        pid: p.pid,
        config_warnings: p.config_warnings,
    };
    emit(format, &view, |v| {
        let mut items = vec![
            ("agent", v.agent_id.clone()),
            ("version", v.version.clone()),
            ("pid", v.pid.to_string()),
            (
                "uptime",
                humantime::format_duration(std::time::Duration::from_secs(v.uptime_seconds))
                    .to_string(),
            ),
            ("config generation", v.config_generation.to_string()),
            ("config sha256", v.config_sha256.clone()),
        ];
        for w in &v.config_warnings {
            items.push(("warning", w.clone()));
        }
        pairs(&items)
    });
    Ok(())
}

#[derive(Debug, Serialize)]
struct PauseView {
    paused: bool,
    cancelled: u32,
}

#[derive(Debug, Serialize)]
struct ResumeView {
    paused: bool,
    still_held_by: String,
}

fn print(reply: Reply, format: Format) {
    match reply {
        Reply::Pause(PauseReply { paused, cancelled }) => {
            emit(format, &PauseView { paused, cancelled }, |v| {
                format!(
                    "paused: no new jobs start until resume ({} running jobs cancelled)\n",
                    v.cancelled
                )
            })
        }
        Reply::Resume(ResumeReply {
            paused,
            still_held_by,
        }) => emit(
            format,
            &ResumeView {
                paused,
                still_held_by,
            },
            |v| {
                if v.paused {
                    format!("resumed by hand, but still held by: {}\n", v.still_held_by)
                } else {
                    "resumed: jobs start again\n".into()
                }
            },
        ),
        Reply::Stats(s) => print_stats(&s, format),
        Reply::Errors(e) => print_errors(&e, format),
    }
}

fn print_stats(s: &StatsReply, format: Format) {
    emit(format, &StatsView::from(s), |v| {
        let c = &v.since_start;
        let j = &v.journal;
        let mut out = pairs(&[
            ("queue", v.queue_depth.to_string()),
            ("workers", v.workers.to_string()),
            (
                "paused",
                if v.paused {
                    format!("yes ({})", v.paused_by)
                } else {
                    "no".into()
                },
            ),
            (
                "converted",
                format!("{} ({} since start)", j.converted, c.converted),
            ),
            ("failed", format!("{} ({} since start)", j.failed, c.failed)),
            (
                "retried",
                format!("{} ({} since start)", j.retried, c.retried),
            ),
            ("mean speed", format!("{:.2}x", j.mean_speed)),
            (
                "captions lost",
                format!("{} ({} since start)", j.captions_lost, c.captions_lost),
            ),
            ("alert queue", v.alert_queue_depth.to_string()),
            ("disk", v.disk_text()),
        ]);
        if !v.held_roots.is_empty() {
            let mut t = Table::new(&["HELD ROOT", "KIND", "SINCE", "WHY"]);
            for h in &v.held_roots {
                t.row(vec![
                    h.path.clone(),
                    h.kind.clone(),
                    h.since.clone(),
                    h.reason.clone(),
                ]);
            }
            out.push_str("\nheld roots (missing or unreachable; their recordings wait):\n");
            out.push_str(&t.render());
        }
        if !v.running.is_empty() {
            let mut t = Table::new(&["SOURCE", "STAGE", "PERCENT", "SPEED", "ATTEMPT"]);
            for r in &v.running {
                t.row(vec![
                    r.source.clone(),
                    r.stage.clone(),
                    format!("{:.1}%", r.percent),
                    format!("{:.2}x", r.speed),
                    r.attempt.to_string(),
                ]);
            }
            out.push_str("\nrunning:\n");
            out.push_str(&t.render());
        }
        if !v.volumes.is_empty() {
            let mut t = Table::new(&["VOLUME", "FREE", "TOTAL", "LEVEL"]);
            for vol in &v.volumes {
                t.row(vec![
                    vol.path.clone(),
                    gib(vol.free_bytes),
                    gib(vol.total_bytes),
                    vol.level.clone(),
                ]);
            }
            out.push_str("\nvolumes:\n");
            out.push_str(&t.render());
        }
        out
    });
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn print_errors(e: &ErrorsReply, format: Format) {
    let views: Vec<ErrorView> = e.errors.iter().map(ErrorView::from).collect();
    emit(format, &views, |views| {
        if views.is_empty() {
            return "no errors\n".into();
        }
        let mut t = Table::new(&["AT", "KIND", "STAGE", "FILE", "MESSAGE"]);
        for e in views {
            t.row(vec![
                e.at.clone(),
                e.kind.clone(),
                e.stage.clone(),
                e.file.clone(),
                e.message.clone(),
            ]);
        }
        t.render()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn state_with(addr: &str, mode: u32) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(ADDR_FILE);
        std::fs::write(&file, addr).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    #[test]
    fn the_agents_address_file_is_read() {
        let dir = state_with("127.0.0.1:4567\n", 0o600);
        assert_eq!(address_in(dir.path()).unwrap(), "127.0.0.1:4567");
    }

    #[test]
    fn a_hostile_address_file_is_refused() {
        // Writable by others: anyone could send the token elsewhere.
        let dir = state_with("127.0.0.1:4567\n", 0o622);
        assert!(address_in(dir.path()).is_err());
        // Oversized.
        let dir = state_with(&"9".repeat(10 * 1024 * 1024), 0o600);
        assert!(address_in(dir.path()).is_err());
        // Not HOST:PORT (a newline and a second line).
        let dir = state_with("127.0.0.1:4567\nevil.example:80\n", 0o600);
        assert!(address_in(dir.path()).is_err());
        // Reached through a symlink.
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = state_with("127.0.0.1:4567\n", 0o600);
        std::os::unix::fs::symlink(elsewhere.path().join(ADDR_FILE), dir.path().join(ADDR_FILE))
            .unwrap();
        assert!(address_in(dir.path()).is_err());
    }
}
