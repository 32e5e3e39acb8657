//! Shadow mode: while a rollout's shadow step names this agent, every recording production
//! converts is also converted with the candidate revision into `state_dir/shadow` (never the
//! output folder, never published, the source never deleted or moved by it), the two outputs
//! are compared, and the comparison goes to the controller, whose gates judge the candidate
//! before any agent runs it for real.
//!
//! - [`runner`]: the shadow jobs (bounded, at the lowest priority, stopped first by the disk
//!   guard; see its theory of operation);
//! - [`threads`]: how many threads the candidate's libx264 runs;
//! - [`compare`]: the comparison of two outputs (durations, layouts, the MP4s' captions cue
//!   by cue, sizes, encode times);
//! - [`quality`]: SSIM and PSNR against the decoded source with FFmpeg's filters;
//! - [`sidecars`]: the candidate's caption stage, and its sidecar files against production's;
//! - [`report`]: the comparison as the agent reports it.
//!
//! The modules take explicit inputs (paths, settings, how to run FFmpeg); the production job
//! calls [`Shadow::offer`] after publishing, the fleet session sets the candidate and sends
//! the comparisons.

pub mod compare;
pub mod quality;
pub mod report;
pub mod runner;
pub mod sidecars;
pub mod threads;

pub use report::Comparison;
pub use runner::{Production, Shadow};
