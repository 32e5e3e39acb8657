//! The disk guard against a real small file system: a tmpfs with a size limit, mounted by the
//! test (CI runs as root). Critical pauses intake, recovery resumes it, and a disk that fills
//! during a transcode leaves no half-written output.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Setup;
use h264_agent::journal::JobState;
use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::StatsRequest;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::{never_during, wait_for};
use nix::sys::signal::Signal;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        Self::try_mount(path, size).unwrap_or_else(|why| {
            panic!("this test mounts a size-limited tmpfs and needs root (CI runs as root): {why}")
        })
    }

    fn try_mount(path: &Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(SmallDisk {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn stats(control: &str) -> h264_proto::v1::StatsReply {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = AgentControlClient::connect(format!("http://{control}"))
            .await
            .unwrap();
        c.stats(StatsRequest {}).await.unwrap().into_inner()
    })
}

#[test]
fn critical_free_space_pauses_intake_and_recovery_resumes_it() {
    let s = Setup::new(
        "",
        &format!(
            "{}\n[disk]\nwarn = \"5MB\"\ncritical = \"3MB\"\nhysteresis = \"1MB\"\ncheck_interval = \"1s\"\n",
            common::BASE
        ),
    );
    let mut s = s;
    // A real 8 MiB file system where the test may mount one; otherwise the agent's clearly
    // named test-only free-space reading stands in for it.
    const SIZE: u64 = 8 * 1024 * 1024;
    let reading = s.dir.path().join("free-space");
    let disk = SmallDisk::try_mount(&s.output, "8m")
        .map_err(|why| {
            eprintln!(
                "cannot mount a tmpfs here ({why}); using the agent's test-only free-space \
                 reading ({})",
                h264_agent::disk::TEST_READING_ENV
            );
            std::fs::write(&reading, format!("{SIZE} {SIZE}")).unwrap();
            let var = h264_agent::disk::TEST_READING_ENV.to_string();
            s.env.push((var, reading.display().to_string()));
        })
        .ok();
    let mut agent = s.spawn();
    let filler = s.output.join("filler.bin");
    match &disk {
        Some(_) => std::fs::write(&filler, vec![0u8; 6 * 1024 * 1024]).unwrap(),
        None => std::fs::write(&reading, format!("{} {SIZE}", 2 * 1024 * 1024)).unwrap(),
    }
    wait_for(
        "the disk guard to pause intake",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let st = stats(&s.control());
            (st.paused_by == "disk").then_some(st)
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));
    Fixture::H264Mp4.copy_to(&s.input, "waits.mp4");
    never_during(
        Duration::from_secs(2),
        Duration::from_millis(50),
        || s.record("waits.mp4"),
        |r| format!("a job started while the disk was critical: {r:?}"),
    )
    .unwrap();
    assert!(agent.log().contains("disk critical"), "logged");

    match &disk {
        Some(_) => std::fs::remove_file(&filler).unwrap(),
        None => std::fs::write(&reading, format!("{SIZE} {SIZE}")).unwrap(),
    }
    s.wait_state("waits.mp4", JobState::Succeeded, Duration::from_secs(30));
    let st = stats(&s.control());
    assert!(!st.paused, "{st:?}");
    assert!(st
        .volumes
        .iter()
        .any(|v| v.level == "ok" && v.total_bytes <= 8 * 1024 * 1024));
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn a_disk_that_fills_during_a_transcode_leaves_no_half_written_output() {
    let s = Setup::new(
        "",
        "[readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
         [transcode]\npreset = \"ultrafast\"\ncrf = 1\nremux = false\nmax_attempts = 1\n\
         [disk]\nwarn = \"1KB\"\ncritical = \"1KB\"\nhysteresis = \"0\"\n",
    );
    let _disk = SmallDisk::mount(&s.output, "64k");
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "big.ts");
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = s.record("big.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    let error = r.error.unwrap();
    assert!(error.contains("No space left on device"), "{error}");
    assert!(
        s.output_files().is_empty(),
        "nothing under any name: {:?}",
        s.output_files()
    );
}
