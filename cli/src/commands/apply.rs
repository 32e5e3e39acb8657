//! `fleetctl apply -f fleet.yaml [--dry-run]`: checks the manifest here first (every problem,
//! with its line; exit 2), then sends it to the controller, which makes a new revision only
//! when the spec's canonical SHA256 differs from the latest revision's.

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
}

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
pub fn run(controller: &str, args: ApplyArgs) -> u8 {
    client::run("apply", apply(controller, args))
}

async fn apply(controller: &str, args: ApplyArgs) -> Result<(), Failure> {
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
    let mut admin = client::admin(controller).await?;
    let what = format!("the controller at {controller}");
    let reply = client::call(
        &what,
        admin.apply(ApplyRequest {
            manifest: text,
            dry_run: args.dry_run,
            origin: origin.map(|p| p.display().to_string()).unwrap_or_default(),
        }),
    )
    .await?;
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
    };
    emit(args.out.output, &view, |v| {
        let short = &v.sha256[..v.sha256.len().min(12)];
        match (v.dry_run, v.created, v.changed) {
            (true, _, true) => format!("valid: applying it would create a new revision (sha256 {short})\n"),
            (true, _, false) => format!("valid: unchanged from revision {} (sha256 {short}); applying it would create nothing\n", v.generation),
            (false, true, _) => format!("revision {} created (sha256 {short}), assigned to {} agent{}\n", v.generation, v.agents, if v.agents == 1 { "" } else { "s" }),
            (false, false, _) => format!("unchanged: the spec is revision {}'s (sha256 {short}); no new revision\n", v.generation),
        }
    });
    Ok(())
}
