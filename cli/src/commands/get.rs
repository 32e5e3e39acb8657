//! `fleetctl get agents [--selector k=v]` and `fleetctl get revisions`.

use clap::{Args, Subcommand};
use h264_proto::v1::{ListAgentsRequest, ListRevisionsRequest};

use super::client::{self, Failure};
use super::output::{ago, emit, OutputArg, Table};
use super::views::{AgentView, RevisionView};

/// `get` arguments.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(subcommand)]
    pub what: GetWhat,
    #[command(flatten)]
    pub out: OutputArg,
}

/// What to list.
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// The agents the controller knows: connection, generations, sync state.
    Agents {
        /// Only agents with these labels: `k=v[,k=v...]`.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// The revisions, newest first, with how many agents are assigned and run each.
    Revisions,
}

/// Runs `get`.
pub fn run(controller: &client::Connect, args: GetArgs) -> u8 {
    let command = match args.what {
        GetWhat::Agents { .. } => "get agents",
        GetWhat::Revisions => "get revisions",
    };
    client::run(command, get(controller, args))
}

async fn get(controller: &client::Connect, args: GetArgs) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    match args.what {
        GetWhat::Agents { selector } => {
            let reply = client::call(
                &what,
                admin.list_agents(ListAgentsRequest {
                    selector: selector.unwrap_or_default(),
                }),
            )
            .await?;
            let views: Vec<AgentView> = reply.agents.iter().map(AgentView::from).collect();
            emit(args.out.output, &views, |views| {
                let now = super::views::now_ms();
                let mut t = Table::new(&[
                    "AGENT",
                    "CONNECTED",
                    "GENERATION",
                    "SYNC",
                    "LAST SEEN",
                    "VERSION",
                    "LABELS",
                    "MESSAGE",
                ]);
                for a in views {
                    t.row(vec![
                        a.id.clone(),
                        a.connected_text(),
                        a.generation_text(),
                        a.sync.clone(),
                        ago(a.last_seen_ms, now),
                        a.version.clone(),
                        a.labels_text(),
                        a.sync_error.clone(),
                    ]);
                }
                t.render()
            });
        }
        GetWhat::Revisions => {
            let reply = client::call(&what, admin.list_revisions(ListRevisionsRequest {})).await?;
            let views: Vec<RevisionView> = reply.revisions.iter().map(RevisionView::from).collect();
            emit(args.out.output, &views, |views| {
                let mut t = Table::new(&[
                    "GENERATION",
                    "SHA256",
                    "NAME",
                    "CREATED",
                    "ASSIGNED",
                    "ACKED",
                ]);
                for r in views {
                    t.row(vec![
                        r.generation.to_string(),
                        r.sha256.chars().take(12).collect(),
                        r.name.clone(),
                        r.created_at.clone(),
                        r.assigned.to_string(),
                        r.acked.to_string(),
                    ]);
                }
                t.render()
            });
        }
    }
    Ok(())
}
