//! The legacy INI layout: which sections and keys exist, how each value is spelt, and the old
//! names still understood (with a deprecation warning). Sections and keys map one-to-one onto
//! `agent.toml`; a test keeps this table equal to the typed config's fields.

/// How an INI value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `yes/no`, `on/off`, `true/false`, `1/0`, any case.
    Bool,
    /// A whole number.
    Count,
    /// Plain seconds (`30`, `0.5`), or a duration with a unit (`2m`).
    Duration,
    /// Text kept as written (paths, programs, filters).
    Text,
    /// A keyword, read in lower case (`Poll` → `poll`).
    Word,
    /// Text that may be left empty to mean "not set".
    OptText,
    /// Keywords separated by commas or spaces, read in lower case (`ts, WTV mp4`).
    Words,
    /// Items separated by commas, each may be quoted (`-vf, "yadif,scale=1280:-2"`).
    Args,
    /// `key=value` pairs separated by commas (`site=studio-a, canary=true`), a map of texts.
    Pairs,
    /// Not a key but a section of its own (`email` of `[alerts]` is `[alerts.email]`).
    Subsection,
    /// A programme: digits are its number, other text its service name; empty: not set.
    Program,
}

use Kind::*;

/// Every section and its keys, in the order of `agent.toml`.
pub(crate) const SECTIONS: &[(&str, &[(&str, Kind)])] = &[
    (
        "agent",
        &[
            ("id", OptText),
            ("state_dir", Text),
            ("workers", Count),
            ("shutdown_grace", Duration),
            ("resync_interval", Duration),
            ("control", Text),
        ],
    ),
    (
        "watch",
        &[
            ("source", Text),
            ("output", Text),
            ("extensions", Words),
            ("recursive", Bool),
            ("mode", Word),
            ("poll_interval", Duration),
            ("on_success", Word),
            ("done_dir", OptText),
            ("on_failure", Word),
            ("quarantine_dir", OptText),
            ("program", Program),
            ("follow_symlinks", Bool),
        ],
    ),
    (
        "readiness",
        &[
            ("stable_for", Duration),
            ("mtime_grace", Duration),
            ("open_file_check", Bool),
            ("min_duration", Duration),
            ("max_decode_errors", Count),
            ("probe_timeout", Duration),
            ("partial_packet", Word),
        ],
    ),
    (
        "transcode",
        &[
            ("ffmpeg", Text),
            ("ffprobe", Text),
            ("preset", Word),
            ("crf", Count),
            ("profile", Word),
            ("level", OptText),
            ("pix_fmt", Text),
            ("deinterlace", Word),
            ("remux", Bool),
            ("audio_bitrate", Text),
            ("stall_timeout", Duration),
            ("max_attempts", Count),
            ("retry_backoff", Duration),
            ("retry_backoff_max", Duration),
            ("duration_tolerance", Duration),
            ("tune", OptText),
            ("x264_params", OptText),
            ("keyframe_interval", Count),
            ("maxrate", OptText),
            ("bufsize", OptText),
            ("max_height", Count),
            ("frame_rate", OptText),
            ("audio_channels", Count),
            ("audio_sample_rate", Count),
            ("local_ffmpeg_args", Args),
        ],
    ),
    (
        "captions",
        &[
            ("formats", Words),
            ("tool", Word),
            ("ccextractor", OptText),
            ("stall_timeout", Duration),
            ("max_attempts", Count),
            ("retry_backoff", Duration),
            ("write_empty", Bool),
            ("require_passthrough", Bool),
            ("embed", Bool),
        ],
    ),
    (
        "disk",
        &[
            ("warn", Text),
            ("critical", Text),
            ("hysteresis", Text),
            ("check_interval", Duration),
        ],
    ),
    (
        "alerts",
        &[
            ("email", Subsection),
            ("dedup_window", Duration),
            ("queue_limit", Count),
            ("retry_backoff", Duration),
            ("retry_backoff_max", Duration),
        ],
    ),
    (
        "logging",
        &[
            ("level", Text),
            ("format", Word),
            ("dir", OptText),
            ("keep", Count),
            ("rotation", Word),
        ],
    ),
    (
        "controller",
        &[
            ("endpoint", OptText),
            ("ca", OptText),
            ("cert", OptText),
            ("key", OptText),
            ("trusted_keys", Args),
            ("labels", Pairs),
            ("reconnect_backoff", Duration),
            ("reconnect_backoff_max", Duration),
            ("stats_interval", Duration),
        ],
    ),
    (
        "telemetry",
        &[
            ("otlp_endpoint", OptText),
            ("otlp_protocol", Word),
            ("metrics_listen", OptText),
            ("span_queue", Count),
            ("metrics_interval", Duration),
        ],
    ),
];

/// Sections written `[parent.child]` (or `[parent:child]`), filling a table inside `[parent]`.
pub(crate) const SUBSECTIONS: &[(&str, &[(&str, Kind)])] = &[(
    "alerts.email",
    &[
        ("smtp", Text),
        ("starttls", Bool),
        ("allow_plaintext_auth", Bool),
        ("from", Text),
        ("to", Args),
        ("username", OptText),
        ("password_env", OptText),
        ("password_file", OptText),
        ("password_credential", OptText),
        ("timeout", Duration),
    ],
)];

/// Old section names: `[general]` is `[agent]`, `[log]` is `[logging]`.
pub(crate) const SECTION_ALIASES: &[(&str, &str)] = &[("general", "agent"), ("log", "logging")];

/// Old key names, per section: (section, old, new).
pub(crate) const KEY_ALIASES: &[(&str, &str, &str)] = &[
    ("agent", "name", "id"),
    ("agent", "threads", "workers"),
    ("watch", "input", "source"),
    ("watch", "output_dir", "output"),
    ("watch", "recurse", "recursive"),
    ("readiness", "settle_time", "stable_for"),
    ("transcode", "x264_preset", "preset"),
    ("transcode", "quality", "crf"),
    // The operator's own free-form FFmpeg arguments, under the name that says they are local.
    ("transcode", "extra_args", "local_ffmpeg_args"),
];

/// The keys of `section` (its current name, or `alerts.email`).
pub(crate) fn keys(section: &str) -> Option<&'static [(&'static str, Kind)]> {
    SECTIONS
        .iter()
        .chain(SUBSECTIONS)
        .find(|(name, _)| *name == section)
        .map(|(_, keys)| *keys)
}

/// The section `name` stands for, and whether `name` is an old spelling.
pub(crate) fn section(name: &str) -> Option<(&'static str, bool)> {
    if let Some((known, _)) = SECTIONS.iter().find(|(n, _)| *n == name) {
        return Some((known, false));
    }
    SECTION_ALIASES
        .iter()
        .find(|(old, _)| *old == name)
        .map(|(_, new)| (*new, true))
}

/// The key `name` stands for in `section`, its kind, and whether `name` is an old spelling.
pub(crate) fn key(section: &str, name: &str) -> Option<(&'static str, Kind, bool)> {
    let keys = keys(section)?;
    if let Some((known, kind)) = keys.iter().find(|(k, _)| *k == name) {
        return Some((known, *kind, false));
    }
    let (_, _, new) = KEY_ALIASES
        .iter()
        .find(|(s, old, _)| *s == section && *old == name)?;
    let (known, kind) = keys.iter().find(|(k, _)| k == new)?;
    Some((known, *kind, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::field_names;
    use crate::load::section_keys;
    use crate::AgentConfig;

    #[test]
    fn layout_matches_the_typed_config() {
        let names: Vec<_> = SECTIONS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, field_names::<AgentConfig>());
        for (section, keys) in SECTIONS.iter().chain(SUBSECTIONS) {
            let ini: Vec<_> = keys.iter().map(|(k, _)| *k).collect();
            // A typed key kept only to be refused with a message is an alias in the INI.
            let typed: Option<Vec<&str>> = section_keys(section).map(|all| {
                all.iter()
                    .copied()
                    .filter(|k| {
                        !KEY_ALIASES
                            .iter()
                            .any(|(s, old, _)| s == section && old == k)
                    })
                    .collect()
            });
            assert_eq!(Some(ini), typed, "[{section}]");
        }
    }

    #[test]
    fn aliases_point_at_real_keys() {
        for (section, old, new) in KEY_ALIASES {
            assert_eq!(key(section, old).map(|k| k.0), Some(*new), "{old}");
            assert!(key(section, new).is_some_and(|k| !k.2), "{new}");
        }
        for (old, new) in SECTION_ALIASES {
            assert_eq!(section(old), Some((*new, true)));
        }
    }
}
