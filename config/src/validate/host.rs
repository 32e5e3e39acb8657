//! Rules that look at this machine: the source folders exist and can be read, the folders the
//! agent writes into (state, outputs, done and quarantine folders, log files) can be written or
//! created, the SMTP password file (or systemd credential) can be read, and CCExtractor is
//! installed when the config needs it; an `auto` root found on a network share is held to the
//! share rule of readiness. Only with [`super::Checks::Full`].
//!
//! Writability is tried, not guessed from permission bits (which say nothing about ACLs,
//! read-only mounts or root): a probe file is created with a unique name and removed at once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::agent::{AgentConfig, Alerts, CaptionTool, WatchMode};
use crate::problem::Problem;

pub(super) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    let fix = "create it or fix the path";
    for (i, root) in config.watch.iter().enumerate() {
        let key = format!("watch[{i}].source");
        let source = &root.source;
        if source.as_os_str().is_empty() {
            continue;
        }
        if !source.exists() {
            let message = format!("`{}` does not exist", source.display());
            out.push(Problem::error(&key, message).with_hint(fix));
        } else if !source.is_dir() {
            let message = format!("`{}` is not a directory", source.display());
            out.push(Problem::error(&key, message).with_hint(fix));
        } else if let Err(e) = std::fs::read_dir(source) {
            let message = format!("`{}` cannot be read: {e}", source.display());
            let hint = "give the agent's user read access to it";
            out.push(Problem::error(&key, message).with_hint(hint));
        } else if root.mode == WatchMode::Auto {
            let fs = crate::mounts::fs_type(&super::resolve(source))
                .filter(|fs| crate::mounts::NETWORK_FS.contains(&fs.as_str()));
            if let Some(fs) = fs {
                let how = format!("mode = \"auto\" polls it: it is on {fs}");
                super::local::share_readiness(config, i, &how, out);
            }
        }
        writable(out, &format!("watch[{i}].output"), &root.output);
        for (name, dir) in [
            ("done_dir", &root.done_dir),
            ("quarantine_dir", &root.quarantine_dir),
        ] {
            if let Some(dir) = dir {
                writable(out, &format!("watch[{i}].{name}"), dir);
            }
        }
    }
    writable(out, "agent.state_dir", &config.agent.state_dir);
    if let Some(dir) = &config.logging.dir {
        writable(out, "logging.dir", dir);
    }
    alerts_password_file(&config.alerts, out);
    ccextractor(config, out);
}

/// The SMTP password file, when one is set, can be read.
pub(super) fn alerts_password_file(alerts: &Alerts, out: &mut Vec<Problem>) {
    let password = alerts.email.as_ref().and_then(|e| e.password_file.as_ref());
    if let Some(file) = password {
        if let Err(e) = std::fs::File::open(file) {
            let message = format!("`{}` cannot be read: {e}", file.display());
            let hint = "create it with the SMTP password on its first line, readable by this \
                        program only";
            out.push(Problem::error("alerts.email.password_file", message).with_hint(hint));
        }
    }
    // Only when it is the one password source (two are an error of their own).
    let credential = alerts
        .email
        .as_ref()
        .filter(|e| e.password_env.is_none() && e.password_file.is_none())
        .and_then(|e| e.password_credential.as_deref())
        .filter(|name| crate::credentials::valid_name(name));
    if let Some(name) = credential {
        let key = "alerts.email.password_credential";
        match crate::credentials::path(name) {
            Ok(file) => {
                if let Err(e) = std::fs::File::open(&file) {
                    let message = format!("`{}` cannot be read: {e}", file.display());
                    let hint = format!(
                        "give the unit LoadCredential={name}:/etc/h264create/credentials/{name} \
                         (a file with the SMTP password on its first line)"
                    );
                    out.push(Problem::error(key, message).with_hint(hint));
                }
            }
            Err(e) => {
                let hint = format!(
                    "fine when checking outside the service; the unit needs \
                     LoadCredential={name}:PATH"
                );
                out.push(Problem::warning(key, e.to_string()).with_hint(hint));
            }
        }
    }
}

/// The folder at `dir` is a directory the agent can write into, or can be created.
fn writable(out: &mut Vec<Problem>, key: &str, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let hint = "give the agent's user write access, or choose another folder";
    if dir.exists() {
        if !dir.is_dir() {
            let message = format!("`{}` is not a directory", dir.display());
            out.push(Problem::error(key, message).with_hint("create it or fix the path"));
        } else if let Err(e) = probe(dir) {
            let message = format!("`{}` cannot be written: {e}", dir.display());
            out.push(Problem::error(key, message).with_hint(hint));
        }
        return;
    }
    // Missing: it is created, so its nearest existing ancestor must take a new folder.
    let ancestor = dir
        .ancestors()
        .skip(1)
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists());
    let Some(ancestor) = ancestor else {
        return;
    };
    let problem = if !ancestor.is_dir() {
        Some(format!("`{}` is not a directory", ancestor.display()))
    } else {
        probe(ancestor).err().map(|e| e.to_string())
    };
    if let Some(why) = problem {
        let message = format!(
            "`{}` does not exist and cannot be created in `{}`: {why}",
            dir.display(),
            ancestor.display()
        );
        out.push(Problem::error(key, message).with_hint(hint));
    }
}

/// Creates and removes a uniquely named file in `dir`.
fn probe(dir: &Path) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".h264create-write-probe-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)
}

/// `.bin` sidecars and `tool = "ccextractor"` need CCExtractor on this machine.
fn ccextractor(config: &AgentConfig, out: &mut Vec<Problem>) {
    let c = &config.captions;
    let wants_bin = c.formats.iter().any(|f| f == "bin") && c.tool != CaptionTool::Ffmpeg;
    if !wants_bin && c.tool != CaptionTool::Ccextractor {
        return;
    }
    if c.find_ccextractor().is_some() {
        return;
    }
    let where_ = match &c.ccextractor {
        Some(path) => format!("at {} (captions.ccextractor)", path.display()),
        None => "on PATH".to_string(),
    };
    if wants_bin {
        let message = format!("\"bin\" needs CCExtractor, which is not found {where_}");
        let hint = "install CCExtractor and set captions.ccextractor, or drop \"bin\"";
        out.push(Problem::error("captions.formats", message).with_hint(hint));
    }
    if c.tool == CaptionTool::Ccextractor {
        let message = format!("is \"ccextractor\", but CCExtractor is not found {where_}");
        let hint = "install CCExtractor and set captions.ccextractor, or use tool = \"auto\"";
        out.push(Problem::error("captions.tool", message).with_hint(hint));
    }
}
