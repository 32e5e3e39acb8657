//! Test support: the real controller binary in a temp folder (with a config file when a test
//! needs one), a protocol-speaking test agent, and admin-API helpers.
#![allow(dead_code, unused_imports)]

pub mod controller;
pub mod fake_agent;

use std::path::Path;
use std::time::Duration;

pub use h264_testkit::wait::{wait_for, wait_for_async};

use h264_proto::v1::fleet_admin_client::FleetAdminClient;
use h264_proto::v1::{AgentStatus, ApplyReply, ApplyRequest, DescribeAgentRequest};
use tonic::service::interceptor::InterceptedService;
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

/// The admin API with a token.
pub type Admin = FleetAdminClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Debug, Clone)]
pub struct Bearer(pub String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.0).parse().expect("ascii token"),
        );
        Ok(r)
    }
}

/// An admin client of `url` with `token`.
pub async fn admin_with(url: &str, token: &str) -> Admin {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("admin API");
    FleetAdminClient::with_interceptor(channel, Bearer(token.to_owned()))
}

/// The admin client, with the controller's admin token.
pub async fn admin(c: &ControllerProcess) -> Admin {
    admin_with(&c.url(), &c.token()).await
}

/// Applies `manifest`.
pub async fn apply(admin: &mut Admin, manifest: &str) -> ApplyReply {
    admin
        .apply(ApplyRequest {
            manifest: manifest.into(),
            dry_run: false,
            origin: String::new(),
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner()
}

/// Describes `id`.
pub async fn describe(admin: &mut Admin, id: &str) -> AgentStatus {
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
    admin: &mut Admin,
    id: &str,
    what: &str,
    check: impl Fn(&AgentStatus) -> bool,
) -> AgentStatus {
    let waited = wait_for_async(
        what,
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let (mut admin, check) = (admin.clone(), &check);
            async move {
                let s = describe(&mut admin, id).await;
                check(&s).then_some(s)
            }
        },
    )
    .await;
    match waited {
        Ok(s) => s,
        Err(e) => panic!("agent {id}: {e}; last: {:?}", describe(admin, id).await),
    }
}
