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

use serde::Deserialize;

pub use ingest::{check_record, HistorySink};

/// How long history is kept by default.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(90 * 86_400);
/// The shortest `keep` accepted: a typo (`keep = "90s"`) must not delete the fleet's history.
pub const MIN_KEEP: Duration = Duration::from_secs(86_400);

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFile {
    keep: Option<String>,
}

impl HistoryFile {
    /// The retention it sets, checked against [`MIN_KEEP`].
    pub fn keep(&self) -> Result<Duration, String> {
        let Some(text) = &self.keep else {
            return Ok(DEFAULT_KEEP);
        };
        let keep = humantime::parse_duration(text)
            .map_err(|_| format!("`{text}` is not a duration like 90d"))?;
        if keep < MIN_KEEP {
            return Err(format!(
                "`{text}` is shorter than the floor of 1d (history older than keep is deleted)"
            ));
        }
        Ok(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(text: &str) -> Result<Duration, String> {
        HistoryFile {
            keep: Some(text.into()),
        }
        .keep()
    }

    #[test]
    fn keep_has_a_floor() {
        assert_eq!(keep("90d").unwrap(), DEFAULT_KEEP);
        assert_eq!(keep("2d").unwrap(), Duration::from_secs(2 * 86_400));
        assert!(keep("90s").unwrap_err().contains("floor of 1d"));
        assert!(keep("ninety").unwrap_err().contains("not a duration"));
        assert_eq!(HistoryFile { keep: None }.keep().unwrap(), DEFAULT_KEEP);
    }
}
