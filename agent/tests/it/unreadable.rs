//! An unreadable folder inside a watch root: reported clearly, and the rest still converts.
//!
//! Permission bits do not stop root, and CI runs as root: there the test runs the agent as the
//! unprivileged `nobody` user (`setpriv`), from a copy of the binary in the test's folder so that
//! the checkout's own folders need not be open to that user. Run as another user, it runs the
//! agent directly.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_unreadable_folder_is_reported_and_the_rest_converts() {
    let s = Setup::basic();
    let locked = s.input.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    Fixture::H264Mp4.copy_to(&locked, "hidden.mp4");
    Fixture::H264Mp4.copy_to(&s.input, "open.mp4");
    for dir in [s.dir.path(), s.input.as_path()] {
        chmod(dir, 0o777);
    }
    for file in [s.input.join("open.mp4"), s.config.clone()] {
        chmod(&file, 0o644);
    }
    chmod(&locked, 0o000);
    let binary = s.dir.path().join("h264-agent");
    std::fs::copy(env!("CARGO_BIN_EXE_h264-agent"), &binary).unwrap();
    chmod(&binary, 0o755);

    let as_root = nix::unistd::geteuid().is_root();
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&binary);
        c
    } else {
        Command::new(&binary)
    };
    let out = cmd
        .arg("--config")
        .arg(&s.config)
        .arg("--once")
        .output()
        .unwrap();
    chmod(&locked, 0o755);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "an unreadable folder is not a failed file: {stderr}"
    );
    assert!(
        stderr.contains("cannot read a watched folder") && stderr.contains("locked"),
        "the log names the folder: {stderr}"
    );
    assert_eq!(s.record("open.mp4").unwrap().state, JobState::Succeeded);
    assert!(s.record("locked/hidden.mp4").is_none());
}
