//! Symlinks planted in watch roots and output folders (security review H2, H5, L4, L5): the
//! agent never converts, moves or deletes a file outside its watch root through a symlink, and
//! never writes through a symlink planted where it writes its progress files and temporaries.

use crate::common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;

/// A folder beside the installation, outside every watch root.
fn outside(s: &Setup) -> std::path::PathBuf {
    let dir = s.dir.path().join("outside");
    std::fs::create_dir_all(dir.join("archive")).unwrap();
    dir
}

#[test]
fn a_symlinked_file_leading_out_of_the_root_is_refused_and_reported() {
    let s = Setup::new("on_success = \"delete\"\n", common::BASE);
    let out = outside(&s);
    Fixture::H264Ts.copy_to(&out, "private-recording.ts");
    symlink(
        out.join("private-recording.ts"),
        s.input.join("innocent.ts"),
    )
    .unwrap();
    Fixture::H264Ts.copy_to(&s.input, "real.ts");
    let run = s.run_once();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(
        out.join("private-recording.ts").exists(),
        "deleted outside the root"
    );
    assert!(
        s.input.join("innocent.ts").exists(),
        "the link itself stays"
    );
    assert_eq!(s.output_files(), ["real.mp4"], "only the real recording");
    assert!(
        !s.input.join("real.ts").exists(),
        "the real recording is deleted as asked"
    );
    let r = s.record("innocent.ts").unwrap();
    assert_eq!(r.state, JobState::Conflict);
    assert!(
        r.error
            .unwrap_or_default()
            .contains("leads out of the watch root"),
        "{log}"
    );
    assert_eq!(
        log.matches("leads out of the watch root").count(),
        1,
        "{log}"
    );
}

#[test]
fn a_symlinked_folder_in_an_events_root_converts_and_deletes_nothing_outside() {
    let s = Setup::new("mode = \"events\"\non_success = \"delete\"\n", common::BASE);
    let out = outside(&s);
    Fixture::H264Ts.copy_to(&out.join("archive"), "master.ts");
    let daemon = s.spawn();
    h264_testkit::wait::wait_for(
        "the watcher",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            daemon
                .log()
                .contains("start-up reconcile finished")
                .then_some(())
        },
    )
    .unwrap();
    symlink(out.join("archive"), s.input.join("link")).unwrap();
    let r = s.wait_state(
        "link/master.ts",
        JobState::Conflict,
        Duration::from_secs(20),
    );
    assert!(r
        .error
        .unwrap_or_default()
        .contains("leads out of the watch root"));
    // A real recording after it converts: the agent went on working.
    Fixture::H264Ts.copy_to(&s.input, "after.ts");
    s.wait_state("after.ts", JobState::Succeeded, Duration::from_secs(60));
    assert!(out.join("archive/master.ts").exists(), "{}", daemon.log());
    assert_eq!(s.output_files(), ["after.mp4"]);
    drop(daemon);
}

#[test]
fn follow_symlinks_lets_an_operator_allow_them() {
    let s = Setup::new("follow_symlinks = true\n", common::BASE);
    let out = outside(&s);
    Fixture::H264Ts.copy_to(&out, "shared.ts");
    symlink(out.join("shared.ts"), s.input.join("shared.ts")).unwrap();
    assert!(s.run_once().status.success());
    assert_eq!(s.output_files(), ["shared.mp4"]);
}

/// Review H5: symlinks planted at the names of the progress file, its old temporary and the
/// old output temporary leave their targets unchanged; the recording converts.
#[test]
fn planted_symlinks_in_the_output_folder_are_never_written_through() {
    let s = Setup::basic();
    let out = outside(&s);
    std::fs::create_dir_all(&s.output).unwrap();
    let names = [
        ".show3.mp4.progress",
        "..show3.mp4.progress.h264create-tmp",
        ".show3.mp4.h264create-tmp",
    ];
    for (n, name) in names.iter().enumerate() {
        let victim = out.join(format!("victim-{n}.conf"));
        std::fs::write(&victim, "ORIGINAL").unwrap();
        symlink(&victim, s.output.join(name)).unwrap();
    }
    Fixture::H264Ts.copy_to(&s.input, "show3.ts");
    assert!(s.run_once().status.success());
    for n in 0..names.len() {
        let text = std::fs::read_to_string(out.join(format!("victim-{n}.conf"))).unwrap();
        assert_eq!(text, "ORIGINAL", "victim-{n}");
    }
    assert!(s.output_of("show3.ts").exists());
}

/// Review L4: a name close to the 255-byte limit converts (its temporary name is short).
#[test]
fn a_name_close_to_the_limit_converts() {
    let s = Setup::basic();
    let name = format!("{}.ts", "x".repeat(247));
    Fixture::H264Ts.copy_to(&s.input, "short.ts");
    std::fs::rename(s.input.join("short.ts"), s.input.join(&name)).unwrap();
    let out = s.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.output_of(&name).exists());
}
