//! `fleetctl rollout start|status|pause|resume|promote|abort|undo|retry`: steering the
//! controller's rollouts. Every verb prints the rollout's status: phase, step, the cohort's
//! sync counts, the gates with their measured values and thresholds, the reason.
//!
//! `status` exits 1 when the rollout was rolled back, aborted or superseded; `status --watch`
//! polls until the rollout ends and exits 0 when it Succeeded, 1 when it ended otherwise or
//! when `--timeout` passes first.

use std::time::Duration;

use clap::{Args, Subcommand};
use h264_proto::v1::rollout_request::Verb;
use h264_proto::v1::{
    RolloutAbort, RolloutPause, RolloutPhase, RolloutPromote, RolloutRequest, RolloutResume,
    RolloutRetry, RolloutStart, RolloutStatus, RolloutStatusRequest, RolloutUndo,
};
use serde::Serialize;

use super::client::{self, Failure, EXIT_FAILED};
use super::output::{emit, time, Format, OutputArg, Table};

/// `rollout` arguments.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub verb: RolloutVerb,
    #[command(flatten)]
    pub out: OutputArg,
}

/// The rollout verbs.
#[derive(Debug, Subcommand)]
pub enum RolloutVerb {
    /// Roll a revision out through steps (a running rollout is superseded).
    Start {
        /// The revision's generation.
        #[arg(long)]
        revision: u64,
        /// Steps instead of the revision's `spec.rollout`, e.g.
        /// `canary:1,pause:30s,percent:50,pause:{},percent:100`.
        #[arg(long)]
        steps: Option<String>,
        /// Offline cohort agents that may hold a step back: a count (`2`) or a share (`10%`);
        /// instead of the revision's `rollout.max_unavailable`.
        #[arg(long, value_name = "N|N%")]
        max_unavailable: Option<String>,
        /// How long a cohort agent may be lost before the gate fails (e.g. `2m`); instead of
        /// the revision's `analysis.max_lost`.
        #[arg(long, value_name = "DURATION")]
        max_lost: Option<String>,
    },
    /// The current rollout; `--watch` follows it until it ends.
    Status {
        /// Follow it until it ends (exit 0: Succeeded; 1: RolledBack, Aborted, Superseded).
        #[arg(short, long)]
        watch: bool,
        /// Give up watching after this long (exit 1).
        #[arg(long, value_parser = humantime::parse_duration, requires = "watch")]
        timeout: Option<Duration>,
    },
    /// Hold the rollout at its step.
    Pause,
    /// Go on after a pause (a `pause: {}` step or an inconclusive soak moves to the next step).
    Resume,
    /// Skip the current step (a pause, a soak), or with --full every remaining step.
    Promote {
        /// Skip every remaining step: the revision goes to every agent now.
        #[arg(long)]
        full: bool,
    },
    /// Stop the rollout and put every agent back on the stable revision.
    Abort,
    /// Instant rollback of a finished rollout: every agent back on the stable revision (or
    /// --to-revision) at once.
    Undo {
        /// The revision to go back to.
        #[arg(long)]
        to_revision: Option<u64>,
    },
    /// Start the last (rolled back or aborted) rollout again.
    Retry,
    /// Every comparison of a rollout's shadow steps (`-o table|json|yaml|csv`).
    ShadowReport {
        /// The rollout (default: the current or last one).
        rollout: Option<u64>,
    },
}

#[derive(Debug, Serialize)]
struct GateView {
    at: String,
    step: u32,
    gate: String,
    passed: bool,
    measured: String,
    threshold: String,
}

#[derive(Debug, Serialize)]
struct CohortView {
    agents: u32,
    pending: u32,
    synced: u32,
    error: u32,
    offline: u32,
}

#[derive(Debug, Serialize)]
struct RolloutView {
    id: u64,
    generation: u64,
    stable_generation: u64,
    phase: String,
    step: u32,
    step_description: String,
    steps: Vec<String>,
    cohort: CohortView,
    fleet_agents: u32,
    gates: Vec<GateView>,
    reason: String,
    created: String,
    updated: String,
    step_started: String,
    finished: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<super::shadow::StatusView>,
}

fn view(s: &RolloutStatus) -> RolloutView {
    let c = s.cohort.unwrap_or_default();
    let t = |ms: i64| if ms > 0 { time(ms) } else { String::new() };
    RolloutView {
        id: s.id,
        generation: s.generation,
        stable_generation: s.stable_generation,
        phase: s.phase().name().to_owned(),
        step: s.step,
        step_description: s.step_description.clone(),
        steps: s.steps.clone(),
        cohort: CohortView {
            agents: c.agents,
            pending: c.pending,
            synced: c.synced,
            error: c.error,
            offline: c.offline,
        },
        fleet_agents: s.fleet_agents,
        gates: s
            .gates
            .iter()
            .map(|g| GateView {
                at: time(g.at_ms),
                step: g.step,
                gate: g.gate.clone(),
                passed: g.passed,
                measured: g.measured.clone(),
                threshold: g.threshold.clone(),
            })
            .collect(),
        reason: s.reason.clone(),
        created: t(s.created_at_ms),
        updated: t(s.updated_at_ms),
        step_started: t(s.step_started_at_ms),
        finished: t(s.finished_at_ms),
        shadow: s.shadow.as_ref().map(super::shadow::status_view),
    }
}

fn text(v: &RolloutView) -> String {
    if v.id == 0 {
        return "no rollout\n".into();
    }
    let mut out = format!(
        "rollout {}: generation {} (stable {})\nphase:   {}\nstep:    {} of {}: {}\nsteps:   {}\ncohort:  {} of {} agents: {} synced, {} pending, {} error, {} offline\n",
        v.id,
        v.generation,
        v.stable_generation,
        v.phase,
        v.step + 1,
        v.steps.len(),
        v.step_description,
        v.steps.join(", "),
        v.cohort.agents,
        v.fleet_agents,
        v.cohort.synced,
        v.cohort.pending,
        v.cohort.error,
        v.cohort.offline,
    );
    if !v.reason.is_empty() {
        out.push_str(&format!("reason:  {}\n", v.reason));
    }
    out.push_str(&format!(
        "started: {}  updated: {}  step since: {}{}\n",
        v.created,
        v.updated,
        v.step_started,
        if v.finished.is_empty() {
            String::new()
        } else {
            format!("  finished: {}", v.finished)
        }
    ));
    if !v.gates.is_empty() {
        let mut t = Table::new(&["STEP", "GATE", "RESULT", "MEASURED", "THRESHOLD", "AT"]);
        for g in &v.gates {
            t.row(vec![
                (g.step + 1).to_string(),
                g.gate.clone(),
                if g.passed { "passed" } else { "FAILED" }.into(),
                g.measured.clone(),
                g.threshold.clone(),
                g.at.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    if let Some(shadow) = &v.shadow {
        out.push_str(&super::shadow::status_text(shadow));
    }
    out
}

/// Runs `rollout`.
pub fn run(controller: &client::Connect, args: RolloutArgs) -> u8 {
    let command = match &args.verb {
        RolloutVerb::Start { .. } => "rollout start",
        RolloutVerb::Status { .. } => "rollout status",
        RolloutVerb::Pause => "rollout pause",
        RolloutVerb::Resume => "rollout resume",
        RolloutVerb::Promote { .. } => "rollout promote",
        RolloutVerb::Abort => "rollout abort",
        RolloutVerb::Undo { .. } => "rollout undo",
        RolloutVerb::Retry => "rollout retry",
        RolloutVerb::ShadowReport { .. } => "rollout shadow-report",
    };
    client::run(command, rollout(controller, args))
}

fn ended_badly(phase: RolloutPhase) -> bool {
    matches!(
        phase,
        RolloutPhase::RolledBack | RolloutPhase::Aborted | RolloutPhase::Superseded
    )
}

async fn rollout(controller: &client::Connect, args: RolloutArgs) -> Result<(), Failure> {
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let format = args.out.output;
    let (verb, watch) = match args.verb {
        RolloutVerb::Start {
            revision,
            steps,
            max_unavailable,
            max_lost,
        } => {
            client::attribute("revision", revision as i64);
            client::attribute("steps", steps.clone().unwrap_or_default());
            (
                Verb::Start(RolloutStart {
                    generation: revision,
                    steps: steps.unwrap_or_default(),
                    max_unavailable: max_unavailable.unwrap_or_default(),
                    max_lost: max_lost.unwrap_or_default(),
                }),
                None,
            )
        }
        RolloutVerb::Status { watch, timeout } => (
            Verb::Status(RolloutStatusRequest {}),
            watch.then_some(timeout),
        ),
        RolloutVerb::Pause => (Verb::Pause(RolloutPause {}), None),
        RolloutVerb::Resume => (Verb::Resume(RolloutResume {}), None),
        RolloutVerb::Promote { full } => (Verb::Promote(RolloutPromote { full }), None),
        RolloutVerb::Abort => (Verb::Abort(RolloutAbort {}), None),
        RolloutVerb::Undo { to_revision } => {
            client::attribute("to_revision", to_revision.unwrap_or_default() as i64);
            (
                Verb::Undo(RolloutUndo {
                    to_generation: to_revision.unwrap_or_default(),
                }),
                None,
            )
        }
        RolloutVerb::Retry => (Verb::Retry(RolloutRetry {}), None),
        RolloutVerb::ShadowReport { rollout } => {
            return super::shadow::report(controller, rollout, format).await;
        }
    };
    let is_status = matches!(verb, Verb::Status(_));
    let request = RolloutRequest { verb: Some(verb) };
    let Some(timeout) = watch else {
        let s = client::call(&what, admin.rollout(request)).await?;
        client::attribute("rollout.id", s.id as i64);
        client::attribute("rollout.phase", s.phase().name().to_owned());
        emit(format, &view(&s), text);
        // `status` reports how the rollout ended; the other verbs succeeded if they answered.
        return if is_status && ended_badly(s.phase()) {
            Err(Failure::new(
                EXIT_FAILED,
                format!("the rollout is {}", s.phase().name()),
            ))
        } else {
            Ok(())
        };
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_update = None;
    loop {
        let s = client::call(&what, admin.rollout(request.clone())).await?;
        if last_update != Some(s.updated_at_ms) {
            last_update = Some(s.updated_at_ms);
            match format {
                Format::Json => {
                    println!("{}", serde_json::to_string(&view(&s)).unwrap_or_default())
                }
                _ => {
                    emit(format, &view(&s), text);
                    println!();
                }
            }
        }
        if s.id == 0 {
            return Err(Failure::new(EXIT_FAILED, "there is no rollout"));
        }
        if s.phase() == RolloutPhase::Succeeded {
            return Ok(());
        }
        if ended_badly(s.phase()) {
            return Err(Failure::new(
                EXIT_FAILED,
                format!("the rollout is {}: {}", s.phase().name(), s.reason),
            ));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "timed out watching: the rollout is still {}",
                    s.phase().name()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
