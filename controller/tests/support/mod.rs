//! Test support: the real controller binary in a temp folder (with a config file when a test
//! needs one), a protocol-speaking test agent, and admin-API helpers.
#![allow(dead_code, unused_imports)]

pub mod controller;
pub mod fake_agent;

use std::path::Path;
use std::time::{Duration, Instant};

use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_proto::v1::{AgentStatus, ApplyReply, ApplyRequest, DescribeAgentRequest};
use tonic::transport::Channel;

pub use controller::ControllerProcess;
pub use fake_agent::{hello, sha256_hex, FakeAgent};

/// Starts the controller built with this crate.
pub fn controller(state_dir: &Path) -> ControllerProcess {
    ControllerProcess::start(Path::new(env!("CARGO_BIN_EXE_h264-controller")), state_dir)
}

/// Starts the controller built with this crate with `--config config` too.
pub fn controller_with_config(state_dir: &Path, config: &Path) -> ControllerProcess {
    ControllerProcess::start_with_config(
        Path::new(env!("CARGO_BIN_EXE_h264-controller")),
        state_dir,
        Some(config),
    )
}

/// Writes `dir/controller.toml` with `[alerts]` e-mailing to the SMTP server on loopback
/// `port`, retrying after `retry` (at least 1 ms, at most an hour), and returns its path.
pub fn alerts_config(dir: &Path, port: u16, retry: &str) -> std::path::PathBuf {
    let path = dir.join("controller.toml");
    let text = format!(
        "[alerts]\nretry_backoff = \"{retry}\"\nretry_backoff_max = \"{retry}\"\n\
         [alerts.email]\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"h264-controller@example.org\"\n\
         to = [\"ops@example.org\"]\ntimeout = \"5s\"\n"
    );
    std::fs::write(&path, text).expect("write controller.toml");
    path
}

/// A manifest with this CRF (each CRF a different spec).
pub fn manifest(crf: u32) -> String {
    format!(
        "apiVersion: h264create.dev/v1\nkind: FleetConfig\nmetadata:\n  name: studios\nspec:\n  transcode:\n    crf: {crf}\n"
    )
}

/// The admin client.
pub async fn admin(c: &ControllerProcess) -> FleetAdminClient<Channel> {
    FleetAdminClient::connect(c.url()).await.expect("admin API")
}

/// Applies `manifest`.
pub async fn apply(admin: &mut FleetAdminClient<Channel>, manifest: &str) -> ApplyReply {
    admin
        .apply(ApplyRequest {
            manifest: manifest.into(),
            dry_run: false,
            origin: String::new(),
        })
        .await
        .expect("apply")
        .into_inner()
}

/// Describes `id`.
pub async fn describe(admin: &mut FleetAdminClient<Channel>, id: &str) -> AgentStatus {
    admin
        .describe_agent(DescribeAgentRequest {
            agent_id: id.into(),
        })
        .await
        .expect("describe")
        .into_inner()
}

/// Polls `describe(id)` until `check` holds (at most 10 s); returns the last status.
pub async fn wait_for_agent(
    admin: &mut FleetAdminClient<Channel>,
    id: &str,
    what: &str,
    check: impl Fn(&AgentStatus) -> bool,
) -> AgentStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = describe(admin, id).await;
        if check(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for agent {id}: {what}; last: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
