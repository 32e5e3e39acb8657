//! `h264-agent`: watches the folders video recorders write into and turns every finished
//! recording into a verified H.264 MP4.
//!
//! The pipeline's modules follow the data: [`watch`] notices sources and feeds the
//! [`queue`]; [`reconcile`] compares each source with the [`journal`] and the outputs and
//! decides; [`readiness`] says when a recording is finished and valid ([`probe`] and [`ts`] read
//! it); [`job`] runs [`transcode`] (FFmpeg, supervised by [`child`], its log read for
//! [`damage`]; a retry ladder of tolerant input options), verifies and [`publish`]es atomically,
//! writes [`progress`] dot-files and applies the source [`disposition`]; each job is one trace
//! (spans per stage) and ends in the [`metrics`]. [`session`] keeps the agent in touch with the
//! fleet controller (assigned revisions, stats, events). [`run`] wires them together; the
//! binary only parses arguments, sets up logging, telemetry and signals, and calls it.

/// Operator alerts (logged, e-mailed through a queue on disk): the shared `h264-alerts` crate,
/// which the controller uses too.
pub use h264_alerts as alerts;
pub mod captions;
pub mod child;
pub mod control;
pub mod damage;
pub mod disk;
pub mod disposition;
pub mod ffarg;
pub mod intake;
pub mod job;
pub mod journal;
pub mod key;
pub mod lock;
pub mod logfile;
pub mod metrics;
pub mod notify;
pub mod orphans;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod queue;
pub mod readiness;
pub mod reconcile;
pub mod roots;
pub mod run;
pub mod session;
pub mod shadow;
pub mod state;
pub mod stats;
pub mod transcode;
pub mod ts;
pub mod watch;

pub use run::{agent_id, run, FatalError, RunOptions, RunSummary};
