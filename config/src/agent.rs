//! The agent's configuration: the typed form of `agent.toml`.
//!
//! Every field has a default, so the smallest useful file names only its watch roots. Unknown keys
//! are rejected by the loader (see [`crate::load`]), not by serde, so that all of them are reported
//! at once with a suggestion.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units::{FreeSpace, HumanDuration};

/// The whole agent configuration (`agent.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    /// Identity, state and process-wide settings.
    pub agent: AgentSection,
    /// The folders to watch, each with its output folder.
    pub watch: Vec<WatchRoot>,
    /// When a recording counts as finished and valid.
    pub readiness: Readiness,
    /// How recordings become H.264 MP4.
    pub transcode: Transcode,
    /// Closed captions: passthrough checks and sidecar files.
    pub captions: Captions,
    /// Free-space thresholds of the volumes the agent writes to.
    pub disk: Disk,
    /// Where operator alerts go.
    pub alerts: Alerts,
    /// Where and how the agent logs.
    pub logging: Logging,
    /// The fleet controller the agent takes its pipeline configuration from (local only).
    pub controller: Controller,
    /// OpenTelemetry export and the Prometheus scrape endpoint (local only). Left out of the
    /// canonical form while it is at its defaults (see [`crate::canonical`]).
    #[serde(skip_serializing_if = "Telemetry::is_default")]
    pub telemetry: Telemetry,
}

/// A commented example `agent.toml` documenting every key with its default; its values are those
/// of [`AgentConfig::embedded_default`].
pub const EXAMPLE_AGENT_TOML: &str = include_str!("../examples/agent.toml");

impl AgentConfig {
    /// The config the agent runs with when given none: one root `./var/incoming` →
    /// `./var/h264`, state in `./var/state`, files stable for 10s; every other key at its
    /// default. Relative paths are relative to the current directory. Not validated: the source
    /// folder may not exist yet.
    pub fn embedded_default() -> Self {
        Self {
            watch: vec![WatchRoot {
                source: PathBuf::from("./var/incoming"),
                output: PathBuf::from("./var/h264"),
                ..WatchRoot::default()
            }],
            ..Self::default()
        }
    }
}

/// `[agent]`: identity, state and process-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSection {
    /// The agent's id in logs and in the fleet; the host name when absent.
    pub id: Option<String>,
    /// Where the journal and other state live (created when missing).
    pub state_dir: PathBuf,
    /// How many files are converted at once.
    pub workers: usize,
    /// How long a shutdown may take before remaining work is killed.
    pub shutdown_grace: HumanDuration,
    /// How often every root is rescanned in full, whatever the watch mode.
    pub resync_interval: HumanDuration,
    /// The local control API's address (loopback); binding it also guards against a second
    /// agent. Port 0 lets the system pick one: the agent writes the address it bound to
    /// `control.addr` in `state_dir`.
    pub control: String,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            id: None,
            state_dir: PathBuf::from("./var/state"),
            workers: 2,
            shutdown_grace: HumanDuration::from_secs(20),
            resync_interval: HumanDuration::from_secs(300),
            control: "127.0.0.1:7442".into(),
        }
    }
}

/// How a watch root learns about changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// File-system events where the file system delivers them, polling on network shares.
    #[default]
    Auto,
    /// File-system events only (plus the periodic resync).
    Events,
    /// Scan every `poll_interval`; for SMB/NFS shares where events never arrive.
    Poll,
}

/// What happens to a source after it converted successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnSuccess {
    /// Leave the source where it is.
    #[default]
    Keep,
    /// Delete the source.
    Delete,
    /// Move the source to `done_dir`.
    Move,
}

/// What happens to a source after its last failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Leave the source where it is; it is retried only when it changes.
    #[default]
    Leave,
    /// Move the source to `quarantine_dir` with an `.error.txt` beside it.
    Quarantine,
}

/// `[[watch]]`: one folder a recorder writes into, and where its conversions go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchRoot {
    /// The folder the recorder writes into.
    pub source: PathBuf,
    /// The folder the MP4 files are written to (created when missing).
    pub output: PathBuf,
    /// File extensions to convert, without the dot, compared case-insensitively.
    pub extensions: Vec<String>,
    /// Whether sub-folders are watched too (their structure is mirrored in `output`).
    pub recursive: bool,
    /// How changes are noticed.
    pub mode: WatchMode,
    /// Scan interval in `poll` mode (and in `auto` mode on network shares).
    pub poll_interval: HumanDuration,
    /// What to do with a source after success.
    pub on_success: OnSuccess,
    /// Where `on_success = "move"` puts sources.
    pub done_dir: Option<PathBuf>,
    /// What to do with a source after its last failed attempt.
    pub on_failure: OnFailure,
    /// Where `on_failure = "quarantine"` puts sources.
    pub quarantine_dir: Option<PathBuf>,
    /// Which programme of a transport stream carrying several (a DVB-T or ATSC multiplex) is
    /// converted: its service name or its programme number. Not set: the first programme with
    /// video. Left out of the canonical form while not set, so the hash of a config written
    /// before it existed does not change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    /// Whether sources reached through a symlink that leads out of this root are converted
    /// (and moved or deleted after). Off: they are refused and reported once. Left out of the
    /// canonical form while off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub follow_symlinks: bool,
}

/// `[[watch]] program`: a programme of a multiplex, by service name (`"BBC ONE HD"`, matched
/// without regard to case or surrounding spaces) or by programme number (`4164`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Program {
    /// The programme number (`program_number` of the PAT, 1-65535).
    Number(u32),
    /// The service name (from the SDT or the VCT).
    Name(String),
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Number(n) => write!(f, "programme number {n}"),
            Program::Name(name) => write!(f, "service \"{name}\""),
        }
    }
}

impl<'de> Deserialize<'de> for Program {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Program;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a service name like \"BBC ONE HD\" or a programme number like 4164")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Program, E> {
                Ok(Program::Name(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Program, E> {
                u32::try_from(v)
                    .map(Program::Number)
                    .map_err(|_| E::custom(format!("{v} is not a programme number (1-65535)")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Program, E> {
                u32::try_from(v)
                    .map(Program::Number)
                    .map_err(|_| E::custom(format!("{v} is not a programme number (1-65535)")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for WatchRoot {
    fn default() -> Self {
        Self {
            source: PathBuf::new(),
            output: PathBuf::new(),
            extensions: vec!["ts".into(), "wtv".into(), "mp4".into()],
            recursive: true,
            mode: WatchMode::Auto,
            poll_interval: HumanDuration::from_secs(10),
            on_success: OnSuccess::Keep,
            done_dir: None,
            on_failure: OnFailure::Leave,
            quarantine_dir: None,
            program: None,
            follow_symlinks: false,
        }
    }
}

/// `[readiness]`: when a recording counts as finished and valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Readiness {
    /// Size and modification time must stay unchanged this long.
    pub stable_for: HumanDuration,
    /// The modification time must be at least this old.
    pub mtime_grace: HumanDuration,
    /// Whether a file that any process holds open for writing is left alone (Linux, Windows).
    pub open_file_check: bool,
    /// Recordings shorter than this are rejected as invalid.
    pub min_duration: HumanDuration,
    /// How many damage reports (demuxer and decoder damage, each distinct report once) a
    /// recording may have before it counts as corrupt.
    pub max_decode_errors: u32,
    /// How long ffprobe and the decode check may take.
    pub probe_timeout: HumanDuration,
    /// What happens to a transport stream that ends in the middle of a packet after a stable,
    /// closed write. Left out of the canonical form while at its default, so the hash of a
    /// config written before it existed does not change.
    #[serde(skip_serializing_if = "PartialPacket::is_default")]
    pub partial_packet: PartialPacket,
}

/// `[readiness] partial_packet`: a transport stream cut off mid-packet (a recorder stopped, or
/// a copy ended, in the middle of a 188-byte packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PartialPacket {
    /// Drop the cut packet and convert the whole packets before it, with a warning.
    #[default]
    Trim,
    /// Refuse the recording as truncated.
    Fail,
}

impl PartialPacket {
    /// Whether this is the default, [`PartialPacket::Trim`].
    pub fn is_default(&self) -> bool {
        *self == PartialPacket::Trim
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            stable_for: HumanDuration::from_secs(10),
            mtime_grace: HumanDuration::from_secs(2),
            open_file_check: true,
            min_duration: HumanDuration::from_secs(1),
            max_decode_errors: 10,
            probe_timeout: HumanDuration::from_secs(120),
            partial_packet: PartialPacket::Trim,
        }
    }
}

/// Whether interlaced video is deinterlaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Deinterlace {
    /// When the probe reports interlaced fields.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `[transcode]`: how recordings become H.264 MP4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transcode {
    /// The `ffmpeg` program (a name on `PATH` or a path).
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program (a name on `PATH` or a path).
    pub ffprobe: PathBuf,
    /// x264 preset.
    pub preset: String,
    /// x264 constant rate factor (0-51, lower is better).
    pub crf: u8,
    /// H.264 profile (`baseline`, `main`, `high`).
    pub profile: String,
    /// H.264 level (`4.1`), or none to let the encoder choose.
    pub level: Option<String>,
    /// Output pixel format.
    pub pix_fmt: String,
    /// Whether interlaced sources are deinterlaced.
    pub deinterlace: Deinterlace,
    /// Whether sources that are already compliant H.264 are remuxed instead of re-encoded.
    pub remux: bool,
    /// Audio bitrate of the AAC output (`"160k"`).
    pub audio_bitrate: String,
    /// No longer accepted when set: free-form FFmpeg arguments could make FFmpeg read or write
    /// any file. Kept as a key only so that a file or manifest still holding it is refused with
    /// the typed setting that replaces each option (see [`crate::encoder`]).
    pub extra_args: Vec<String>,
    /// FFmpeg is killed when its progress does not move for this long.
    pub stall_timeout: HumanDuration,
    /// Attempts per file before it fails for good.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub retry_backoff: HumanDuration,
    /// Largest retry delay.
    pub retry_backoff_max: HumanDuration,
    /// The output's duration must be this close to the source's (at most
    /// [`crate::encoder::MAX_DURATION_TOLERANCE`]).
    pub duration_tolerance: HumanDuration,
    /// x264 tuning (`film`, `animation`, `grain`, …); not set: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<String>,
    /// x264 options, `key=value` separated by `:` (`ref=4:bframes=3`); only the keys of
    /// [`crate::encoder::X264_PARAMS`], each value checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x264_params: Option<String>,
    /// Frames between keyframes (FFmpeg `-g`); not set: the encoder's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyframe_interval: Option<u32>,
    /// Largest video bitrate (`"4M"`, `"4000k"`); needs `bufsize`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxrate: Option<String>,
    /// Rate-control buffer (`"8M"`); needs `maxrate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bufsize: Option<String>,
    /// Taller video is scaled down to this height (the width keeps the aspect ratio).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Output frame rate (`"25"`, `"30000/1001"`, `"29.97"`); not set: the source's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<String>,
    /// Audio channels of the AAC output (1-8); not set: the source's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_channels: Option<u32>,
    /// Audio sample rate of the AAC output in Hz (`48000`); not set: the source's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_sample_rate: Option<u32>,
    /// Free-form FFmpeg output arguments, placed before the output file: local to this agent's
    /// own file (a fleet manifest can never set them), and checked even here (see
    /// [`crate::encoder::check_local_args`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local_ffmpeg_args: Vec<String>,
}

impl Default for Transcode {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            preset: "veryfast".into(),
            crf: 21,
            profile: "high".into(),
            level: None,
            pix_fmt: "yuv420p".into(),
            deinterlace: Deinterlace::Auto,
            remux: true,
            audio_bitrate: "160k".into(),
            extra_args: Vec::new(),
            stall_timeout: HumanDuration::from_secs(120),
            max_attempts: 3,
            retry_backoff: HumanDuration::from_secs(10),
            retry_backoff_max: HumanDuration::from_secs(600),
            duration_tolerance: HumanDuration::from_millis(500),
            tune: None,
            x264_params: None,
            keyframe_interval: None,
            maxrate: None,
            bufsize: None,
            max_height: None,
            frame_rate: None,
            audio_channels: None,
            audio_sample_rate: None,
            local_ffmpeg_args: Vec::new(),
        }
    }
}

/// Which program extracts caption sidecars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptionTool {
    /// CCExtractor when it can be found (configured path or `PATH`), else FFmpeg.
    #[default]
    Auto,
    /// CCExtractor only.
    Ccextractor,
    /// FFmpeg only (`.srt` and `.vtt`; `.bin` needs CCExtractor).
    Ffmpeg,
}

/// `[captions]`: CEA-608/708 closed captions kept in the MP4 and extracted to sidecar files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Captions {
    /// Sidecar formats written beside the MP4: `srt`, `vtt`, `bin` (CCExtractor's raw format).
    /// Empty: no sidecars.
    pub formats: Vec<String>,
    /// Which program extracts the sidecars.
    pub tool: CaptionTool,
    /// CCExtractor's path; when absent, `ccextractor` is looked up on `PATH`.
    pub ccextractor: Option<PathBuf>,
    /// An extractor is killed when it shows no sign of life for this long.
    pub stall_timeout: HumanDuration,
    /// Attempts of the caption stage before the job fails.
    pub max_attempts: u32,
    /// First retry delay of the caption stage; doubles each attempt, with jitter.
    pub retry_backoff: HumanDuration,
    /// Whether empty sidecars are written for a recording without captions.
    pub write_empty: bool,
    /// Whether an output that lost the source's captions fails verification.
    pub require_passthrough: bool,
    /// Whether the MP4 keeps the source's closed captions (CEA-608 in the video, or its `c608`
    /// track). False drops them from the MP4 (for delivery chains that take captions from the
    /// sidecars only, where captions in the video would be shown twice): libx264 leaves them
    /// out, a stream copy drops the video's SEI units, a `c608` track is not copied, and the
    /// MP4's captions are not checked. Sidecars are still extracted from the source.
    pub embed: bool,
}

impl Default for Captions {
    fn default() -> Self {
        Self {
            formats: Vec::new(),
            tool: CaptionTool::Auto,
            ccextractor: None,
            stall_timeout: HumanDuration::from_secs(120),
            max_attempts: 3,
            retry_backoff: HumanDuration::from_secs(2),
            write_empty: false,
            require_passthrough: true,
            embed: true,
        }
    }
}

impl Captions {
    /// The CCExtractor to use: the configured path if it is a file, else `ccextractor` on `PATH`.
    pub fn find_ccextractor(&self) -> Option<PathBuf> {
        if let Some(path) = &self.ccextractor {
            return path.is_file().then(|| path.clone());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("ccextractor"))
            .find(|candidate| candidate.is_file())
    }
}

/// `[disk]`: free-space thresholds for every volume holding an output folder or the state folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Disk {
    /// Below this much free space, an alert warns.
    pub warn: FreeSpace,
    /// Below this much free space, the agent stops starting jobs until space comes back.
    pub critical: FreeSpace,
    /// Intake resumes once free space is above `critical` plus this margin.
    pub hysteresis: FreeSpace,
    /// How often free space is checked (it is also checked before each job).
    pub check_interval: HumanDuration,
}

impl Default for Disk {
    fn default() -> Self {
        Self {
            warn: FreeSpace::Percent(10.0),
            critical: FreeSpace::Percent(5.0),
            hysteresis: FreeSpace::Percent(1.0),
            check_interval: HumanDuration::from_secs(30),
        }
    }
}

/// `[alerts]`: operator alerts. Every alert is logged; e-mail is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Alerts {
    /// E-mail delivery; none: alerts are only logged.
    pub email: Option<Email>,
    /// The same alert (same event and subject) is sent at most once in this window.
    pub dedup_window: HumanDuration,
    /// How many undelivered messages the dead-letter queue keeps; older ones are summarised.
    pub queue_limit: usize,
    /// First retry delay of an undelivered message; doubles each attempt, with jitter.
    pub retry_backoff: HumanDuration,
    /// Largest retry delay.
    pub retry_backoff_max: HumanDuration,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            email: None,
            dedup_window: HumanDuration::from_secs(900),
            queue_limit: 1000,
            retry_backoff: HumanDuration::from_secs(10),
            retry_backoff_max: HumanDuration::from_secs(1800),
        }
    }
}

/// `[alerts.email]`: SMTP delivery of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Email {
    /// `smtp://host:port` (STARTTLS, or plain with `starttls = false`) or `smtps://host:port`
    /// (TLS).
    pub smtp: String,
    /// Whether a `smtp://` connection must upgrade with STARTTLS; not set: yes on port 587 (the
    /// submission port), no elsewhere (see [`Email::uses_starttls`]).
    pub starttls: Option<bool>,
    /// Whether a password may go to a server that is not on loopback over a connection without
    /// TLS. Off: such a configuration is an error. Left out of the canonical form while off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext_auth: bool,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// SMTP user name, when the server needs authentication.
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (its first line).
    pub password_file: Option<PathBuf>,
    /// The name of a systemd credential holding the password (its first line), read from
    /// `$CREDENTIALS_DIRECTORY` (`LoadCredential=NAME:PATH` in the unit; see
    /// [`crate::credentials`]). Left out of the canonical form when absent, so that configs
    /// hashed before it existed keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_credential: Option<String>,
    /// How long one delivery may take.
    pub timeout: HumanDuration,
}

impl Default for Email {
    fn default() -> Self {
        Self {
            smtp: String::new(),
            starttls: None,
            allow_plaintext_auth: false,
            from: String::new(),
            to: Vec::new(),
            username: None,
            password_env: None,
            password_file: None,
            password_credential: None,
            timeout: HumanDuration::from_secs(30),
        }
    }
}

impl Email {
    /// Whether a `smtp://` connection upgrades with STARTTLS: `starttls` when set, else whether
    /// the port is 587.
    pub fn uses_starttls(&self) -> bool {
        self.starttls
            .unwrap_or_else(|| self.smtp_port() == Some(587))
    }

    /// The host of `smtp`, without brackets (`None` when it cannot be read).
    pub fn smtp_host(&self) -> Option<&str> {
        let rest = self.smtp.split_once("://")?.1.trim_end_matches('/');
        match rest.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map(|(h, _)| h),
            None => Some(rest.rsplit_once(':').map_or(rest, |(h, _)| h)),
        }
    }

    /// The port of `smtp`, when it names one.
    pub fn smtp_port(&self) -> Option<u16> {
        let rest = self.smtp.split_once("://")?.1.trim_end_matches('/');
        let port = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:")?.1,
            None => rest.rsplit_once(':')?.1,
        };
        port.parse().ok()
    }

    /// Whether the server is this machine (`localhost`, `127.0.0.0/8`, `::1`).
    pub fn smtp_is_loopback(&self) -> bool {
        match self.smtp_host() {
            Some(h) if h.eq_ignore_ascii_case("localhost") => true,
            Some(h) => h
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        }
    }
}

/// How often log files roll over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// A new file every day.
    #[default]
    Daily,
    /// A new file every hour.
    Hourly,
    /// A new file every minute (for tests and very busy agents).
    Minutely,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[logging]`: where and how the agent logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logging {
    /// A `tracing` filter (`info`, `h264_agent=debug`); `RUST_LOG` overrides it.
    pub level: String,
    /// Line format on stderr and in log files.
    pub format: LogFormat,
    /// A folder for rotated log files; none: stderr only.
    pub dir: Option<PathBuf>,
    /// How many rotated log files are kept.
    pub keep: usize,
    /// How often log files roll over.
    pub rotation: Rotation,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            dir: None,
            keep: 14,
            rotation: Rotation::Daily,
        }
    }
}

/// `[controller]`: the fleet controller this agent connects to. Local to each agent: a fleet
/// manifest can never set it (least of all its trust settings: `ca`, `cert`, `key` and
/// `trusted_keys`). The trust keys are left out of the canonical form while unset, so that
/// configs hashed before they existed keep their hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Controller {
    /// The controller's address, `http://host:7443`; not set: no controller, the agent runs on
    /// its own file.
    pub endpoint: Option<String>,
    /// The fleet CA (PEM) the controller's certificate must be issued by; needed with an
    /// `https://` endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The agent's client certificate (PEM), naming `h264create://agent/<id>`; with `key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Public keys (`ed25519:BASE64`) whose signatures this agent accepts; when any are set,
    /// only revisions signed by one of them are applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_keys: Vec<String>,
    /// Labels the agent reports to the controller (rollout cohorts and selectors use them).
    pub labels: BTreeMap<String, String>,
    /// First reconnect delay after the controller is lost; doubles each failed attempt, with
    /// jitter, up to `reconnect_backoff_max`.
    pub reconnect_backoff: HumanDuration,
    /// Largest reconnect delay.
    pub reconnect_backoff_max: HumanDuration,
    /// How often the agent sends its stats (it also sends them when a job ends).
    pub stats_interval: HumanDuration,
}

impl Default for Controller {
    fn default() -> Self {
        Self {
            endpoint: None,
            ca: None,
            cert: None,
            key: None,
            trusted_keys: Vec::new(),
            labels: BTreeMap::new(),
            reconnect_backoff: HumanDuration::from_secs(1),
            reconnect_backoff_max: HumanDuration::from_secs(30),
            stats_interval: HumanDuration::from_secs(5),
        }
    }
}

/// How traces and metrics travel to the OpenTelemetry collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collectors listen on port 4317 by convention).
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The name as the file and `OTEL_EXPORTER_OTLP_PROTOCOL` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// `[telemetry]`: OpenTelemetry export of traces and metrics, and the Prometheus scrape
/// endpoint. Local to each agent (a fleet manifest cannot set it), and read once at start-up.
/// Nothing is exported and no endpoint is served unless configured here or through the
/// standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Telemetry {
    /// The OTLP collector, `http://host:4317` (gRPC) or `http://host:4318` (HTTP); not set: the
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variable, else nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// How spans and metrics travel to the collector.
    pub otlp_protocol: OtlpProtocol,
    /// Where the Prometheus scrape endpoint (`GET /metrics`) listens, `host:port`; not set: no
    /// endpoint.
    pub metrics_listen: Option<String>,
    /// Finished spans waiting for export; past this, new spans are dropped and counted, so a
    /// slow or unreachable collector never slows the agent.
    pub span_queue: usize,
    /// How often metrics are pushed to the collector.
    pub metrics_interval: HumanDuration,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            metrics_listen: None,
            span_queue: 2048,
            metrics_interval: HumanDuration::from_secs(30),
        }
    }
}

impl Telemetry {
    /// Whether every key is at its default (nothing configured).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
