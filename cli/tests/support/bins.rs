//! The workspace's other binaries (`h264-controller`, `h264-agent`) for fleetctl's tests. Cargo
//! gives a test only its own package's binaries (`CARGO_BIN_EXE_*`), so the others are taken
//! from the same target folder and profile, after one `cargo test --workspace --no-run`.
//!
//! Why that command: it resolves features exactly as the workspace test run that started this
//! test (`cargo test --workspace`, CI's), so under it the binaries are already built and the
//! command is a no-op that rebuilds nothing. (A `cargo build -p h264-agent` would resolve the
//! package's features on their own, without the workspace's dev-dependencies, and rebuild
//! tokio and everything above it into a second copy.) Run alone (`cargo test -p fleetctl`) it
//! builds what the workspace run would, once.
//!
//! The command runs without the variables Cargo sets for this test process (`CARGO_PKG_*`,
//! `CARGO_MANIFEST_DIR`...): build scripts read some of them (`ring`'s reads
//! `CARGO_MANIFEST_DIR`), and Cargo would record fleetctl's values for them, so the next
//! `cargo build` or `cargo test` (which has none) would find `ring` dirty and rebuild it and
//! everything above it: the whole workspace, twice per run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of `bin` (a binary of the workspace), built if needed.
pub fn workspace_bin(bin: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let profile_dir = BUILT.get_or_init(build_workspace);
    let path = profile_dir.join(bin);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// Runs `cargo test --workspace --no-run` in this target folder and profile; the profile's
/// folder.
fn build_workspace() -> PathBuf {
    let fleetctl = PathBuf::from(env!("CARGO_BIN_EXE_fleetctl"));
    let profile_dir = fleetctl.parent().expect("a folder").to_path_buf();
    let target_dir = profile_dir.parent().expect("the target folder");
    let mut cmd = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_tests) {
            cmd.env_remove(&name);
        }
    }
    cmd.args(["test", "--quiet", "--workspace", "--no-run"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => _ = cmd.arg("--release"),
        Some(other) => _ = cmd.args(["--profile", other]),
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cannot build the workspace's binaries");
    profile_dir
}

/// Whether Cargo sets the variable `name` for a test process (it was not in the environment of
/// the `cargo test` that runs the test).
fn set_by_cargo_for_tests(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}
