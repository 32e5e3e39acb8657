//! `Apply`: a manifest becomes a revision when its spec's canonical SHA256 differs from the
//! latest revision's; without a rollout strategy (a later version adds rollouts; `spec.rollout`
//! is kept in the revision meanwhile) a new revision is assigned to every agent at once.

use std::path::Path;

use h264_config::fleet::parse_fleet_manifest;
use h264_config::ConfigError;
use h264_proto::v1::{ApplyReply, ApplyRequest};
use tonic::Status;

use super::Admin;
use crate::model::now_ms;
use crate::registry::Target;

/// The problems of an invalid manifest, one per line, as the status message.
fn invalid(e: &ConfigError) -> Status {
    let text = match e {
        ConfigError::Invalid { problems } => problems
            .iter()
            .map(|p| {
                if p.is_error() {
                    format!("error: {p}")
                } else {
                    p.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    };
    Status::invalid_argument(text)
}

pub(super) async fn apply(admin: &Admin, req: ApplyRequest) -> Result<ApplyReply, Status> {
    let origin = (!req.origin.is_empty()).then(|| Path::new(&req.origin));
    let loaded = parse_fleet_manifest(&req.manifest, origin).map_err(|e| invalid(&e))?;
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let spec = &loaded.manifest.spec;
    let canonical = spec.canonical_json();
    let sha256 = spec.canonical_sha256();
    let name = loaded.manifest.metadata.name.clone();

    if req.dry_run {
        let latest = admin.registry.latest_revision();
        let same = latest.as_ref().filter(|l| l.sha256 == sha256);
        return Ok(ApplyReply {
            generation: same.map_or(0, |l| l.generation),
            sha256,
            created: false,
            warnings,
            changed: same.is_none(),
            agents: 0,
        });
    }

    let _write = admin.writes.lock().await;
    let (sha, now) = (sha256.clone(), now_ms());
    let (revision, created) = admin
        .blocking(move |s| s.apply_revision(&sha, &name, canonical.as_bytes(), now))
        .await?;
    let generation = revision.generation;
    let mut agents = 0;
    if created {
        admin.registry.add_revision(revision);
        let out = admin
            .registry
            .assign(generation, &Target::All, false)
            .map_err(|e| Status::internal(e.to_string()))?;
        agents = out.agents.len();
        admin
            .blocking(move |s| s.record_assignment(generation, "all", false, agents, None))
            .await?;
        admin.flush().await?;
        tracing::info!(generation, sha256 = %sha256, agents, "revision created and assigned to every agent");
    } else {
        tracing::info!(generation, "apply: the spec is unchanged; no new revision");
    }
    Ok(ApplyReply {
        generation,
        sha256,
        created,
        warnings,
        changed: created,
        agents: agents as u32,
    })
}
