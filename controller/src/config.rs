//! The controller's own configuration: where it listens and where it keeps its state. Given on
//! the command line (`--listen`, `--state-dir`) or in a TOML file (`--config`), read strictly:
//! an unknown key is an error, not a silently ignored typo.
//!
//! ```toml
//! listen = "127.0.0.1:7443"
//! state_dir = "/var/lib/h264-controller"
//! # Optional:
//! hello_timeout = "10s"      # a session that says nothing for this long is closed
//! events_kept = 10000        # agent events kept in the database (oldest dropped first)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// Everything the controller needs to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// The address of the gRPC listener (agent sessions, admin API, health).
    pub listen: SocketAddr,
    /// The folder of the SQLite database (`controller.db`) and the lock file.
    pub state_dir: PathBuf,
    /// How long a new session may take to send its Hello.
    pub hello_timeout: Duration,
    /// How many agent events the database keeps (the oldest are dropped first).
    pub events_kept: u32,
}

impl ControllerConfig {
    /// A config with the defaults for everything but the state folder.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            state_dir: state_dir.into(),
            hello_timeout: Duration::from_secs(10),
            events_kept: 10_000,
        }
    }
}

/// The TOML file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    hello_timeout: Option<String>,
    events_kept: Option<u32>,
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
    /// The file is not valid TOML for this config (unknown key, wrong type).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (it names the key and line).
        message: String,
    },
    /// A value is out of shape.
    #[error("{key}: {message}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Overrides from the command line, laid over the file (or the defaults).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
}

/// Builds the config from an optional TOML file and the command-line overrides; the state
/// folder must come from one of them.
pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<ControllerConfig, ConfigError> {
    let parsed = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        }
        None => FileConfig {
            listen: None,
            state_dir: None,
            hello_timeout: None,
            events_kept: None,
        },
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
    let mut config = ControllerConfig::new(listen, state_dir);
    if let Some(text) = parsed.hello_timeout {
        config.hello_timeout = humantime::parse_duration(&text)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(ConfigError::Invalid {
                key: "hello_timeout",
                message: format!("`{text}` is not a duration like 10s"),
            })?;
    }
    if let Some(n) = parsed.events_kept {
        if n == 0 {
            return Err(ConfigError::Invalid {
                key: "events_kept",
                message: "must be at least 1".into(),
            });
        }
        config.events_kept = n;
    }
    Ok(config)
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
        ];
        for (text, key) in cases {
            let (_d, path) = write(text);
            let e = load(Some(&path), Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
