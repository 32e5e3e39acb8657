//! What a fleet manifest may set: the pipeline sections, as overrides (every key optional: a key
//! the manifest leaves out keeps the agent's local value), and the rollout. Local facts (identity,
//! paths, watch roots, endpoints, programs on the host) are not here and cannot be: a manifest
//! naming one is rejected by the parser ([`LOCAL_ONLY`]).

use serde::{Deserialize, Serialize};

use crate::agent::{
    AgentConfig, CaptionTool, Captions, Deinterlace, LogFormat, Logging, PartialPacket, Readiness,
    Transcode,
};
use crate::units::HumanDuration;

use super::rollout::Rollout;

/// Keys (under `spec`) that belong to each agent and that a fleet manifest may not set, with
/// the reason given to the operator.
pub const LOCAL_ONLY: &[(&str, &str)] = &[
    (
        "agent",
        "the agent's identity, state folder and process settings",
    ),
    ("watch", "the folders each agent watches and writes to"),
    ("controller", "where each agent finds the controller"),
    ("disk", "free-space thresholds of each agent's own volumes"),
    ("alerts", "where each agent sends its alerts"),
    // The collector endpoint could be the same for the whole fleet, but the agent sets up its
    // exporter once, at start-up: a revision could not apply it without a restart. A fleet-wide
    // collector is given to every agent through OTEL_EXPORTER_OTLP_ENDPOINT in its service's
    // environment instead; the metrics address is each machine's own, like agent.control.
    (
        "telemetry",
        "where each agent sends its traces and metrics and serves /metrics (read at start-up)",
    ),
    ("transcode.ffmpeg", "where FFmpeg is installed on each host"),
    (
        "transcode.ffprobe",
        "where ffprobe is installed on each host",
    ),
    (
        "captions.ccextractor",
        "where CCExtractor is installed on each host",
    ),
    (
        "transcode.local_ffmpeg_args",
        "free-form FFmpeg arguments (they can name files and URLs)",
    ),
    ("logging.dir", "where each host keeps its log files"),
    ("logging.keep", "how each host rotates its log files"),
    ("logging.rotation", "how each host rotates its log files"),
];

/// Declares an override struct: the same keys as a config section, each optional, and `apply`,
/// which sets the keys given on a section.
macro_rules! overrides {
    (
        $(#[$meta:meta])*
        $name:ident => $target:ty {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// Sets on `target` every key this override gives.
            pub fn apply(&self, target: &mut $target) {
                $(
                    if let Some(value) = &self.$field {
                        target.$field = value.clone();
                    }
                )*
            }

            /// Whether no key is given.
            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())*
            }
        }
    };
}

overrides! {
    /// `spec.readiness`: overrides of [`Readiness`].
    ReadinessSpec => Readiness {
        /// See [`Readiness::stable_for`].
        stable_for: HumanDuration,
        /// See [`Readiness::mtime_grace`].
        mtime_grace: HumanDuration,
        /// See [`Readiness::open_file_check`].
        open_file_check: bool,
        /// See [`Readiness::min_duration`].
        min_duration: HumanDuration,
        /// See [`Readiness::max_decode_errors`].
        max_decode_errors: u32,
        /// See [`Readiness::probe_timeout`].
        probe_timeout: HumanDuration,
        /// See [`Readiness::partial_packet`].
        partial_packet: PartialPacket,
    }
}

overrides! {
    /// `spec.transcode`: overrides of [`Transcode`] (not the program paths, which are local).
    TranscodeSpec => Transcode {
        /// See [`Transcode::preset`].
        preset: String,
        /// See [`Transcode::crf`].
        crf: u8,
        /// See [`Transcode::profile`].
        profile: String,
        /// See [`Transcode::level`]: a level like `"4.1"` (a fleet cannot unset a local level).
        level: Option<String>,
        /// See [`Transcode::pix_fmt`].
        pix_fmt: String,
        /// See [`Transcode::deinterlace`].
        deinterlace: Deinterlace,
        /// See [`Transcode::remux`].
        remux: bool,
        /// See [`Transcode::audio_bitrate`].
        audio_bitrate: String,
        /// See [`Transcode::extra_args`]: read only to be refused with the typed setting that
        /// replaces each option.
        extra_args: Vec<String>,
        /// See [`Transcode::stall_timeout`].
        stall_timeout: HumanDuration,
        /// See [`Transcode::max_attempts`].
        max_attempts: u32,
        /// See [`Transcode::retry_backoff`].
        retry_backoff: HumanDuration,
        /// See [`Transcode::retry_backoff_max`].
        retry_backoff_max: HumanDuration,
        /// See [`Transcode::duration_tolerance`].
        duration_tolerance: HumanDuration,
        /// See [`Transcode::tune`].
        tune: Option<String>,
        /// See [`Transcode::x264_params`].
        x264_params: Option<String>,
        /// See [`Transcode::keyframe_interval`].
        keyframe_interval: Option<u32>,
        /// See [`Transcode::maxrate`].
        maxrate: Option<String>,
        /// See [`Transcode::bufsize`].
        bufsize: Option<String>,
        /// See [`Transcode::max_height`].
        max_height: Option<u32>,
        /// See [`Transcode::frame_rate`].
        frame_rate: Option<String>,
        /// See [`Transcode::audio_channels`].
        audio_channels: Option<u32>,
        /// See [`Transcode::audio_sample_rate`].
        audio_sample_rate: Option<u32>,
    }
}

overrides! {
    /// `spec.captions`: overrides of [`Captions`] (not CCExtractor's path, which is local).
    CaptionsSpec => Captions {
        /// See [`Captions::formats`].
        formats: Vec<String>,
        /// See [`Captions::tool`].
        tool: CaptionTool,
        /// See [`Captions::stall_timeout`].
        stall_timeout: HumanDuration,
        /// See [`Captions::max_attempts`].
        max_attempts: u32,
        /// See [`Captions::retry_backoff`].
        retry_backoff: HumanDuration,
        /// See [`Captions::write_empty`].
        write_empty: bool,
        /// See [`Captions::require_passthrough`].
        require_passthrough: bool,
        /// See [`Captions::embed`].
        embed: bool,
    }
}

overrides! {
    /// `spec.logging`: the level and format of [`Logging`] (files stay local).
    LoggingSpec => Logging {
        /// See [`Logging::level`].
        level: String,
        /// See [`Logging::format`].
        format: LogFormat,
    }
}

/// The pipeline sections of a spec, as deserialized strictly (the rollout is read apart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PipelineSpec {
    pub readiness: ReadinessSpec,
    pub transcode: TranscodeSpec,
    pub captions: CaptionsSpec,
    pub logging: LoggingSpec,
}

/// `spec` of a `FleetConfig`: what the fleet sets on every agent, and how it rolls out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetSpec {
    /// Overrides of `[readiness]`.
    #[serde(skip_serializing_if = "ReadinessSpec::is_empty")]
    pub readiness: ReadinessSpec,
    /// Overrides of `[transcode]`.
    #[serde(skip_serializing_if = "TranscodeSpec::is_empty")]
    pub transcode: TranscodeSpec,
    /// Overrides of `[captions]`.
    #[serde(skip_serializing_if = "CaptionsSpec::is_empty")]
    pub captions: CaptionsSpec,
    /// Overrides of `[logging]`.
    #[serde(skip_serializing_if = "LoggingSpec::is_empty")]
    pub logging: LoggingSpec,
    /// How a new revision of this spec reaches the fleet.
    pub rollout: Rollout,
}

/// The effective config of an agent under a fleet spec: `local` with every key the spec sets
/// replaced. Identity, paths, watch roots and endpoints always stay `local`'s: the spec cannot
/// hold them.
pub fn merge(spec: &FleetSpec, local: &AgentConfig) -> AgentConfig {
    let mut config = local.clone();
    spec.readiness.apply(&mut config.readiness);
    spec.transcode.apply(&mut config.transcode);
    spec.captions.apply(&mut config.captions);
    spec.logging.apply(&mut config.logging);
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::field_names;

    /// Every key of a pipeline section is either settable by the fleet or listed as local, so a
    /// new key cannot be forgotten silently.
    #[test]
    fn every_section_key_is_fleet_or_local() {
        let sections: [(&str, &[&str], &[&str]); 4] = [
            (
                "readiness",
                field_names::<Readiness>(),
                field_names::<ReadinessSpec>(),
            ),
            (
                "transcode",
                field_names::<Transcode>(),
                field_names::<TranscodeSpec>(),
            ),
            (
                "captions",
                field_names::<Captions>(),
                field_names::<CaptionsSpec>(),
            ),
            (
                "logging",
                field_names::<Logging>(),
                field_names::<LoggingSpec>(),
            ),
        ];
        for (section, config, spec) in sections {
            for key in config {
                let local = LOCAL_ONLY
                    .iter()
                    .any(|(k, _)| *k == format!("{section}.{key}"));
                assert!(
                    spec.contains(key) != local,
                    "{section}.{key}: fleet-settable or local-only, exactly one"
                );
            }
        }
        for section in field_names::<AgentConfig>() {
            let fleet = field_names::<PipelineSpec>().contains(section);
            let local = LOCAL_ONLY.iter().any(|(k, _)| k == section);
            assert!(fleet != local, "{section}");
        }
    }

    #[test]
    fn merge_overrides_only_what_the_spec_sets() {
        let mut local = AgentConfig::embedded_default();
        local.agent.id = Some("studio-a".into());
        local.transcode.crf = 19;
        local.transcode.preset = "fast".into();
        let spec = FleetSpec {
            transcode: TranscodeSpec {
                crf: Some(23),
                ..TranscodeSpec::default()
            },
            ..FleetSpec::default()
        };
        let merged = merge(&spec, &local);
        assert_eq!(merged.transcode.crf, 23);
        assert_eq!(merged.transcode.preset, "fast");
        assert_eq!(merged.agent, local.agent);
        assert_eq!(merged.watch, local.watch);
    }
}
