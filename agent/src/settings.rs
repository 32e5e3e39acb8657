//! The settings in force: the effective configuration (the fleet revision's sections merged over
//! the local file) with its generation and hashes, held in one `tokio::sync::watch` channel.
//!
//! # Theory of operation
//! There is one copy of the configuration the running agent reads: the [`Settings`] in the
//! channel. The fleet session owns the [`SettingsTx`] and swaps in a new revision; everything
//! else holds a [`SettingsRx`] and takes a snapshot ([`SettingsRx::current`], an `Arc` clone)
//! when it needs one. A job takes its snapshot when it starts and keeps it to the end, so a
//! revision applied meanwhile shapes only the jobs that start after it. A revision changes only
//! the fleet-set sections (readiness, transcode, captions, logging); the local sections (agent,
//! watch, disk, alerts, controller, telemetry) read from the snapshot are always the local
//! file's. The channel's lock is held only to clone or replace the `Arc`.

use std::sync::Arc;

use h264_config::AgentConfig;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// The configuration jobs run under, as one revision.
#[derive(Debug)]
pub struct Settings {
    /// The effective configuration (the fleet's sections merged over the local file).
    pub config: AgentConfig,
    /// The fleet revision's generation; 0 for the local file.
    pub generation: u64,
    /// SHA256 of the canonical effective configuration.
    pub sha256: String,
    /// SHA256 of the settings that shape outputs (see [`spec_hash`]).
    pub spec_hash: String,
}

impl Settings {
    /// The settings of `config` at `generation`.
    pub fn new(config: AgentConfig, generation: u64) -> Self {
        Self {
            sha256: config.canonical_sha256(),
            spec_hash: spec_hash(&config),
            generation,
            config,
        }
    }
}

/// The sending half: swaps in a new revision. Held by the fleet session (and by start-up).
#[derive(Debug, Clone)]
pub struct SettingsTx(Arc<watch::Sender<Arc<Settings>>>);

/// A reader of the settings in force.
#[derive(Debug, Clone)]
pub struct SettingsRx(watch::Receiver<Arc<Settings>>);

/// A channel starting with `initial`.
pub fn channel(initial: Settings) -> (SettingsTx, SettingsRx) {
    let (tx, rx) = watch::channel(Arc::new(initial));
    (SettingsTx(Arc::new(tx)), SettingsRx(rx))
}

impl SettingsTx {
    /// Swaps in `next`; running jobs finish under the settings they started with. Returns the
    /// previous settings.
    pub fn swap(&self, next: Settings) -> Arc<Settings> {
        tracing::info!(generation = next.generation, sha256 = %next.sha256, "configuration applied");
        self.0.send_replace(Arc::new(next))
    }

    /// The settings in force now.
    pub fn current(&self) -> Arc<Settings> {
        self.0.borrow().clone()
    }
}

impl SettingsRx {
    /// The settings in force now.
    pub fn current(&self) -> Arc<Settings> {
        self.0.borrow().clone()
    }
}

/// SHA256 of the settings that shape outputs: a change means new outputs would differ.
pub fn spec_hash(config: &AgentConfig) -> String {
    let t = &config.transcode;
    let shape = serde_json::json!({
        "preset": t.preset, "crf": t.crf, "profile": t.profile, "level": t.level,
        "pix_fmt": t.pix_fmt, "deinterlace": t.deinterlace, "remux": t.remux,
        "audio_bitrate": t.audio_bitrate, "extra_args": t.extra_args,
    });
    let digest = Sha256::digest(shape.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_reaches_every_reader_and_old_snapshots_stay() {
        let (tx, rx) = channel(Settings::new(AgentConfig::default(), 0));
        let before = rx.current();
        let mut next = AgentConfig::default();
        next.transcode.crf = before.config.transcode.crf + 1;
        tx.swap(Settings::new(next, 7));
        assert_eq!(rx.current().generation, 7);
        assert_eq!(rx.clone().current().generation, 7);
        assert_eq!(before.generation, 0, "a job's snapshot does not change");
        assert_ne!(rx.current().spec_hash, before.spec_hash);
    }
}
