//! One assignment from the controller, accepted or refused in stages: the SHA256 of the bytes
//! is checked before anything reads them (`hash`), then, when the agent pins
//! `[controller] trusted_keys`, the operator's signature over the generation and SHA256
//! (`signature`, see [`super::signature`]); the bytes are parsed as a fleet spec (`parse`),
//! the spec is laid over the local file and validated (`validation`), checked against what this
//! host can do (`capability`) and against the generations already accepted (`generation`),
//! saved as last-known-good (`apply`, when that fails) and swapped in. The first stage that
//! fails becomes the NACK; nothing has changed then, the agent runs what it ran.
//!
//! The revision in force is applied as a diff: only the keys that changed are logged, and the
//! new pipeline is swapped in for jobs that start from now on; running jobs finish under the
//! revision they started with ([`crate::settings::SettingsTx::swap`]).
//!
//! Each step is a span, a child of the session's `assignment.apply`: `assignment.verify` (the
//! SHA256 and the signature), `assignment.validate` (parse, validation, capability and generation checks),
//! `assignment.persist` (last-known-good) and `assignment.swap` (the keys changed); the step
//! that refuses the assignment carries the NACK's stage and message as its error.

use h264_config::fleet::{merge, FleetSpec};
use h264_config::validate::{validate_with, Checks};
use h264_config::{sha256_hex, AgentConfig, ConfigError, Problem};
use h264_proto::v1::Assignment;
use tracing::field::Empty;

use super::caps::Capabilities;
use super::ctx::SessionCtx;
use super::lkg::{self, Record};
use crate::settings::Settings;

/// Which revision the agent runs and the highest generation it accepted: the state the hello
/// reports and the generation check reads. Owned by the session task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revisions {
    /// The fleet revision in force (generation, SHA256 of its canonical bytes); `None` while the
    /// agent runs its local file.
    pub running: Option<(u64, String)>,
    /// The highest generation ever accepted.
    pub highest_accepted: u64,
}

/// The stage an assignment failed at, as the NACK names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The bytes do not match their SHA256.
    Hash,
    /// Trusted keys are pinned and the revision is not signed by one of them.
    Signature,
    /// The bytes are not a fleet spec (not UTF-8, not JSON).
    Parse,
    /// The spec, or the spec laid over the local file, breaks a rule.
    Validation,
    /// The host cannot do what the spec asks (an encoder, CCExtractor).
    Capability,
    /// Older than a generation already accepted, and not marked a rollback.
    Generation,
    /// It could not be saved or applied.
    Apply,
}

impl Stage {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Hash => "hash",
            Stage::Signature => "signature",
            Stage::Parse => "parse",
            Stage::Validation => "validation",
            Stage::Capability => "capability",
            Stage::Generation => "generation",
            Stage::Apply => "apply",
        }
    }
}

/// Why an assignment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The stage that failed.
    pub stage: Stage,
    /// The key path at fault, when there is one.
    pub field: String,
    /// Everything wrong, in one message.
    pub message: String,
}

impl Nack {
    fn new(stage: Stage, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            stage,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What accepting an assignment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// The agent already ran this revision; nothing was re-applied.
    AlreadyRunning,
    /// The revision is saved and in force; the keys whose values changed.
    Applied {
        /// Key paths like `transcode.crf`.
        changed: Vec<String>,
        /// The trusted key that signed it (`ed25519:BASE64`); `None` when no keys are pinned.
        signed_by: Option<String>,
    },
}

/// Accepts `a` (saving and applying it) or says why not; on a NACK nothing has changed.
pub fn accept(
    agent: &SessionCtx,
    revisions: &mut Revisions,
    caps: &Capabilities,
    a: &Assignment,
) -> Result<Accepted, Nack> {
    let span = tracing::info_span!(
        "assignment.verify",
        bytes = a.canonical.len(),
        sha256 = %a.sha256,
        otel.status_description = Empty,
    );
    let (sha256, signer) = step(&span, || {
        let sha256 = verify(a)?;
        let trusted = &agent.local.controller.trusted_keys;
        let signer =
            super::signature::check(trusted, a.generation, &sha256, &a.signature, &a.signer_key)
                .map_err(|e| Nack::new(Stage::Signature, "", e.0))?;
        Ok((sha256, signer.map(|k| k.to_string())))
    })?;
    if revisions.running.as_ref() == Some(&(a.generation, sha256.clone()))
        && agent.settings.current().generation == a.generation
    {
        return Ok(Accepted::AlreadyRunning);
    }
    let span = tracing::info_span!(
        "assignment.validate",
        generation = a.generation,
        rollback = a.rollback,
        otel.status_description = Empty,
    );
    let (text, merged) = step(&span, || validate(agent, revisions, caps, a))?;
    let highest = revisions.highest_accepted.max(a.generation);
    let span = tracing::info_span!(
        "assignment.persist",
        generation = a.generation,
        otel.status_description = Empty,
    );
    step(&span, || {
        let mut record = Record::new(a.generation, &sha256, a.rollback, highest, text);
        if let Some(signer) = &signer {
            record = record.signed(signer, &a.signature);
        }
        lkg::store(&agent.local.agent.state_dir, &record)
            .map_err(|e| Nack::new(Stage::Apply, "", e.to_string()))
    })?;
    let span = tracing::info_span!(
        "assignment.swap",
        generation = a.generation,
        changed = Empty,
    );
    let _swap = span.enter();
    let changed = diff(&agent.settings.current().config, &merged);
    span.record("changed", changed.join(",").as_str());
    agent.settings.swap(Settings::new(merged, a.generation));
    revisions.running = Some((a.generation, sha256));
    revisions.highest_accepted = highest;
    Ok(Accepted::Applied {
        changed,
        signed_by: signer,
    })
}

/// The checks of [`accept`] without applying anything: `a`'s hash, signature, parse,
/// validation and capabilities; the configuration it would make (for shadow work).
pub fn check(
    agent: &SessionCtx,
    revisions: &Revisions,
    caps: &Capabilities,
    a: &Assignment,
) -> Result<AgentConfig, Nack> {
    let sha256 = verify(a)?;
    let trusted = &agent.local.controller.trusted_keys;
    super::signature::check(trusted, a.generation, &sha256, &a.signature, &a.signer_key)
        .map_err(|e| Nack::new(Stage::Signature, "", e.0))?;
    validate(agent, revisions, caps, a).map(|(_, merged)| merged)
}

/// Runs one step of [`accept`] in `span`; a NACK marks the span failed.
fn step<T>(span: &tracing::Span, f: impl FnOnce() -> Result<T, Nack>) -> Result<T, Nack> {
    let result = span.in_scope(f);
    if let Err(nack) = &result {
        span.record(
            "otel.status_description",
            format!("{}: {}", nack.stage.as_str(), nack.message).as_str(),
        );
    }
    result
}

/// The `hash` stage: the bytes match the SHA256 assigned; returns it (lower-case hex).
fn verify(a: &Assignment) -> Result<String, Nack> {
    let actual = sha256_hex(&a.canonical);
    if !actual.eq_ignore_ascii_case(&a.sha256) {
        return Err(Nack::new(
            Stage::Hash,
            "",
            format!(
                "the {} bytes received hash to {actual}, not to the {} assigned; they were not parsed",
                a.canonical.len(),
                a.sha256
            ),
        ));
    }
    Ok(actual)
}

/// The `parse`, `validation`, `capability` and `generation` stages: the spec laid over the
/// local file, and its text.
fn validate<'a>(
    agent: &SessionCtx,
    revisions: &Revisions,
    caps: &Capabilities,
    a: &'a Assignment,
) -> Result<(&'a str, AgentConfig), Nack> {
    let text = parse(&a.canonical)?;
    let spec = FleetSpec::from_canonical_json(text).map_err(|e| invalid(&e))?;
    let merged = merge(&spec, &agent.local);
    let errors: Vec<Problem> = validate_with(&merged, None, Checks::Portable)
        .into_iter()
        .filter(Problem::is_error)
        .collect();
    if !errors.is_empty() {
        return Err(listed(Stage::Validation, &errors));
    }
    let missing = caps.missing(&merged);
    if let Some(first) = missing.first() {
        let all: Vec<String> = missing
            .iter()
            .map(|m| format!("{}: {}", m.field, m.message))
            .collect();
        return Err(Nack::new(Stage::Capability, &first.field, all.join("; ")));
    }
    generation(revisions, a)?;
    Ok((text, merged))
}

/// The bytes as the text of one JSON object.
fn parse(bytes: &[u8]) -> Result<&str, Nack> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Nack::new(
            Stage::Parse,
            "",
            format!("the revision is not UTF-8 text: {e}"),
        )
    })?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        Ok(_) => Err(Nack::new(
            Stage::Parse,
            "",
            "the revision is JSON but not an object",
        )),
        Err(e) => Err(Nack::new(
            Stage::Parse,
            "",
            format!("the revision is not JSON: {e}"),
        )),
    }
}

/// A spec the config crate refused: every problem, the first one's key as the field.
fn invalid(e: &ConfigError) -> Nack {
    let errors: Vec<Problem> = e
        .problems()
        .iter()
        .filter(|p| p.is_error())
        .cloned()
        .collect();
    if errors.is_empty() {
        return Nack::new(Stage::Validation, "", e.to_string());
    }
    listed(Stage::Validation, &errors)
}

/// One NACK for a list of problems.
fn listed(stage: Stage, problems: &[Problem]) -> Nack {
    let all: Vec<String> = problems
        .iter()
        .map(|p| {
            let mut line = if p.key.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.key, p.message)
            };
            if let Some(hint) = &p.hint {
                line.push_str(&format!(" ({hint})"));
            }
            line
        })
        .collect();
    let field = problems.first().map(|p| p.key.clone()).unwrap_or_default();
    Nack::new(stage, field, all.join("; "))
}

/// Refuses a generation below the highest accepted unless it is marked a rollback.
fn generation(revisions: &Revisions, a: &Assignment) -> Result<(), Nack> {
    if a.generation == 0 {
        return Err(Nack::new(
            Stage::Generation,
            "",
            "generation 0 is not a revision",
        ));
    }
    if a.generation < revisions.highest_accepted && !a.rollback {
        return Err(Nack::new(
            Stage::Generation,
            "",
            format!(
                "generation {} is older than generation {}, accepted before, and is not marked as a rollback",
                a.generation, revisions.highest_accepted
            ),
        ));
    }
    Ok(())
}

/// The key paths of the pipeline sections whose values differ between `old` and `new`.
pub fn diff(old: &AgentConfig, new: &AgentConfig) -> Vec<String> {
    let (Ok(old), Ok(new)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut changed = Vec::new();
    for section in ["readiness", "transcode", "captions", "logging"] {
        let (Some(a), Some(b)) = (
            old.get(section).and_then(|v| v.as_object()),
            new.get(section).and_then(|v| v.as_object()),
        ) else {
            continue;
        };
        for (key, value) in b {
            if a.get(key) != Some(value) {
                changed.push(format!("{section}.{key}"));
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_changed_keys() {
        let old = AgentConfig::default();
        let mut new = old.clone();
        new.transcode.crf = 30;
        new.captions.formats = vec!["srt".into()];
        assert_eq!(diff(&old, &new), ["transcode.crf", "captions.formats"]);
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn parse_wants_a_json_object() {
        assert!(parse(br#"{"apiVersion":"x"}"#).is_ok());
        for (bytes, want) in [
            (&b"\xff\xfe"[..], "not UTF-8"),
            (b"[1]", "not an object"),
            (b"{\"a\":", "not JSON"),
        ] {
            let nack = parse(bytes).unwrap_err();
            assert_eq!(nack.stage, Stage::Parse);
            assert!(nack.message.contains(want), "{}", nack.message);
        }
    }

    #[test]
    fn older_generations_need_the_rollback_mark() {
        let revisions = Revisions {
            running: Some((5, "x".into())),
            highest_accepted: 5,
        };
        let at = |generation, rollback| Assignment {
            generation,
            rollback,
            ..Assignment::default()
        };
        assert!(generation(&revisions, &at(6, false)).is_ok());
        assert!(generation(&revisions, &at(5, false)).is_ok());
        assert_eq!(
            generation(&revisions, &at(4, false)).unwrap_err().stage,
            Stage::Generation
        );
        assert!(generation(&revisions, &at(4, true)).is_ok());
        assert!(generation(&revisions, &at(0, true)).is_err());
    }
}
