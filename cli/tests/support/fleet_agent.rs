//! A real `h264-agent` process joined to a controller, for the end-to-end tests of rollouts and
//! traces: its own temporary folders (watch folder `incoming`, output `h264`, state), its
//! control API on loopback port 0, fast reconnects and stats, and its log in `agent.log`. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::bins;

/// One running agent.
#[allow(dead_code)] // each test binary uses a different part
pub struct FleetAgent {
    /// The agent's temporary folder.
    pub dir: tempfile::TempDir,
    /// Its watch folder.
    pub input: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

#[allow(dead_code)] // each test binary uses a different part
impl FleetAgent {
    /// Starts agent `id` against the controller at `endpoint`, labelled `canary=true` when
    /// `canary`, with the extra environment `env` (e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn start(id: &str, endpoint: &str, canary: bool, env: &[(&str, &str)]) -> FleetAgent {
        Self::start_with(id, endpoint, canary, env, "")
    }

    /// [`FleetAgent::start`] with `extra` appended to the agent's TOML (e.g. a `[captions]`
    /// table naming a local program).
    pub fn start_with(
        id: &str,
        endpoint: &str,
        canary: bool,
        env: &[(&str, &str)],
        extra: &str,
    ) -> FleetAgent {
        Self::start_watching(id, endpoint, canary, env, extra, "")
    }

    /// [`FleetAgent::start_with`] with `watch` appended to its `[[watch]]` table (e.g.
    /// `on_success = "delete"`).
    pub fn start_watching(
        id: &str,
        endpoint: &str,
        canary: bool,
        env: &[(&str, &str)],
        extra: &str,
        watch: &str,
    ) -> FleetAgent {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("incoming"), dir.path().join("h264"));
        let watch = watch.trim_end();
        std::fs::create_dir_all(&input).unwrap();
        let config = dir.path().join("agent.toml");
        let labels = if canary {
            "{ site = \"e2e\", canary = \"true\" }"
        } else {
            "{ site = \"e2e\" }"
        };
        std::fs::write(
            &config,
            format!(
                "[agent]\nid = \"{id}\"\nstate_dir = '{}'\ncontrol = \"127.0.0.1:0\"\n\
                 [[watch]]\nsource = '{}'\noutput = '{}'\n{watch}\n\
                 [readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
                 [transcode]\npreset = \"ultrafast\"\ncrf = 30\nremux = false\n\
                 [controller]\nendpoint = \"{endpoint}\"\nlabels = {labels}\n\
                 reconnect_backoff = \"200ms\"\nreconnect_backoff_max = \"1s\"\nstats_interval = \"1s\"\n{extra}",
                dir.path().join("state").display(),
                input.display(),
                output.display()
            ),
        )
        .unwrap();
        let mut agent = FleetAgent {
            dir,
            input,
            config,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        agent.start_again();
        agent
    }

    /// Kills the agent (SIGKILL): it drops off the fleet as a crashed or unplugged host does.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same configuration and state, its log appended.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = Command::new(bins::workspace_bin("h264-agent"))
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for FleetAgent {
    fn drop(&mut self) {
        self.kill();
    }
}
