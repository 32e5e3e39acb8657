//! `fleetctl describe agent ID`: everything the controller knows about one agent.

use clap::{Args, Subcommand};
use h264_proto::v1::DescribeAgentRequest;

use super::client::{self, Failure};
use super::output::{emit, pairs, OutputArg, Table};
use super::views::AgentView;

/// `describe` arguments.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(subcommand)]
    pub what: DescribeWhat,
    #[command(flatten)]
    pub out: OutputArg,
}

/// What to describe.
#[derive(Debug, Subcommand)]
pub enum DescribeWhat {
    /// One agent: identity, generations, sync state and NACK, stats, recent events.
    Agent {
        /// The agent's id.
        id: String,
    },
}

/// Runs `describe`.
pub fn run(controller: &client::Connect, args: DescribeArgs) -> u8 {
    client::run("describe agent", describe(controller, args))
}

async fn describe(controller: &client::Connect, args: DescribeArgs) -> Result<(), Failure> {
    let DescribeWhat::Agent { id } = args.what;
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let reply = client::call(
        &what,
        admin.describe_agent(DescribeAgentRequest { agent_id: id }),
    )
    .await?;
    let view = AgentView::from(&reply);
    emit(args.out.output, &view, render);
    Ok(())
}

fn render(a: &AgentView) -> String {
    let mut items = vec![
        ("agent", a.id.clone()),
        ("labels", a.labels_text()),
        ("version", a.version.clone()),
        ("connected", a.connected_text()),
        ("last seen", a.last_seen.clone()),
        ("desired generation", a.desired_generation.to_string()),
        (
            "acknowledged generation",
            a.acknowledged_generation.to_string(),
        ),
        ("running generation", a.running_generation.to_string()),
        ("sync", a.sync.clone()),
        (
            "signed by",
            if a.running_signed_by.is_empty() {
                "(unsigned)".to_owned()
            } else {
                a.running_signed_by.clone()
            },
        ),
        (
            "certificate",
            if a.certificate.is_empty() {
                "(none)".to_owned()
            } else {
                a.certificate.clone()
            },
        ),
    ];
    if !a.reported_labels.is_empty() {
        let text: Vec<String> = a
            .reported_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        items.push(("reported labels", text.join(",")));
    }
    if !a.sync_error.is_empty() {
        items.push(("refused", a.sync_error.clone()));
    }
    if let Some(s) = &a.stats {
        items.extend([
            ("queue", s.queue_depth.to_string()),
            ("running", s.running_text()),
            (
                "paused",
                if s.paused {
                    format!("yes ({})", s.paused_by)
                } else {
                    "no".into()
                },
            ),
            ("converted", s.journal.converted.to_string()),
            ("failed", s.journal.failed.to_string()),
            ("disk", s.disk_text()),
        ]);
    }
    let mut out = pairs(&items);
    if !a.recent_events.is_empty() {
        out.push_str("\nrecent events:\n");
        let mut t = Table::new(&["AT", "KIND", "GEN", "STAGE", "FILE", "MESSAGE"]);
        for e in &a.recent_events {
            t.row(vec![
                e.at.clone(),
                e.kind.clone(),
                e.generation.to_string(),
                e.stage.clone(),
                e.file.clone(),
                e.message.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}
