//! The pipeline the agent starts with: its last-known-good revision laid over the local file
//! when it has a controller and a usable `last-known-good.json`, else the local file alone.
//! While `[controller] trusted_keys` are pinned, the stored revision must carry a valid
//! signature by one of them too (one stored before the keys were pinned does not).

use h264_config::fleet::{merge, FleetSpec};
use h264_config::validate::{validate_with, Checks};
use h264_config::{AgentConfig, Problem};

use super::assign::Revisions;
use super::lkg::{self, LkgError};
use crate::settings::Settings;

/// What the agent starts with.
#[derive(Debug)]
pub struct Startup {
    /// The pipeline jobs run under until the controller says otherwise.
    pub pipeline: Settings,
    /// The revision in force and the highest accepted, for the session's hello.
    pub revisions: Revisions,
    /// Problems with the stored revision, for the operator (logged here, alerted by the caller).
    pub problems: Vec<String>,
}

/// Chooses the start-up pipeline for the local config `local`. Never fails: a missing, damaged
/// or no longer valid last-known-good leaves the agent on its local file, reported.
pub fn startup(local: &AgentConfig) -> Startup {
    let state_dir = &local.agent.state_dir;
    let mut out = Startup {
        pipeline: Settings::new(local.clone(), 0),
        revisions: Revisions::default(),
        problems: Vec::new(),
    };
    if local.controller.endpoint.is_none() {
        if lkg::path(state_dir).exists() {
            tracing::info!(
                file = %lkg::path(state_dir).display(),
                "no [controller] endpoint: the stored fleet revision is not used; the agent runs its local file"
            );
        }
        return out;
    }
    let record = match lkg::load(state_dir) {
        Ok(Some(record)) => record,
        Ok(None) => return out,
        Err(e @ LkgError::Damaged { .. }) => {
            let aside = lkg::set_aside(state_dir)
                .map(|p| format!("; moved aside to {}", p.display()))
                .unwrap_or_default();
            let problem = format!(
                "{e}{aside}; the agent runs its local file until the controller sends a revision"
            );
            tracing::error!("{problem}");
            out.problems.push(problem);
            return out;
        }
        Err(e) => {
            let problem = format!("{e}; the agent runs its local file");
            tracing::error!("{problem}");
            out.problems.push(problem);
            return out;
        }
    };
    out.revisions.highest_accepted = record.highest_accepted.max(record.generation);
    let signed = super::signature::check(
        &local.controller.trusted_keys,
        record.generation,
        &record.sha256,
        record.signature.as_deref().unwrap_or_default(),
        record.signer_key.as_deref().unwrap_or_default(),
    );
    if let Err(why) = signed {
        let problem = format!(
            "the last-known-good fleet revision {} is not run: {why}; the agent runs its local \
             file until the controller sends a signed revision",
            record.generation
        );
        tracing::error!("{problem}");
        out.problems.push(problem);
        return out;
    }
    let merged = FleetSpec::from_canonical_json(&record.canonical)
        .map_err(|e| e.to_string())
        .map(|spec| merge(&spec, local))
        .and_then(|merged| {
            let errors: Vec<String> = validate_with(&merged, None, Checks::Portable)
                .into_iter()
                .filter(Problem::is_error)
                .map(|p| p.to_string())
                .collect();
            if errors.is_empty() {
                Ok(merged)
            } else {
                Err(errors.join("; "))
            }
        });
    match merged {
        Ok(merged) => {
            tracing::info!(
                generation = record.generation, sha256 = %record.sha256,
                signed_by = record.signer_key.as_deref().unwrap_or("unchecked"),
                "running the last-known-good fleet revision until the controller answers"
            );
            out.pipeline = Settings::new(merged, record.generation);
            out.revisions.running = Some((record.generation, record.sha256));
        }
        Err(why) => {
            let problem = format!(
                "the last-known-good fleet revision {} no longer fits the local file ({why}); the agent runs its local file",
                record.generation
            );
            tracing::error!("{problem}");
            out.problems.push(problem);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use h264_config::sha256_hex;
    use lkg::Record;

    fn local(dir: &std::path::Path) -> AgentConfig {
        let mut c = AgentConfig::embedded_default();
        c.agent.state_dir = dir.to_path_buf();
        c.controller.endpoint = Some("http://127.0.0.1:7443".into());
        c
    }

    fn store(dir: &std::path::Path, generation: u64, spec: &str) {
        let record = Record::new(generation, &sha256_hex(spec.as_bytes()), false, 7, spec);
        lkg::store(dir, &record).unwrap();
    }

    #[test]
    fn the_stored_revision_is_laid_over_the_local_file() {
        let dir = tempfile::tempdir().unwrap();
        store(
            dir.path(),
            4,
            r#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"crf":30}}}"#,
        );
        let s = startup(&local(dir.path()));
        assert_eq!(s.pipeline.generation, 4);
        assert_eq!(s.pipeline.config.transcode.crf, 30);
        assert_eq!(s.revisions.highest_accepted, 7);
        assert_eq!(s.revisions.running.unwrap().0, 4);
        assert!(s.problems.is_empty());

        let mut alone = local(dir.path());
        alone.controller.endpoint = None;
        let s = startup(&alone);
        assert_eq!(
            (s.pipeline.generation, s.pipeline.config.transcode.crf),
            (0, 21)
        );
    }

    #[test]
    fn with_pinned_keys_only_a_signed_revision_is_run() {
        let dir = tempfile::tempdir().unwrap();
        let spec = r#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"crf":30}}}"#;
        store(dir.path(), 4, spec);
        let key = h264_trust::SecretKey::generate();
        let mut pinned = local(dir.path());
        pinned.controller.trusted_keys = vec![key.public().to_string()];
        let s = startup(&pinned);
        assert_eq!(s.pipeline.generation, 0, "unsigned: the local file");
        assert!(s.problems[0].contains("unsigned"), "{}", s.problems[0]);
        assert_eq!(s.revisions.highest_accepted, 7, "still refuses older ones");
        assert!(lkg::path(dir.path()).exists(), "kept: it is not damaged");

        let sha = sha256_hex(spec.as_bytes());
        let signed = Record::new(4, &sha, false, 7, spec)
            .signed(&key.public().to_string(), &key.sign(4, &sha));
        lkg::store(dir.path(), &signed).unwrap();
        let s = startup(&pinned);
        assert_eq!(
            (s.pipeline.generation, s.pipeline.config.transcode.crf),
            (4, 30)
        );
        assert!(s.problems.is_empty(), "{:?}", s.problems);

        let forged = Record::new(5, &sha, false, 7, spec)
            .signed(&key.public().to_string(), &key.sign(4, &sha));
        lkg::store(dir.path(), &forged).unwrap();
        let s = startup(&pinned);
        assert_eq!(s.pipeline.generation, 0);
        assert!(s.problems[0].contains("invalid"), "{}", s.problems[0]);
    }

    #[test]
    fn a_damaged_or_unfit_revision_leaves_the_local_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(lkg::path(dir.path()), "{not json").unwrap();
        let s = startup(&local(dir.path()));
        assert_eq!(s.pipeline.generation, 0);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].contains("damaged"), "{}", s.problems[0]);
        assert!(!lkg::path(dir.path()).exists(), "moved aside");
        assert!(
            startup(&local(dir.path())).problems.is_empty(),
            "reported once"
        );

        store(
            dir.path(),
            2,
            r#"{"apiVersion":"h264create.dev/v1","spec":{"transcode":{"crf":99}}}"#,
        );
        let s = startup(&local(dir.path()));
        assert_eq!(s.pipeline.generation, 0);
        assert_eq!(s.revisions.highest_accepted, 7, "still refuses older ones");
        assert!(
            s.problems[0].contains("no longer fits"),
            "{}",
            s.problems[0]
        );
    }
}
