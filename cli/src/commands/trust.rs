//! The trust verbs: `label agent`, `delete agent`, `token create`, `audit`, `whoami` (through
//! the controller), and `keys generate`, `pki init|issue` (local files only).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use h264_proto::v1::{
    CreateTokenRequest, DeleteAgentRequest, LabelRequest, ListAuditRequest, WhoAmIRequest,
};
use h264_trust::pki::{self, Subject};
use h264_trust::{Role, SecretKey};
use serde::Serialize;

use super::client::{self, Connect, Failure, EXIT_FAILED, EXIT_INVALID};
use super::output::{emit, time, OutputArg, Table};

/// `label agent ID key=value... key-...`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(subcommand)]
    what: LabelWhat,
    #[command(flatten)]
    out: OutputArg,
}

#[derive(Debug, Subcommand)]
enum LabelWhat {
    /// Set (`key=value`) or remove (`key-`) an agent's labels: the ones rollouts select on
    /// (`canary=true` makes it a canary).
    Agent {
        /// The agent's id.
        id: String,
        /// `key=value` or `key-`.
        #[arg(required = true)]
        changes: Vec<String>,
    },
}

/// `delete agent ID`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(subcommand)]
    what: DeleteWhat,
}

#[derive(Debug, Subcommand)]
enum DeleteWhat {
    /// Forget an agent (a gone machine, a mistyped id); its session, if any, is closed.
    Agent {
        /// The agent's id.
        id: String,
    },
}

/// `token create`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token (admin only); printed once on stdout.
    Create {
        /// A name for it (shown in the audit trail).
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
}

/// `audit [--since 24h]`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries newer than this (e.g. 24h, 7d); default: all kept (newest 1000).
    #[arg(long)]
    since: Option<String>,
    #[command(flatten)]
    out: OutputArg,
}

/// `keys generate --out FILE`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write an ed25519 key pair for signing revisions: FILE (secret, 0600) and FILE.pub
    /// (`ed25519:BASE64`, for agents' `[controller] trusted_keys`).
    Generate {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `pki init|issue`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Make a fleet CA: DIR/ca.crt and DIR/ca.key.
    Init {
        /// The folder (made 0700 when new).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "h264create fleet CA")]
        name: String,
    },
    /// Issue a certificate from the CA in DIR: DIR/NAME.crt and DIR/NAME.key.
    Issue {
        /// The folder of the CA.
        #[arg(long)]
        dir: PathBuf,
        /// A controller's certificate for this host name or IP address.
        #[arg(long, group = "subject")]
        server: Option<String>,
        /// An agent's certificate (h264create://agent/ID).
        #[arg(long, group = "subject")]
        agent: Option<String>,
        /// An operator's certificate (h264create://operator/ROLE/NAME).
        #[arg(long, group = "subject")]
        operator: Option<String>,
        /// The operator's role: viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
}

/// Runs `label`.
pub fn label(connect: &Connect, args: LabelArgs) -> u8 {
    client::run("label agent", async move {
        let LabelWhat::Agent { id, changes } = args.what;
        let mut admin = client::admin(connect).await?;
        let what = format!("the controller at {connect}");
        let reply = client::call(
            &what,
            admin.label(LabelRequest {
                agent_id: id,
                changes,
            }),
        )
        .await?;
        let view = super::views::AgentView::from(&reply);
        emit(args.out.output, &view, |v| {
            format!("agent {} labels: {}\n", v.id, v.labels_text())
        });
        Ok(())
    })
}

/// Runs `delete`.
pub fn delete(connect: &Connect, args: DeleteArgs) -> u8 {
    client::run("delete agent", async move {
        let DeleteWhat::Agent { id } = args.what;
        let mut admin = client::admin(connect).await?;
        let what = format!("the controller at {connect}");
        let reply = client::call(
            &what,
            admin.delete_agent(DeleteAgentRequest {
                agent_id: id.clone(),
            }),
        )
        .await?;
        println!(
            "agent {id} deleted{}",
            if reply.was_connected {
                " (its session was closed)"
            } else {
                ""
            }
        );
        Ok(())
    })
}

/// Runs `token create`.
pub fn token(connect: &Connect, cmd: TokenCommand) -> u8 {
    client::run("token create", async move {
        let TokenCommand::Create { name, role } = cmd;
        Role::parse(&role).map_err(|e| Failure::new(EXIT_INVALID, format!("--role: {e}")))?;
        let mut admin = client::admin(connect).await?;
        let what = format!("the controller at {connect}");
        let reply =
            client::call(&what, admin.create_token(CreateTokenRequest { name, role })).await?;
        eprintln!(
            "token `{}` ({}) created; it is shown once, keep it in a file only its user can read:",
            reply.name, reply.role
        );
        println!("{}", reply.token);
        Ok(())
    })
}

#[derive(Debug, Serialize)]
struct AuditView {
    id: u64,
    at: String,
    at_ms: i64,
    who: String,
    role: String,
    verb: String,
    arguments: serde_json::Value,
    generation: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    sha256: String,
    result: String,
}

/// Runs `audit`.
pub fn audit(connect: &Connect, args: AuditArgs) -> u8 {
    client::run("audit", async move {
        let since_ms = match &args.since {
            Some(text) => {
                let d = humantime::parse_duration(text).map_err(|_| {
                    Failure::new(
                        EXIT_INVALID,
                        format!("--since `{text}` is not a duration like 24h"),
                    )
                })?;
                super::views::now_ms() - d.as_millis() as i64
            }
            None => 0,
        };
        let mut admin = client::admin(connect).await?;
        let what = format!("the controller at {connect}");
        let reply = client::call(
            &what,
            admin.list_audit(ListAuditRequest { since_ms, limit: 0 }),
        )
        .await?;
        let views: Vec<AuditView> = reply
            .entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: time(e.at_ms),
                at_ms: e.at_ms,
                who: e.who,
                role: e.role,
                verb: e.verb,
                arguments: serde_json::from_str(&e.arguments)
                    .unwrap_or(serde_json::Value::String(e.arguments)),
                generation: e.generation,
                sha256: e.sha256,
                result: e.result,
            })
            .collect();
        emit(args.out.output, &views, |entries| {
            let mut t = Table::new(&["AT", "WHO", "ROLE", "VERB", "GEN", "RESULT", "ARGUMENTS"]);
            for e in entries {
                t.row(vec![
                    e.at.clone(),
                    e.who.clone(),
                    e.role.clone(),
                    e.verb.clone(),
                    if e.generation == 0 {
                        "-".into()
                    } else {
                        e.generation.to_string()
                    },
                    e.result.clone(),
                    e.arguments.to_string(),
                ]);
            }
            t.render()
        });
        Ok(())
    })
}

/// Runs `whoami`.
pub fn whoami(connect: &Connect) -> u8 {
    client::run("whoami", async move {
        let mut admin = client::admin(connect).await?;
        let what = format!("the controller at {connect}");
        let reply = client::call(&what, admin.who_am_i(WhoAmIRequest {})).await?;
        println!("{} ({}, by {})", reply.identity, reply.role, reply.method);
        Ok(())
    })
}

/// Runs `keys generate`.
pub fn keys(cmd: KeysCommand) -> u8 {
    let KeysCommand::Generate { out } = cmd;
    match SecretKey::generate().write_pair(&out) {
        Ok(public) => {
            eprintln!(
                "secret key: {} (keep it offline or in CI secrets; never on the controller)",
                out.display()
            );
            eprintln!(
                "public key: {}.pub; pin it on agents with [controller] trusted_keys:",
                out.display()
            );
            println!("{public}");
            0
        }
        Err(e) => {
            eprintln!("fleetctl: {e}");
            EXIT_FAILED
        }
    }
}

/// Runs `pki init|issue`.
pub fn pki(cmd: PkiCommand) -> u8 {
    let result = match cmd {
        PkiCommand::Init { dir, name } => pki::init(&dir, &name).map(|crt| {
            println!("{}", crt.display());
            eprintln!(
                "CA written: {} and {} (0600: keep it safe; it issues every identity)",
                crt.display(),
                dir.join("ca.key").display()
            );
        }),
        PkiCommand::Issue {
            dir,
            server,
            agent,
            operator,
            role,
        } => {
            let subject = match (server, agent, operator) {
                (Some(h), None, None) => Subject::Server(h),
                (None, Some(a), None) => Subject::Agent(a),
                (None, None, Some(o)) => match Role::parse(&role) {
                    Ok(r) => Subject::Operator(o, r),
                    Err(e) => {
                        eprintln!("fleetctl: --role: {e}");
                        return EXIT_INVALID;
                    }
                },
                _ => {
                    eprintln!("fleetctl: give one of --server HOST, --agent ID, --operator NAME");
                    return EXIT_INVALID;
                }
            };
            pki::issue(&dir, &subject).map(|(crt, key)| {
                println!("{}", crt.display());
                eprintln!(
                    "certificate {} and key {} written",
                    crt.display(),
                    key.display()
                );
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleetctl: {e}");
            EXIT_FAILED
        }
    }
}
