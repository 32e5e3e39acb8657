//! The canonical form of a config and its SHA256, to tell whether two configs are the same.
//!
//! The canonical form is compact JSON of the typed config, fields in struct order and every
//! default filled in, so formatting, comments and key order in the file do not change it; nor
//! does the format: the loaders normalise values ([`crate::validate::normalize`]), so a legacy
//! INI file and the TOML it migrates to give the same bytes. Fleet specs have their own
//! canonical form ([`crate::fleet::FleetSpec::canonical_json`]).
//!
//! One exception to "every default filled in": `[telemetry]`, added after configs were hashed
//! into migration manifests and reported to controllers, is left out while every key of it is
//! at its default, so an upgrade does not change the hash of a config that does not use it.

use sha2::{Digest, Sha256};

use crate::agent::AgentConfig;

impl AgentConfig {
    /// Compact JSON of the whole config (struct field order, durations as humantime strings).
    ///
    /// Paths that are not valid UTF-8 (never the case for a config read from TOML) are written
    /// lossily rather than failing.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| serde_json::to_string(&self.with_lossy_paths()).unwrap_or_default())
    }

    /// [`sha256_hex`] of [`AgentConfig::canonical_json`].
    pub fn canonical_sha256(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }

    fn with_lossy_paths(&self) -> Self {
        use std::path::PathBuf;
        let lossy = |p: &mut PathBuf| *p = PathBuf::from(p.to_string_lossy().into_owned());
        let mut c = self.clone();
        lossy(&mut c.agent.state_dir);
        lossy(&mut c.transcode.ffmpeg);
        lossy(&mut c.transcode.ffprobe);
        for root in &mut c.watch {
            lossy(&mut root.source);
            lossy(&mut root.output);
            root.done_dir
                .iter_mut()
                .chain(root.quarantine_dir.iter_mut())
                .for_each(lossy);
        }
        c
    }
}

/// SHA256 of `bytes` as 64 lower-case hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_inputs() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
    }

    #[test]
    fn canonical_json_is_struct_ordered_and_stable() {
        let config = AgentConfig::embedded_default();
        let json = config.canonical_json();
        assert!(
            json.starts_with(r#"{"agent":{"id":null,"state_dir":"./var/state""#),
            "{json}"
        );
        assert!(json.contains(r#""stable_for":"10s""#), "{json}");
        assert_eq!(json, config.clone().canonical_json());
        assert_eq!(config.canonical_sha256().len(), 64);
        let mut other = config.clone();
        other.transcode.crf = 22;
        assert_ne!(other.canonical_sha256(), config.canonical_sha256());
    }

    #[test]
    fn telemetry_is_hashed_only_when_it_is_configured() {
        let config = AgentConfig::embedded_default();
        assert!(!config.canonical_json().contains("telemetry"));
        let mut traced = config.clone();
        traced.telemetry.otlp_endpoint = Some("http://127.0.0.1:4317".into());
        let json = traced.canonical_json();
        assert!(
            json.ends_with(
                r#""telemetry":{"otlp_endpoint":"http://127.0.0.1:4317","otlp_protocol":"grpc","metrics_listen":null,"span_queue":2048,"metrics_interval":"30s"}}"#
            ),
            "{json}"
        );
        assert_ne!(traced.canonical_sha256(), config.canonical_sha256());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_do_not_panic() {
        use std::os::unix::ffi::OsStrExt;
        let mut config = AgentConfig::embedded_default();
        config.agent.state_dir = std::ffi::OsStr::from_bytes(b"state/\xff").into();
        assert!(config.canonical_json().contains("state/\u{fffd}"));
    }
}
