//! `fleetctl assign --revision N [--agent ID | --selector k=v] [--rollback]`: manual control of
//! which revision agents run. A generation below what an agent already accepted must carry
//! `--rollback`, or the agent refuses it (the controller warns).

use clap::Args;
use h264_proto::v1::AssignRequest;
use serde::Serialize;

use super::client::{self, Failure};
use super::output::{emit, OutputArg};

/// `assign` arguments.
#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The revision's generation.
    #[arg(long)]
    pub revision: u64,
    /// One agent (also retries a revision it refused before).
    #[arg(long, conflicts_with = "selector")]
    pub agent: Option<String>,
    /// The agents with these labels: `k=v[,k=v...]`. Without --agent or --selector: every
    /// agent, and those that register later.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Mark it a rollback, so that agents accept a generation below the one they run.
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Debug, Serialize)]
struct AssignView {
    generation: u64,
    rollback: bool,
    agents: Vec<String>,
    warnings: Vec<String>,
}

/// Runs `assign`.
pub fn run(controller: &client::Connect, args: AssignArgs) -> u8 {
    client::run("assign", assign(controller, args))
}

async fn assign(controller: &client::Connect, args: AssignArgs) -> Result<(), Failure> {
    client::attribute("revision", args.revision as i64);
    client::attribute("rollback", args.rollback);
    if let Some(agent) = &args.agent {
        client::attribute("agent", agent.clone());
    }
    if let Some(selector) = &args.selector {
        client::attribute("selector", selector.clone());
    }
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let reply = client::call(
        &what,
        admin.assign(AssignRequest {
            generation: args.revision,
            agent_id: args.agent.unwrap_or_default(),
            selector: args.selector.unwrap_or_default(),
            rollback: args.rollback,
        }),
    )
    .await?;
    for w in &reply.warnings {
        eprintln!("warning: {w}");
    }
    let view = AssignView {
        generation: args.revision,
        rollback: args.rollback,
        agents: reply.agents,
        warnings: reply.warnings,
    };
    emit(args.out.output, &view, |v| {
        let kind = if v.rollback { " (rollback)" } else { "" };
        match v.agents.len() {
            0 => format!(
                "revision {}{kind} assigned to no agent (none matched)\n",
                v.generation
            ),
            n => format!(
                "revision {}{kind} assigned to {n} agent{}: {}\n",
                v.generation,
                if n == 1 { "" } else { "s" },
                v.agents.join(", ")
            ),
        }
    });
    Ok(())
}
