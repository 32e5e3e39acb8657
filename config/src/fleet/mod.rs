//! Fleet manifests: the Kubernetes-style YAML the controller takes.
//!
//! ```yaml
//! apiVersion: h264create.dev/v1
//! kind: FleetConfig
//! metadata:
//!   name: studios
//! spec:
//!   transcode: {crf: 22, preset: fast}
//!   rollout:
//!     steps: [{canary: 1}, {pause: 30m}, {percent: 50}, {pause: {}}, {percent: 100}]
//!     analysis: {max_failure_rate: 0.05, min_jobs: 3, ack_deadline: 2m}
//! ```
//!
//! Read with `yaml_serde` behind guards (module `yaml`), strictly (unknown keys with a "did you
//! mean", every problem at once with its line), local-only keys rejected by name
//! ([`spec::LOCAL_ONLY`]), and validated by the same pipeline rules as an agent's file. Its
//! canonical bytes ([`FleetSpec::canonical_json`]) and SHA256 identify a revision; [`merge`]
//! lays a spec over an agent's local config.

mod lines;
pub mod rollout;
pub mod shadow;
pub mod spec;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::{Table, Value};

use crate::agent::AgentConfig;
use crate::canonical::sha256_hex;
use crate::fields::field_names;
use crate::keypath::{under_any, Seg};
use crate::limits::{check_size, read_text, ReadFailure};
use crate::load::ConfigError;
use crate::problem::Problem;
use crate::strict;
use crate::suggest::did_you_mean;
use crate::validate::pipeline;

pub use rollout::{Analysis, MaxUnavailable, Rollout, Step};
pub use shadow::{CaptionsGate, LayoutGate, ShadowGates, ShadowStep, ShadowWork};
pub use spec::{
    merge, CaptionsSpec, FleetSpec, LoggingSpec, ReadinessSpec, TranscodeSpec, LOCAL_ONLY,
};
pub use yaml::MAX_NODES;

/// The only `apiVersion` understood.
pub const API_VERSION: &str = "h264create.dev/v1";
/// The `kind` of a fleet manifest.
pub const KIND: &str = "FleetConfig";

const TOP_KEYS: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];
const METADATA_KEYS: [&str; 2] = ["name", "labels"];
/// The keys of `spec`.
const SPEC_KEYS: &[&str] = &["readiness", "transcode", "captions", "logging", "rollout"];

/// `metadata` of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// The manifest's name: lower-case letters, digits and `-`, at most 63 characters.
    pub name: String,
    /// Free-form labels, for people and tools.
    pub labels: BTreeMap<String, String>,
}

/// A parsed and validated fleet manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetManifest {
    /// `apiVersion` ([`API_VERSION`]).
    pub api_version: String,
    /// `metadata`.
    pub metadata: Metadata,
    /// `spec`.
    pub spec: FleetSpec,
}

/// A manifest that loaded, with its warnings.
#[derive(Debug, Clone)]
pub struct LoadedManifest {
    /// The manifest.
    pub manifest: FleetManifest,
    /// Problems that do not make it unusable.
    pub warnings: Vec<Problem>,
    /// The file it came from.
    pub path: Option<PathBuf>,
}

/// The canonical document a spec is hashed as: the API version and the spec.
#[derive(Serialize)]
struct Canonical<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    spec: &'a FleetSpec,
}

impl FleetSpec {
    /// Compact JSON of `{"apiVersion": …, "spec": …}`: keys in a fixed order, only the keys the
    /// spec sets, durations in humantime form, rollout defaults filled in. `metadata` is left
    /// out: renaming a manifest does not make a new revision.
    pub fn canonical_json(&self) -> String {
        let doc = Canonical {
            api_version: API_VERSION,
            spec: self,
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// [`sha256_hex`] of [`FleetSpec::canonical_json`]: the identity of a revision.
    pub fn canonical_sha256(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }

    /// Reads a spec back from its canonical bytes (as an agent does with an assignment), with
    /// every check a manifest gets.
    pub fn from_canonical_json(text: &str) -> Result<Self, ConfigError> {
        parse(text, None, false).map(|loaded| loaded.manifest.spec)
    }
}

/// Reads, parses and validates the fleet manifest at `path`.
pub fn load_fleet_manifest(path: &Path) -> Result<LoadedManifest, ConfigError> {
    let text = match read_text(path) {
        Ok(text) => text,
        Err(ReadFailure::Io(source)) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(ReadFailure::Refused(problem)) => {
            return Err(ConfigError::Invalid {
                problems: vec![problem.in_file(Some(path))],
            })
        }
    };
    parse_fleet_manifest(&text, Some(path))
}

/// Parses and validates a fleet manifest; `origin` names the file in problems.
pub fn parse_fleet_manifest(
    text: &str,
    origin: Option<&Path>,
) -> Result<LoadedManifest, ConfigError> {
    parse(text, origin, true)
}

/// Whether `text` looks like a fleet manifest (`kind: FleetConfig` or an `apiVersion:` line).
pub fn looks_like_manifest(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("apiVersion:") || l.starts_with("kind:")
    })
}

fn parse(text: &str, origin: Option<&Path>, manifest: bool) -> Result<LoadedManifest, ConfigError> {
    let fail = |problems: Vec<Problem>| ConfigError::Invalid {
        problems: problems.into_iter().map(|p| p.in_file(origin)).collect(),
    };
    check_size(text.len()).map_err(|p| fail(vec![p]))?;
    let (table, mut problems) = yaml::read(text).map_err(|p| fail(vec![p]))?;
    let mut api_version = String::new();
    let mut metadata = None;
    let mut spec = None;
    for (key, value) in &table {
        match key.as_str() {
            "apiVersion" => api_version = header(value, key, API_VERSION, &mut problems),
            "kind" => _ = header(value, key, KIND, &mut problems),
            "metadata" => metadata = Some(read_metadata(value, &mut problems)),
            "spec" => spec = Some(read_spec(value, &mut problems)),
            other => {
                let hint = did_you_mean(other, TOP_KEYS)
                    .unwrap_or_else(|| format!("known keys here: {}", TOP_KEYS.join(", ")));
                problems
                    .push(Problem::error(other, format!("unknown key `{other}`")).with_hint(hint));
            }
        }
    }
    let required: &[&str] = if manifest {
        &["apiVersion", "kind", "metadata", "spec"]
    } else {
        &["apiVersion", "spec"]
    };
    for key in required {
        if !table.contains_key(*key) {
            let hint = format!("a manifest starts with apiVersion: {API_VERSION}, kind: {KIND}, metadata: {{name: …}} and spec");
            problems.push(Problem::error(*key, "is missing").with_hint(hint));
        }
    }
    problems.sort_by(|a, b| (a.severity, &a.key).cmp(&(b.severity, &b.key)));
    let problems = lines::key_lines(text).locate(problems);
    if problems.iter().any(Problem::is_error) {
        return Err(fail(problems));
    }
    Ok(LoadedManifest {
        manifest: FleetManifest {
            api_version,
            metadata: metadata.unwrap_or_default(),
            spec: spec.unwrap_or_default(),
        },
        warnings: problems.into_iter().map(|p| p.in_file(origin)).collect(),
        path: origin.map(Path::to_path_buf),
    })
}

/// `apiVersion` or `kind`: must be `want`.
fn header(value: &Value, key: &str, want: &str, out: &mut Vec<Problem>) -> String {
    let got = value.as_str().unwrap_or_default();
    if got != want {
        let message = format!("is `{value}`; this version of h264create reads `{want}`");
        let hint = if key == "apiVersion" && got.starts_with("h264create.dev/") {
            "a manifest for a newer h264create: upgrade fleetctl and the controller".to_owned()
        } else {
            format!("write {key}: {want}")
        };
        out.push(Problem::error(key, message).with_hint(hint));
    }
    got.to_owned()
}

fn read_metadata(value: &Value, out: &mut Vec<Problem>) -> Metadata {
    let mut metadata = Metadata::default();
    let Some(table) = value.as_table() else {
        out.push(Problem::error("metadata", "is not a map").with_hint("metadata: {name: studios}"));
        return metadata;
    };
    for (key, value) in table {
        let at = format!("metadata.{key}");
        match (key.as_str(), value) {
            ("name", Value::String(name)) => metadata.name = name.clone(),
            ("labels", Value::Table(labels)) => {
                for (k, v) in labels {
                    match v {
                        Value::String(s) => _ = metadata.labels.insert(k.clone(), s.clone()),
                        other => out.push(
                            Problem::error(format!("{at}.{k}"), format!("{other} is not text"))
                                .with_hint("quote it"),
                        ),
                    }
                }
            }
            ("name" | "labels", other) => {
                let want = if key == "name" {
                    "text"
                } else {
                    "a map of texts"
                };
                out.push(Problem::error(at, format!("{other} is not {want}")));
            }
            (other, _) => {
                let hint = did_you_mean(other, METADATA_KEYS)
                    .unwrap_or_else(|| format!("known keys here: {}", METADATA_KEYS.join(", ")));
                out.push(Problem::error(at, format!("unknown key `{other}`")).with_hint(hint));
            }
        }
    }
    let name = &metadata.name;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid && table.get("name").is_none_or(Value::is_str) {
        let message = if name.is_empty() {
            "is missing".to_owned()
        } else {
            format!("`{name}` is not a valid name")
        };
        let hint = "lower-case letters, digits and `-`, at most 63 characters, like \"studios\"";
        out.push(Problem::error("metadata.name", message).with_hint(hint));
    }
    metadata
}

/// `spec`: local-only keys rejected by name, the rollout read apart, the pipeline sections
/// deserialized strictly and checked by the agent's own rules.
fn read_spec(value: &Value, out: &mut Vec<Problem>) -> FleetSpec {
    let Some(table) = value.as_table() else {
        out.push(Problem::error("spec", "is not a map").with_hint("spec: {transcode: {crf: 22}}"));
        return FleetSpec::default();
    };
    let mut pipeline_table = Table::new();
    let mut rollout = rollout::Rollout::default();
    for (key, value) in table {
        if key == "rollout" {
            rollout = rollout::parse(value, "spec.rollout", out);
            continue;
        }
        if let Some((_, why)) = LOCAL_ONLY.iter().find(|(k, _)| k == key) {
            local_only(key, value, why, out);
            continue;
        }
        let mut value = value.clone();
        if let Value::Table(section) = &mut value {
            section.retain(|k, v| {
                let full = format!("{key}.{k}");
                match LOCAL_ONLY.iter().find(|(l, _)| *l == full) {
                    Some((_, why)) => {
                        local_only(&full, v, why, out);
                        false
                    }
                    None => true,
                }
            });
        }
        pipeline_table.insert(key.clone(), value);
    }
    let outcome = strict::deserialize::<spec::PipelineSpec>(pipeline_table, known_keys);
    let in_spec = |p: Problem| Problem {
        key: if p.key.is_empty() {
            "spec".into()
        } else {
            format!("spec.{}", p.key)
        },
        ..p
    };
    out.extend(outcome.problems.into_iter().map(in_spec));
    let pipeline = outcome.value.unwrap_or_default();
    let spec = FleetSpec {
        readiness: pipeline.readiness,
        transcode: pipeline.transcode,
        captions: pipeline.captions,
        logging: pipeline.logging,
        rollout,
    };
    // The same rules as an agent's file, on the spec laid over the defaults.
    let mut problems = Vec::new();
    let mut merged = merge(&spec, &AgentConfig::default());
    // Free-form FFmpeg arguments are never taken from a fleet (security review C2).
    if let Some(args) = &spec.transcode.extra_args {
        crate::encoder::legacy::check_fleet(args, &mut problems);
        merged.transcode.extra_args.clear();
    }
    pipeline::check(&merged, &mut problems);
    out.extend(
        problems
            .into_iter()
            .filter(|p| !under_any(&p.key, &outcome.failed))
            .map(in_spec),
    );
    spec
}

/// A local-only key named in a manifest: one error per key it holds (`spec.agent.state_dir`),
/// or for the key itself.
fn local_only(key: &str, value: &Value, why: &str, out: &mut Vec<Problem>) {
    let hint = format!("{why} stay in each agent's own agent.toml; remove it from the manifest");
    match value {
        Value::Table(t) if !t.is_empty() => {
            for k in t.keys() {
                let message = format!(
                    "spec.{key}.{k} is local to each agent: a fleet manifest cannot set it"
                );
                out.push(
                    Problem::error(format!("spec.{key}.{k}"), message).with_hint(hint.clone()),
                );
            }
        }
        _ => {
            let message =
                format!("spec.{key} is local to each agent: a fleet manifest cannot set it");
            out.push(Problem::error(format!("spec.{key}"), message).with_hint(hint));
        }
    }
}

/// The keys valid in the table at `parent` of the pipeline part of a spec.
fn known_keys(parent: &[Seg]) -> Option<&'static [&'static str]> {
    Some(match parent {
        [] => SPEC_KEYS,
        [Seg::Key(s)] => match s.as_str() {
            "readiness" => field_names::<ReadinessSpec>(),
            "transcode" => field_names::<TranscodeSpec>(),
            "captions" => field_names::<CaptionsSpec>(),
            "logging" => field_names::<LoggingSpec>(),
            _ => return None,
        },
        _ => return None,
    })
}
