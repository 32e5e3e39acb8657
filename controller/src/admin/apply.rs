//! `Apply`: a manifest becomes a revision when its spec's canonical SHA256 differs from the
//! latest revision's. With a `spec.rollout` (and a stable revision to fall back to) a new
//! revision starts a rollout ([`crate::rollout`]); without one it is assigned to every agent at
//! once, as before, superseding a rollout in progress.

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
    if created
        && rollout_given(&req.manifest, &spec.rollout)
        && admin.registry.fleet_target().is_some()
    {
        admin.registry.add_revision(revision);
        let plan = crate::rollout::Plan::from(&spec.rollout);
        let rollouts = admin.rollouts.clone();
        let state = super::in_span(move || rollouts.start(generation, plan))
            .await
            .map_err(|e| Status::internal(format!("rollout task failed: {e}")))?
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        agents = state.cohort.len();
        admin.flush().await?;
        tracing::info!(generation, sha256 = %sha256, rollout = state.id, "revision created; rollout started");
    } else if created {
        admin.registry.add_revision(revision);
        let rollouts = admin.rollouts.clone();
        super::in_span(move || rollouts.supersede(generation))
            .await
            .map_err(|e| Status::internal(format!("rollout task failed: {e}")))?;
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

/// Whether the manifest gives a rollout strategy: a `rollout:` key outside comments, or a
/// parsed strategy other than the default.
fn rollout_given(manifest: &str, rollout: &h264_config::fleet::Rollout) -> bool {
    *rollout != h264_config::fleet::Rollout::default()
        || manifest.lines().any(|l| {
            let code = l.split('#').next().unwrap_or_default();
            code.contains("rollout:")
        })
}
