//! The controller's own configuration: where it listens, where it keeps its state and where
//! its alerts go. Given on the command line (`--listen`, `--state-dir`) or in a TOML file
//! (`--config`), read strictly by the config crate ([`parse_controller_file`]): every unknown
//! key, type error and bad value at once, each with its line and key, not one per run.
//!
//! ```toml
//! listen = "127.0.0.1:7443"
//! state_dir = "/var/lib/h264-controller"
//! # Optional:
//! hello_timeout = "10s"      # a session that says nothing for this long is closed
//! events_kept = 10000        # agent events kept in the database (oldest dropped first)
//! max_agents = 10000         # agents known at most; a new agent past it is refused
//! revisions_kept = 100       # revisions kept (never the stable one or one an agent runs)
//!
//! # TLS (rustls). Required on any address but loopback, unless insecure_plaintext = true.
//! tls_cert = "/etc/h264create/pki/ctl.example.org.crt"
//! tls_key = "/etc/h264create/pki/ctl.example.org.key"
//! # With a client CA, agents must present a certificate naming them
//! # (h264create://agent/ID) and operators may log in with one (h264create://operator/ROLE/NAME).
//! client_ca = "/etc/h264create/pki/ca.crt"
//! insecure_plaintext = false
//!
//! # Optional: the agent's [alerts] and [alerts.email], same keys, defaults and checks
//! # (config/examples/agent.toml documents them). Rollout alerts (a gate failed and the fleet
//! # was rolled back, an abort, an undo) are always logged; with [alerts.email] they are also
//! # e-mailed, through a queue in state_dir/alerts-queue/ that survives restarts.
//! [alerts]
//! dedup_window = "15m"
//! [alerts.email]
//! smtp = "smtp://mail.example.org:587"
//! starttls = true
//! from = "h264-controller@example.org"
//! to = ["ops@example.org"]
//!
//! # Optional: OpenTelemetry. Spans (rollouts, admin calls) and metrics go to an OTLP
//! # collector; OTEL_EXPORTER_OTLP_ENDPOINT and the other standard variables work too (an
//! # endpoint written here wins). metrics_listen serves GET /metrics for Prometheus.
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4317"
//! otlp_protocol = "grpc"     # or "http/protobuf"
//! metrics_listen = "127.0.0.1:9464"
//!
//! # Optional: job history kept (at least 1d), and the web console (off without listen).
//! [history]
//! keep = "90d"
//! [web]
//! listen = "127.0.0.1:8443"
//! ```
//!
//! `deploy/examples/controller.toml` is a complete example.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_config::agent::{Alerts, OtlpProtocol};
use h264_config::controller::{
    parse_controller_file, parse_listen, ControllerFile, ControllerTelemetry,
};
use h264_config::{Checks, Problem};
use h264_telemetry::Protocol;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// Everything the controller needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// The address of the gRPC listener (agent sessions, admin API, health).
    pub listen: SocketAddr,
    /// The folder of the SQLite database (`controller.db`) and the lock file.
    pub state_dir: PathBuf,
    /// How long a new session may take to send its Hello.
    pub hello_timeout: Duration,
    /// How many agent events the database keeps (the oldest are dropped first).
    pub events_kept: u32,
    /// `[alerts]`: rollout alerts are logged, and e-mailed when `email` is set; the queue of
    /// undelivered e-mails is `state_dir/alerts-queue/`.
    pub alerts: Alerts,
    /// `[telemetry]`: OTLP export and the Prometheus endpoint.
    pub telemetry: TelemetryConfig,
    /// TLS for every connection; none: plaintext (loopback only, or `insecure_plaintext`).
    pub tls: Option<TlsFiles>,
    /// Serve plaintext on a non-loopback address anyway (logged as a warning at every start).
    pub insecure_plaintext: bool,
    /// How many agents the controller knows at most.
    pub max_agents: usize,
    /// How many revisions are kept (the stable one and those agents run are never pruned).
    pub revisions_kept: usize,
    /// `[history] keep`: job attempts older than this are deleted (at least a day).
    pub history_keep: Duration,
    /// `[web] listen`: where the web console is served (with the same TLS as the API); none:
    /// not served.
    pub web_listen: Option<SocketAddr>,
}

/// The controller's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Its certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that agents' and operators' client certificates must chain to; none: no client
    /// certificates (agents are then not authenticated, which is logged).
    pub client_ca: Option<PathBuf>,
}

/// `[telemetry]`: where spans and metrics go. Nothing is exported and no metrics are kept
/// when it is empty (and no `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The OTLP collector, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<String>,
    /// gRPC (default) or HTTP/protobuf.
    pub otlp_protocol: Protocol,
    /// Where `GET /metrics` (Prometheus text format) is served; none: not served.
    pub metrics_listen: Option<SocketAddr>,
}

/// Reads a metrics address (`127.0.0.1:9464`; port 0 picks a free port).
pub fn parse_metrics_listen(text: &str) -> Result<SocketAddr, String> {
    parse_listen(text, "127.0.0.1:9464")
}

impl ControllerConfig {
    /// A config with the defaults for everything but the state folder.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            state_dir: state_dir.into(),
            hello_timeout: Duration::from_secs(10),
            events_kept: 10_000,
            alerts: Alerts::default(),
            telemetry: TelemetryConfig::default(),
            tls: None,
            insecure_plaintext: false,
            max_agents: 10_000,
            revisions_kept: 100,
            history_keep: crate::history::DEFAULT_KEEP,
            web_listen: None,
        }
    }

    /// Refuses plaintext on an address other than loopback unless `insecure_plaintext` (the
    /// API's and the web console's).
    pub fn check_transport(&self) -> Result<(), ConfigError> {
        if let Some(web) = self.web_listen {
            if self.tls.is_none() && !web.ip().is_loopback() && !self.insecure_plaintext {
                return Err(ConfigError::Invalid {
                    key: "web.listen",
                    message: format!(
                        "{web} is not a loopback address and TLS is off: the console's logins \
                         would cross the network in clear; set tls_cert and tls_key (the console \
                         uses the API's certificate), or listen on 127.0.0.1"
                    ),
                });
            }
        }
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.insecure_plaintext {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!(
                    "{} is not a loopback address and TLS is off: give --tls-cert FILE --tls-key FILE \
                     (and --client-ca FILE so agents prove who they are; `fleetctl pki` makes them), \
                     or listen on 127.0.0.1, or accept the risk with --insecure-plaintext",
                    self.listen
                ),
            });
        }
        Ok(())
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file has problems (syntax, unknown keys, types, rules): all of them, errors first,
    /// each naming its file, line and key, one per line.
    #[error("{}", lines(.0))]
    File(Vec<Problem>),
    /// A value is out of shape, or the file and the command line together are.
    #[error("{key}: {message}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn lines(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Overrides from the command line, laid over the file (or the defaults).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--insecure-plaintext`.
    pub insecure_plaintext: bool,
}

/// Builds the config from an optional TOML file (read by [`parse_controller_file`]: every
/// problem at once, with lines) and the command-line overrides; the state folder must come from
/// one of them. The file's warnings are logged.
pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<ControllerConfig, ConfigError> {
    let parsed = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let (parsed, warnings) = parse_controller_file(&text, Some(path), Checks::Full)
                .map_err(|e| ConfigError::File(e.problems().to_vec()))?;
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            parsed
        }
        None => ControllerFile::default(),
    };
    let listen = overrides
        .listen
        .or(parsed.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Invalid {
        key: "listen",
        message: format!("`{listen}` is not an address like 127.0.0.1:7443"),
    })?;
    let state_dir = overrides
        .state_dir
        .or(parsed.state_dir)
        .ok_or(ConfigError::Invalid {
            key: "state_dir",
            message: "is missing: give --state-dir DIR or state_dir in the config file".into(),
        })?;
    // The file's values were checked by the config crate.
    let mut config = ControllerConfig::new(listen, state_dir);
    config.alerts = parsed.alerts;
    config.telemetry = telemetry(parsed.telemetry);
    if let Some(d) = parsed.hello_timeout {
        config.hello_timeout = d.get();
    }
    config.events_kept = parsed.events_kept.unwrap_or(config.events_kept);
    config.max_agents = parsed.max_agents.unwrap_or(config.max_agents);
    config.revisions_kept = parsed.revisions_kept.unwrap_or(config.revisions_kept);
    if let Some(keep) = parsed.history.keep {
        config.history_keep = keep.get();
    }
    if let Some(text) = parsed.web.listen {
        config.web_listen = Some(parse_listen(&text, "127.0.0.1:8443").map_err(|message| {
            ConfigError::Invalid {
                key: "web.listen",
                message,
            }
        })?);
    }
    let cert = overrides.tls_cert.or(parsed.tls_cert);
    let key = overrides.tls_key.or(parsed.tls_key);
    let client_ca = overrides.client_ca.or(parsed.client_ca);
    config.tls =
        match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) if client_ca.is_none() => None,
            _ => return Err(ConfigError::Invalid {
                key: "tls_cert",
                message:
                    "TLS needs both a certificate and its key (--tls-cert FILE --tls-key FILE); \
                          --client-ca needs them too"
                        .into(),
            }),
        };
    config.insecure_plaintext =
        overrides.insecure_plaintext || parsed.insecure_plaintext.unwrap_or(false);
    config.check_transport()?;
    Ok(config)
}

/// `[telemetry]` as the telemetry crate takes it (its values checked already).
fn telemetry(t: ControllerTelemetry) -> TelemetryConfig {
    TelemetryConfig {
        otlp_endpoint: t.otlp_endpoint,
        otlp_protocol: match t.otlp_protocol {
            OtlpProtocol::Grpc => Protocol::Grpc,
            OtlpProtocol::HttpProtobuf => Protocol::HttpProtobuf,
        },
        metrics_listen: t.metrics_listen.and_then(|a| parse_metrics_listen(&a).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_values_and_command_line_overrides() {
        let (_d, path) =
            write("listen = \"127.0.0.1:9000\"\nstate_dir = \"s\"\nhello_timeout = \"3s\"\n");
        let c = load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.hello_timeout, Duration::from_secs(3));
        let c = load(
            Some(&path),
            Overrides {
                listen: Some("127.0.0.1:9001".into()),
                state_dir: Some("t".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!((c.listen.port(), c.state_dir), (9001, PathBuf::from("t")));
    }

    #[test]
    fn strict_and_complete() {
        let cases = [
            ("state_dir = \"s\"\nlisten_addr = \"x\"\n", "listen_addr"),
            ("listen = \"nowhere\"\nstate_dir = \"s\"\n", "listen"),
            ("listen = \"127.0.0.1:1\"\n", "state_dir"),
            (
                "state_dir = \"s\"\nhello_timeout = \"soon\"\n",
                "hello_timeout",
            ),
            ("state_dir = \"s\"\nevents_kept = 0\n", "events_kept"),
            (
                "state_dir = \"s\"\n[alerts]\nqueue_limt = 3\n",
                "controller.toml:3: alerts.queue_limt: unknown key",
            ),
            (
                "state_dir = \"s\"\n[alerts.email]\nsmtp = \"mail\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
                "controller.toml:3: alerts.email.smtp",
            ),
            (
                "state_dir = \"s\"\n[alerts.email]\nsmtp = \"smtp://h\"\nto = [\"x\"]\n",
                "alerts.email.to[0]",
            ),
        ];
        for (text, key) in cases {
            let (_d, path) = write(text);
            let e = load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn plaintext_only_on_loopback_unless_insecure() {
        let (_d, path) = write("state_dir = \"s\"\nlisten = \"0.0.0.0:7443\"\n");
        let e = load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("--insecure-plaintext"),
            "{e}"
        );
        let c = load(
            Some(&path),
            Overrides {
                insecure_plaintext: true,
                ..Overrides::default()
            },
        )
        .unwrap();
        assert!(c.insecure_plaintext && c.tls.is_none());
        let (_d, path) = write("state_dir = \"s\"\nlisten = \"[::1]:7443\"\n");
        load(Some(&path), Overrides::default()).unwrap();
        let (_d, path) = write("state_dir = \"s\"\ntls_cert = \"c.pem\"\n");
        let e = load(Some(&path), Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_cert"), "{e}");
        let (_d, path) = write(
            "state_dir = \"s\"\nlisten = \"0.0.0.0:1\"\ntls_cert = \"c\"\ntls_key = \"k\"\nclient_ca = \"ca\"\n",
        );
        let c = load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.tls.unwrap().client_ca, Some(PathBuf::from("ca")));
    }

    #[test]
    fn alerts_take_the_agents_keys_and_default_to_log_only() {
        let (_d, path) = write("state_dir = \"s\"\n");
        let c = load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.alerts, Alerts::default());
        assert!(c.alerts.email.is_none());
        let (_d, path) = write(
            "state_dir = \"s\"\n[alerts]\nretry_backoff = \"1s\"\n[alerts.email]\n\
             smtp = \"smtp://127.0.0.1:2525\"\nfrom = \"ctl@example.org\"\n\
             to = [\"ops@example.org\"]\n",
        );
        let c = load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.alerts.retry_backoff.get(), Duration::from_secs(1));
        let email = c.alerts.email.unwrap();
        assert_eq!(
            (email.smtp.as_str(), email.from.as_str()),
            ("smtp://127.0.0.1:2525", "ctl@example.org")
        );
    }

    #[test]
    fn telemetry_keys_are_read_and_checked() {
        let (_d, path) = write(
            "state_dir = \"s\"\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n\
             otlp_protocol = \"http/protobuf\"\nmetrics_listen = \"127.0.0.1:0\"\n",
        );
        let t = load(Some(&path), Overrides::default()).unwrap().telemetry;
        assert_eq!(t.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        assert_eq!(t.otlp_protocol, Protocol::HttpProtobuf);
        assert_eq!(t.metrics_listen.map(|a| a.port()), Some(0));
        let (_d, path) = write("state_dir = \"s\"\n");
        let t = load(Some(&path), Overrides::default()).unwrap().telemetry;
        assert_eq!(t, TelemetryConfig::default());
        for (text, key) in [
            (
                "otlp_endpoint = \"127.0.0.1:4317\"",
                "telemetry.otlp_endpoint",
            ),
            ("otlp_protocol = \"http/json\"", "telemetry.otlp_protocol"),
            (
                "metrics_listen = \"everywhere\"",
                "telemetry.metrics_listen",
            ),
            ("metrics = true", "telemetry.metrics: unknown key `metrics`"),
        ] {
            let (_d, path) = write(&format!("state_dir = \"s\"\n[telemetry]\n{text}\n"));
            let e = load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_example_in_deploy_loads() {
        let (dir, path) = write(include_str!("../../deploy/examples/controller.toml"));
        let c = load(
            Some(&path),
            Overrides {
                state_dir: Some(dir.path().join("state")),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7443);
        assert!(c.alerts.email.is_some());
    }
}
