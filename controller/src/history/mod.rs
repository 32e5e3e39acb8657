//! The job history at the controller: agents send a record per job attempt over their session
//! ([`ingest`]), the store keeps each once for `[history] keep` ([`crate::store`]), and the admin
//! API and the web console query it.
//!
//! ```toml
//! [history]
//! keep = "90d"   # attempts older than this are deleted (at least 1d)
//! ```

pub mod ingest;

use std::time::Duration;

pub use ingest::{check_record, HistorySink};

/// How long history is kept by default.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(90 * 86_400);
