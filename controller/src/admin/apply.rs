//! `Apply`: a manifest becomes a revision when its spec's canonical SHA256 differs from the
//! latest revision's. With a `spec.rollout` (and a stable revision to fall back to) a new
//! revision starts a rollout ([`crate::rollout`]); without one it is assigned to every agent at
//! once, as before, superseding a rollout in progress.
//!
//! A signed apply names the generation its signature covers; it is refused (`Aborted`) when
//! the spec would get another one (another apply came first), and its signature is checked
//! here too, so a bad signature is refused at once rather than NACKed by every agent. The
//! controller stores the signature with the revision and sends it with every assignment; it
//! cannot make one. After a new revision, the oldest beyond `revisions_kept` are pruned.

use std::path::Path;

use h264_config::fleet::parse_fleet_manifest;
use h264_config::ConfigError;
use h264_proto::v1::{ApplyReply, ApplyRequest};
use tonic::Status;

use super::Admin;
use crate::model::{now_ms, Signed};
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
        return Ok(ApplyReply {
            generation: generation_of(admin, &sha256).1,
            sha256: sha256.clone(),
            created: false,
            warnings,
            changed: generation_of(admin, &sha256).1 == 0,
            agents: 0,
            would_be_generation: generation_of(admin, &sha256).0,
        });
    }

    let _write = admin.writes.lock().await;
    let signed = check_signature(admin, &req, &sha256)?;
    let (sha, now) = (sha256.clone(), now_ms());
    let (revision, created) = admin
        .blocking(move |s| s.apply_revision(&sha, &name, canonical.as_bytes(), now))
        .await?;
    let generation = revision.generation;
    let mut revision = revision;
    if let Some(signed) = signed {
        let (key, sig) = (signed.key.clone(), signed.signature.clone());
        admin
            .blocking(move |s| s.set_revision_signature(generation, &key, &sig))
            .await?;
        if created {
            revision.signed = Some(signed);
        } else {
            admin.registry.sign_revision(generation, signed);
            tracing::info!(
                generation,
                "apply: the spec is unchanged; its signature was recorded"
            );
        }
    }
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
    if created {
        prune(admin).await;
    }
    Ok(ApplyReply {
        generation,
        sha256,
        created,
        warnings,
        changed: created,
        agents: agents as u32,
        would_be_generation: generation,
    })
}

/// The generation the spec `sha256` would get, and the one it has (0: none yet).
fn generation_of(admin: &Admin, sha256: &str) -> (u64, u64) {
    match admin.registry.latest_revision() {
        Some(l) if l.sha256 == sha256 => (l.generation, l.generation),
        Some(l) => (l.generation + 1, 0),
        None => (1, 0),
    }
}

/// The apply's signature, checked against the generation the spec gets; none when unsigned.
fn check_signature(
    admin: &Admin,
    req: &ApplyRequest,
    sha256: &str,
) -> Result<Option<Signed>, Status> {
    if req.signature.is_empty() && req.signer_key.is_empty() {
        return Ok(None);
    }
    let key = h264_trust::PublicKey::parse(&req.signer_key)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let generation = generation_of(admin, sha256).0;
    if req.expected_generation != generation {
        return Err(Status::aborted(format!(
            "the signature names generation {}, but this spec gets generation {generation} \
             (another apply came first): run the command again",
            req.expected_generation
        )));
    }
    key.verify(generation, sha256, &req.signature)
        .map_err(|e| {
            Status::invalid_argument(format!("the revision's signature is refused: {e}"))
        })?;
    Ok(Some(Signed {
        key: key.to_string(),
        signature: req.signature.clone(),
    }))
}

/// Deletes the oldest revisions beyond `revisions_kept` (never the stable one of a rollout,
/// its candidate, the fleet-wide target, or one an agent is to run, runs or acknowledged).
/// A failure is logged: pruning is housekeeping and never fails an apply.
async fn prune(admin: &Admin) {
    let protect: Vec<u64> = admin
        .rollouts
        .current()
        .map(|r| vec![r.generation, r.stable_generation])
        .unwrap_or_default();
    let doomed = admin
        .registry
        .prunable_revisions(admin.revisions_kept, &protect);
    if doomed.is_empty() {
        return;
    }
    let list = doomed.clone();
    match admin.blocking(move |s| s.delete_revisions(&list)).await {
        Ok(()) => {
            admin.registry.forget_revisions(&doomed);
            tracing::info!(pruned = ?doomed, kept = admin.revisions_kept, "old revisions pruned");
        }
        Err(e) => tracing::warn!(error = %e.message(), "cannot prune old revisions"),
    }
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
