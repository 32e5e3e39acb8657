//! Rules for the facts local to one agent: `[agent]` and the `[[watch]]` roots, each root on its
//! own and the roots against each other (overlapping sources, shared outputs, outputs or parking
//! folders inside a watched folder). These never depend on the machine beyond comparing paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{at_least, normalize_extension, resolve};
use crate::agent::{
    AgentConfig, AgentSection, OnFailure, OnSuccess, Program, WatchMode, WatchRoot,
};
use crate::problem::Problem;
use crate::units::HumanDuration;

const MINIMAL_WATCH: &str = r#"add a root like: [[watch]] source = "/srv/recordings/incoming" output = "/srv/recordings/h264""#;
const REPICKED: &str =
    "converted files would be picked up again; choose a folder outside every source";

pub(super) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    agent(&config.agent, out);
    watch(&config.watch, out);
    state_apart(config, out);
    for (i, root) in config.watch.iter().enumerate() {
        if root.mode == WatchMode::Poll {
            share_readiness(config, i, "mode = \"poll\"", out);
        }
    }
}

/// The shortest `readiness.stable_for` that is not warned about for a root on a network share
/// (a polled root, or an `auto` root found on one by the host checks).
pub(crate) const SHARE_STABLE_FOR: Duration = Duration::from_secs(60);

/// A warning when root `i`, polled on a share (`how` says why we think so), has a
/// `readiness.stable_for` shorter than [`SHARE_STABLE_FOR`]: across machines the agent cannot
/// see whether the recorder still has the file open, so only the quiet time tells that a
/// recording is finished (docs/windows-recorders.md).
pub(crate) fn share_readiness(config: &AgentConfig, i: usize, how: &str, out: &mut Vec<Problem>) {
    let stable_for = config.readiness.stable_for;
    if stable_for.get() >= SHARE_STABLE_FOR {
        return;
    }
    let message = format!(
        "{stable_for} is short for watch[{i}] ({how}, a recorder's share): the agent cannot see \
         through a share whether the recorder still has a file open, so a recorder that pauses \
         writing longer than {stable_for} has its recording converted half-written"
    );
    let hint = format!(
        "set stable_for to more than the recorder's longest pause in writing, {} or more; see \
         docs/windows-recorders.md",
        HumanDuration(SHARE_STABLE_FOR)
    );
    out.push(Problem::warning("readiness.stable_for", message).with_hint(hint));
}

fn agent(a: &AgentSection, out: &mut Vec<Problem>) {
    match a.control.parse::<std::net::SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() => {
            let message = format!(
                "{addr} is not a loopback address: anyone on the network could pause this agent"
            );
            out.push(Problem::warning("agent.control", message).with_hint("use 127.0.0.1:PORT"));
        }
        Ok(_) => {}
        Err(_) => {
            let message = format!("`{}` is not an address with a port", a.control);
            out.push(Problem::error("agent.control", message).with_hint("e.g. \"127.0.0.1:7442\""));
        }
    }
    if let Some(id) = &a.id {
        let bad = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)));
        let problem = if id.is_empty() {
            Some("is empty".to_owned())
        } else if id.chars().count() > 64 {
            Some(format!(
                "is {} characters long; at most 64 are allowed",
                id.chars().count()
            ))
        } else {
            bad.map(|c| format!("`{id}` contains {c:?}"))
        };
        if let Some(message) = problem {
            out.push(Problem::error("agent.id", message).with_hint(
                "use letters, digits, `.`, `_` and `-` (like \"studio-a\"), or remove it to use the host name",
            ));
        }
    }
    if a.state_dir.as_os_str().is_empty() {
        out.push(Problem::error("agent.state_dir", "is empty"));
    }
    if !(1..=64).contains(&a.workers) {
        out.push(
            Problem::error(
                "agent.workers",
                format!("{} is out of range 1-64", a.workers),
            )
            .with_hint("how many files are converted at once; each FFmpeg uses several cores"),
        );
    }
    at_least(
        out,
        "agent.shutdown_grace",
        a.shutdown_grace,
        Duration::from_secs(1),
    );
    at_least(
        out,
        "agent.resync_interval",
        a.resync_interval,
        Duration::from_secs(1),
    );
}

/// The state folder may not be watched, and should not be among the outputs.
fn state_apart(config: &AgentConfig, out: &mut Vec<Problem>) {
    let state = &config.agent.state_dir;
    if state.as_os_str().is_empty() {
        return;
    }
    let state = resolve(state);
    for (i, root) in config.watch.iter().enumerate() {
        if !root.source.as_os_str().is_empty() && state.starts_with(resolve(&root.source)) {
            let message = format!("is inside watch[{i}].source");
            let hint =
                "keep the journal out of watched folders: choose a folder like /var/lib/h264create";
            out.push(Problem::error("agent.state_dir", message).with_hint(hint));
        } else if !root.output.as_os_str().is_empty() && state.starts_with(resolve(&root.output)) {
            let message =
                format!("is inside watch[{i}].output: the journal would sit among the MP4 files");
            let hint = "choose a folder like /var/lib/h264create";
            out.push(Problem::warning("agent.state_dir", message).with_hint(hint));
        }
    }
}

fn watch(roots: &[WatchRoot], out: &mut Vec<Problem>) {
    if roots.is_empty() {
        out.push(
            Problem::error("watch", "no [[watch]] root is configured").with_hint(MINIMAL_WATCH),
        );
    }
    let sources: Vec<_> = roots.iter().map(|r| resolve(&r.source)).collect();
    let outputs: Vec<_> = roots.iter().map(|r| resolve(&r.output)).collect();
    for (i, root) in roots.iter().enumerate() {
        let at = |key: &str| format!("watch[{i}].{key}");
        folders(roots, i, &sources, &outputs, out);
        extensions(&at("extensions"), &root.extensions, out);
        if root.poll_interval.get().is_zero() {
            out.push(Problem::error(at("poll_interval"), "must be more than 0s"));
        }
        program(&at("program"), root.program.as_ref(), out);
        let moves = root.on_success == OnSuccess::Move;
        parking(
            out,
            &at("done_dir"),
            root.done_dir.as_deref(),
            moves,
            "on_success = \"move\"",
        );
        let quarantines = root.on_failure == OnFailure::Quarantine;
        let (key, dir) = (at("quarantine_dir"), root.quarantine_dir.as_deref());
        parking(out, &key, dir, quarantines, "on_failure = \"quarantine\"");
        for (key, dir) in [
            ("done_dir", &root.done_dir),
            ("quarantine_dir", &root.quarantine_dir),
        ] {
            let Some(dir) = dir.as_deref().filter(|d| !d.as_os_str().is_empty()) else {
                continue;
            };
            parked_outside(out, &at(key), &resolve(dir), &outputs[i], roots, &sources);
        }
    }
}

/// `program`: a service name that is not blank, or a programme number of a PAT (1-65535).
fn program(key: &str, program: Option<&Program>, out: &mut Vec<Problem>) {
    const HINT: &str = "name the service as the multiplex does (program = \"BBC ONE HD\") or give \
                        its programme number (program = 4164); `ffprobe -show_programs FILE` \
                        lists both";
    match program {
        Some(Program::Name(name)) if name.trim().is_empty() => {
            out.push(Problem::error(key, "is an empty service name").with_hint(HINT));
        }
        Some(Program::Number(n)) if !(1..=65535).contains(n) => {
            out.push(Problem::error(key, format!("{n} is out of range 1-65535")).with_hint(HINT));
        }
        _ => {}
    }
}

/// `source` and `output` of root `i`: set, and apart from every source and other output.
fn folders(
    roots: &[WatchRoot],
    i: usize,
    sources: &[PathBuf],
    outputs: &[PathBuf],
    out: &mut Vec<Problem>,
) {
    let root = &roots[i];
    let (src_key, out_key) = (format!("watch[{i}].source"), format!("watch[{i}].output"));
    if root.source.as_os_str().is_empty() {
        out.push(Problem::error(&src_key, "is not set").with_hint(MINIMAL_WATCH));
    }
    if root.output.as_os_str().is_empty() {
        out.push(Problem::error(&out_key, "is not set").with_hint(MINIMAL_WATCH));
    }
    if root.source.as_os_str().is_empty() || root.output.as_os_str().is_empty() {
        return;
    }
    for (j, other) in sources.iter().enumerate() {
        if roots[j].source.as_os_str().is_empty() || roots[j].output.as_os_str().is_empty() {
            continue;
        }
        let name = if j == i {
            "source".to_owned()
        } else {
            format!("watch[{j}].source")
        };
        if *other == outputs[i] {
            let message = format!("is the same folder as {name}");
            out.push(Problem::error(&out_key, message).with_hint(REPICKED));
        } else if outputs[i].starts_with(other) {
            out.push(Problem::error(&out_key, format!("is inside {name}")).with_hint(REPICKED));
        }
        if j < i && (sources[i].starts_with(other) || other.starts_with(&sources[i])) {
            let message = format!("overlaps watch[{j}].source (`{}`)", other.display());
            let hint = "a folder may belong to one root only, or its files are converted twice";
            out.push(Problem::error(&src_key, message).with_hint(hint));
        }
        if j < i {
            shared_output(roots, (j, &outputs[j]), (i, &outputs[i]), out);
        }
    }
    if sources[i] != outputs[i] && sources[i].starts_with(&outputs[i]) {
        let hint = "keep source and output apart";
        out.push(Problem::error(&src_key, "is inside output").with_hint(hint));
    }
}

/// Two roots writing into one folder (or one into a sub-folder the other mirrors into) can
/// produce the same output name: `news/show.ts` and `sport/show.ts` both become `show.mp4`.
fn shared_output(
    roots: &[WatchRoot],
    (j, first): (usize, &Path),
    (i, second): (usize, &Path),
    out: &mut Vec<Problem>,
) {
    let key = format!("watch[{i}].output");
    let hint = "give each root its own output folder; the agent refuses to overwrite, so the second file with a name fails";
    let clash = |a: usize, b: usize| {
        let both: Vec<&String> = roots[a]
            .extensions
            .iter()
            .chain(&roots[b].extensions)
            .collect();
        let example = both.first().map_or("ts", |e| e.as_str());
        format!("a `show.{example}` in watch[{a}].source and one in watch[{b}].source would both become `show.mp4`")
    };
    if first == second {
        let message = format!("is the same folder as watch[{j}].output: {}", clash(j, i));
        out.push(Problem::warning(&key, message).with_hint(hint));
    } else if second.starts_with(first) && roots[j].recursive {
        let message = format!(
            "is inside watch[{j}].output, which mirrors watch[{j}].source's sub-folders: names may clash"
        );
        out.push(Problem::warning(&key, message).with_hint(hint));
    } else if first.starts_with(second) && roots[i].recursive {
        let message = format!(
            "contains watch[{j}].output and mirrors its source's sub-folders: names may clash"
        );
        out.push(Problem::warning(&key, message).with_hint(hint));
    }
}

fn extensions(key: &str, exts: &[String], out: &mut Vec<Problem>) {
    if exts.is_empty() {
        let hint = r#"list what the recorder writes, like extensions = ["ts", "wtv", "mp4"]"#;
        out.push(Problem::error(key, "is empty: no file would be converted").with_hint(hint));
    }
    let mut seen = Vec::new();
    for (n, ext) in exts.iter().enumerate() {
        let key = format!("{key}[{n}]");
        let norm = normalize_extension(ext);
        if norm.is_empty() || norm.contains(|c: char| "/\\*?".contains(c) || c.is_whitespace()) {
            let hint = r#"write the extension alone, like "ts""#;
            out.push(
                Problem::error(key, format!("`{ext}` is not a file extension")).with_hint(hint),
            );
        } else if seen.contains(&norm) {
            out.push(Problem::warning(key, format!("`{norm}` is listed twice")));
        } else if ext.trim().starts_with('.') {
            let message = format!("`{ext}`: the leading dot is not needed; read as `{norm}`");
            out.push(Problem::warning(key, message));
        }
        seen.push(norm);
    }
}

/// `done_dir` / `quarantine_dir`: set when `used`, noted when set but unused.
fn parking(out: &mut Vec<Problem>, key: &str, dir: Option<&Path>, used: bool, setting: &str) {
    match (dir, used) {
        (None, true) => {
            let hint = format!(
                "set {} or change {setting}",
                key.rsplit('.').next().unwrap_or(key)
            );
            out.push(Problem::error(key, format!("is required by {setting}")).with_hint(hint));
        }
        (Some(d), true) if d.as_os_str().is_empty() => out.push(Problem::error(key, "is empty")),
        (Some(_), false) => out.push(Problem::warning(
            key,
            format!("is ignored unless {setting}"),
        )),
        _ => {}
    }
}

/// A folder sources are moved to must not be the output nor be watched.
fn parked_outside(
    out: &mut Vec<Problem>,
    key: &str,
    dir: &Path,
    output: &Path,
    roots: &[WatchRoot],
    sources: &[PathBuf],
) {
    let hint = "moved files would be picked up again; choose a folder outside every source";
    if dir == output {
        out.push(Problem::error(key, "is the same folder as output").with_hint("keep them apart"));
    }
    for (j, (root, source)) in roots.iter().zip(sources).enumerate() {
        if root.source.as_os_str().is_empty() {
            continue;
        }
        if dir == source {
            let message = format!("is the same folder as watch[{j}].source");
            out.push(Problem::error(key, message).with_hint(hint));
        } else if root.recursive && dir.starts_with(source) {
            let message = format!("is inside watch[{j}].source, which is watched recursively");
            out.push(Problem::error(key, message).with_hint(hint));
        }
    }
}
