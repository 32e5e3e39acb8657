//! `h264-agent`: watches the folders video recorders write into and turns every finished
//! recording into a verified H.264 MP4.
//!
//! The modules follow the data: [`watch`] notices sources and feeds the [`queue`];
//! [`reconcile`] compares each source with the [`journal`] and the outputs and decides;
//! [`readiness`] says when a recording is finished and valid ([`probe`] and [`ts`] read it;
//! [`mp4`] reads an output's boxes for verification);
//! [`pipeline`] runs a job, one stage per file (readiness, probe, transcode, verify, captions,
//! publish, dispose) over the media modules ([`transcode`] with its retry ladder and [`damage`]
//! reading, [`captions`], [`publish`], [`disposition`]); each job is one trace (spans per stage)
//! and ends in the [`metrics`]. [`plumbing`] holds what the stages stand on (child processes,
//! FFmpeg arguments, the state lock, log files). [`session`] keeps the agent in touch with the
//! fleet controller (assigned revisions, stats, events); [`shadow`] converts recordings again
//! with a rollout's candidate, never published, and compares.
//!
//! There is no shared "agent" object: each subsystem owns its state and hands out a small
//! handle: the [`settings`] in force (one `watch` channel), the job registry
//! ([`pipeline::Jobs`]), the [`disk`] guard, the [`intake`] gate, the [`notify`]er of operator
//! alerts and the [`journal`]. [`run()`] creates them and wires them together; the binary only
//! parses arguments, sets up logging, telemetry and signals, and calls it.

/// Operator alerts (logged, e-mailed through a queue on disk): the shared `h264-alerts` crate,
/// which the controller uses too.
pub use h264_alerts as alerts;
pub mod captions;
pub mod containment;
pub mod control;
pub mod control_addr;
pub mod control_token;
pub mod damage;
pub mod disk;
pub mod disposition;
pub mod encoder_args;
pub mod floor;
pub mod fs_safe;
pub mod intake;
pub mod journal;
pub mod key;
pub mod known_roots;
pub mod metrics;
pub mod mp4;
pub mod notify;
pub mod orphans;
pub mod pipeline;
pub mod plumbing;
pub mod probe;
pub mod publish;
pub mod queue;
pub mod readiness;
pub mod reconcile;
pub mod root_health;
pub mod roots;
pub mod run;
pub mod session;
pub mod settings;
pub mod shadow;
pub mod stats;
pub mod transcode;
pub mod ts;
pub mod watch;

pub use run::{agent_id, run, FatalError, RunOptions, RunSummary};
