//! The workspace's other binaries (`h264-controller`, `h264-agent`) for fleetctl's tests: cargo
//! gives a test only its own package's binaries, so these are built once (a no-op under
//! `cargo test --workspace`, which has built them already) in the same target folder and profile.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The path of `bin` from `package`, built if needed.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let fleetctl = PathBuf::from(env!("CARGO_BIN_EXE_fleetctl"));
    let profile_dir = fleetctl.parent().unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => _ = cmd.arg("--release"),
        Some(other) => _ = cmd.args(["--profile", other]),
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cannot build {bin}");
    let path = profile_dir.join(bin);
    built.insert(bin.to_string(), path.clone());
    path
}
