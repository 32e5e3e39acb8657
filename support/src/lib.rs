//! Small plumbing shared by h264create's programs, written once and tested once:
//!
//! - [`atomic`]: a file appears under its final name only complete and durable (temporary
//!   file beside it, fsync, rename, fsync of the folder). The agent's last-known-good record
//!   and published files, the alert queue and `fleetctl config migrate` use it.
//! - [`backoff`]: the one retry delay of the code base (exponential, capped, with jitter),
//!   used by job retries, caption retries, e-mail delivery and the agent's reconnects.

#![forbid(unsafe_code)]

pub mod atomic;
pub mod backoff;

pub use atomic::{sync_dir, write_atomic};
pub use backoff::Backoff;
