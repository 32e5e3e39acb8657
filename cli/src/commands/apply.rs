//! `fleetctl apply -f fleet.yaml [--dry-run]`: checks the manifest here first (every problem,
//! with its line; exit 2), then sends it to the controller, which makes a new revision only
//! when the spec's canonical SHA256 differs from the latest revision's.
//!
//! `--sign-key FILE` signs the revision: a dry run tells the generation and SHA256 the spec
//! gets, the key signs that statement here (the key never leaves this machine), and the apply
//! carries the signature; if another apply took that generation first, it starts over (three
//! tries). Agents that pin the key's public half (`[controller] trusted_keys`) apply only
//! revisions signed by it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Args;
use h264_config::fleet::parse_fleet_manifest;
use h264_proto::v1::ApplyRequest;
use serde::Serialize;

use super::client::{self, Failure, EXIT_INVALID};
use super::output::{emit, OutputArg};

/// `apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The fleet manifest (YAML, `kind: FleetConfig`); `-` reads standard input.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Validate only (here and on the controller); create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Sign the revision with this key (`fleetctl keys generate`).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Debug, Serialize)]
struct ApplyView {
    generation: u64,
    sha256: String,
    created: bool,
    changed: bool,
    dry_run: bool,
    agents: u32,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    signed_by: String,
}

/// Tries of a signed apply that lost its generation to another apply.
const SIGNED_TRIES: usize = 3;

fn read(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let result = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    result
        .map_err(|e| Failure::new(EXIT_INVALID, format!("cannot read {}: {e}", path.display())))?;
    Ok(text)
}

/// Runs `apply`.
pub fn run(controller: &client::Connect, args: ApplyArgs) -> u8 {
    client::run("apply", apply(controller, args))
}

async fn apply(controller: &client::Connect, args: ApplyArgs) -> Result<(), Failure> {
    let text = read(&args.file)?;
    let origin = (args.file != Path::new("-")).then_some(args.file.as_path());
    if let Err(e) = parse_fleet_manifest(&text, origin) {
        let problems: Vec<String> = match &e {
            h264_config::ConfigError::Invalid { problems } => problems
                .iter()
                .map(|p| {
                    if p.is_error() {
                        format!("error: {p}")
                    } else {
                        p.to_string()
                    }
                })
                .collect(),
            other => vec![other.to_string()],
        };
        return Err(Failure::new(
            EXIT_INVALID,
            format!(
                "{}\nthe manifest is invalid: nothing was applied",
                problems.join("\n")
            ),
        ));
    }
    client::attribute("dry_run", args.dry_run);
    if let Some(origin) = origin {
        client::attribute("manifest", origin.display().to_string());
    }
    let key = match &args.sign_key {
        Some(path) => Some(
            h264_trust::SecretKey::read(path)
                .map_err(|e| Failure::new(EXIT_INVALID, e.to_string()))?,
        ),
        None => None,
    };
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let request = ApplyRequest {
        manifest: text,
        dry_run: args.dry_run,
        origin: origin.map(|p| p.display().to_string()).unwrap_or_default(),
        ..ApplyRequest::default()
    };
    let mut signed_by = String::new();
    let reply = match key.filter(|_| !args.dry_run) {
        None => client::call(&what, admin.apply(request)).await?,
        Some(key) => {
            signed_by = key.public().to_string();
            let mut tries = 0;
            loop {
                tries += 1;
                let dry = ApplyRequest {
                    dry_run: true,
                    ..request.clone()
                };
                let plan = client::call(&what, admin.apply(dry)).await?;
                let signed = ApplyRequest {
                    expected_generation: plan.would_be_generation,
                    signature: key.sign(plan.would_be_generation, &plan.sha256),
                    signer_key: signed_by.clone(),
                    ..request.clone()
                };
                match tokio::time::timeout(client::CALL_TIMEOUT, admin.apply(signed)).await {
                    Ok(Err(s)) if s.code() == tonic::Code::Aborted && tries < SIGNED_TRIES => {
                        continue
                    }
                    Ok(Ok(r)) => break r.into_inner(),
                    Ok(Err(s)) => return Err(Failure::from_status(&what, &s)),
                    Err(_) => {
                        return Err(Failure::new(
                            client::EXIT_UNREACHABLE,
                            format!("no answer from {what} within {:?}", client::CALL_TIMEOUT),
                        ))
                    }
                }
            }
        }
    };
    client::attribute("revision", reply.generation as i64);
    client::attribute("created", reply.created);
    client::attribute("agents", i64::from(reply.agents));
    for w in &reply.warnings {
        eprintln!("{w}");
    }
    let view = ApplyView {
        generation: reply.generation,
        sha256: reply.sha256,
        created: reply.created,
        changed: reply.changed,
        dry_run: args.dry_run,
        agents: reply.agents,
        warnings: reply.warnings,
        signed_by,
    };
    emit(args.out.output, &view, |v| {
        let short = &v.sha256[..v.sha256.len().min(12)];
        match (v.dry_run, v.created, v.changed) {
            (true, _, true) => format!("valid: applying it would create a new revision (sha256 {short})\n"),
            (true, _, false) => format!("valid: unchanged from revision {} (sha256 {short}); applying it would create nothing\n", v.generation),
            (false, true, _) => format!("revision {} created (sha256 {short}), assigned to {} agent{}{}\n", v.generation, v.agents, if v.agents == 1 { "" } else { "s" }, signed_note(&v.signed_by)),
            (false, false, _) => format!("unchanged: the spec is revision {}'s (sha256 {short}); no new revision{}\n", v.generation, signed_note(&v.signed_by)),
        }
    });
    Ok(())
}

fn signed_note(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("; signed by {key}")
    }
}
