//! `fleetctl jobs [--agent A] [--failed] [--file GLOB] [--since D] [--limit N] -o table|json|csv`:
//! one file's (or the fleet's) job history, newest first, from the controller.

use clap::Args;
use h264_proto::v1::{JobAttempt, ListJobsRequest};
use serde::Serialize;

use super::client::{self, Failure};
use super::output::{time, Table, TabularFormat};

/// `jobs` arguments.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this agent's attempts.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only attempts that did not convert (failed, retrying, conflict).
    #[arg(long)]
    pub failed: bool,
    /// Only files whose path matches this glob (`*` any characters, `?` one), e.g. `*news*`.
    #[arg(long)]
    pub file: Option<String>,
    /// Only attempts that ended within this long, e.g. `7d`, `12h`.
    #[arg(long, value_parser = super::report::parse_since)]
    pub since: Option<std::time::Duration>,
    /// At most this many attempts (at most 10000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TabularFormat::Table)]
    pub output: TabularFormat,
}

/// One attempt, as printed.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub agent: String,
    pub ended_at_ms: i64,
    pub file: String,
    pub generation: u64,
    pub outcome: String,
    pub failed_stage: String,
    pub message: String,
    pub attempt: u32,
    pub rung: String,
    pub mode: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub media_secs: f64,
    pub wall_secs: f64,
    pub queue_secs: f64,
    pub speed: f64,
    pub captions: String,
    pub captions_lost: bool,
}

impl From<&JobAttempt> for JobView {
    fn from(j: &JobAttempt) -> Self {
        Self {
            id: j.id.clone(),
            agent: j.agent_id.clone(),
            ended_at_ms: j.ended_at_ms,
            file: j.file.clone(),
            generation: j.generation,
            outcome: j.outcome.clone(),
            failed_stage: j.failed_stage.clone(),
            message: j.message.clone(),
            attempt: j.attempt,
            rung: j.rung.clone(),
            mode: j.mode.clone(),
            bytes_in: j.bytes_in,
            bytes_out: j.bytes_out,
            media_secs: j.media_secs,
            wall_secs: j.wall_secs,
            queue_secs: j.queue_secs,
            speed: if j.wall_secs > 0.0 && j.outcome == "converted" {
                j.media_secs / j.wall_secs
            } else {
                0.0
            },
            captions: j.captions.clone(),
            captions_lost: j.captions_lost,
        }
    }
}

/// The answer, as printed.
#[derive(Debug, Serialize)]
pub struct JobsView {
    pub jobs: Vec<JobView>,
    /// More attempts matched than `--limit`.
    pub truncated: bool,
}

/// Runs `jobs`.
pub fn run(controller: &client::Connect, args: JobsArgs) -> u8 {
    client::run("jobs", jobs(controller, args))
}

async fn jobs(controller: &client::Connect, args: JobsArgs) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let request = ListJobsRequest {
        agent_id: args.agent.unwrap_or_default(),
        failed_only: args.failed,
        file_glob: args.file.unwrap_or_default(),
        since_ms: args.since.map(super::report::since_ms).unwrap_or(0),
        limit: args.limit.max(1),
    };
    let reply = client::call(&what, admin.list_jobs(request)).await?;
    let view = JobsView {
        jobs: reply.jobs.iter().map(JobView::from).collect(),
        truncated: reply.truncated,
    };
    args.output.emit(&view, table);
    if view.truncated && args.output == TabularFormat::Table {
        eprintln!(
            "jobs: more attempts match than --limit {}: narrow the filters or raise --limit",
            args.limit
        );
    }
    Ok(())
}

fn table(view: &JobsView) -> Table {
    let mut t = Table::new(&[
        "ENDED", "AGENT", "OUTCOME", "STAGE", "GEN", "TRY", "MODE", "MEDIA", "SPEED", "FILE",
        "MESSAGE",
    ]);
    for j in &view.jobs {
        t.row(vec![
            time(j.ended_at_ms),
            j.agent.clone(),
            j.outcome.clone(),
            dash(&j.failed_stage),
            j.generation.to_string(),
            j.attempt.to_string(),
            dash(&j.mode),
            format!("{:.0}s", j.media_secs),
            if j.speed > 0.0 {
                format!("{:.1}x", j.speed)
            } else {
                "-".into()
            },
            j.file.clone(),
            j.message.clone(),
        ]);
    }
    t
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}
