//! Test support: the real controller binary in a temp folder, a protocol-speaking test agent,
//! and admin-API helpers.
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
