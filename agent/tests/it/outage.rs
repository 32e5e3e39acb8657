//! An output share that goes away while the agent runs (security review M2): a real output
//! root renamed away and back. No job fails for good, the root is not recreated on the local
//! disk, no source is deleted, and everything converts once the root is back.

use crate::common;

use std::time::Duration;

use common::Setup;
use h264_agent::journal::JobState;
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::{never_during, wait_for};

#[test]
fn a_vanished_output_root_holds_its_jobs_until_it_is_back() {
    let s = Setup::new("on_success = \"delete\"\n", common::BASE);
    let daemon = s.spawn();
    wait_for(
        "the start-up reconcile",
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
    assert!(s.output.is_dir(), "the root is created the first time");
    let away = s.dir.path().join("h264.unmounted");
    std::fs::rename(&s.output, &away).unwrap();
    Fixture::H264Ts.copy_to(&s.input, "during-outage.ts");
    // Longer than two attempts with their backoff (BASE: max_attempts 2, 1s-2s).
    never_during(
        Duration::from_secs(6),
        Duration::from_millis(100),
        || {
            let failed = s
                .record("during-outage.ts")
                .filter(|r| r.state == JobState::Failed);
            let recreated = s.output.exists();
            let deleted = !s.input.join("during-outage.ts").exists();
            (failed.is_some() || recreated || deleted).then_some((failed, recreated, deleted))
        },
        |(failed, recreated, deleted)| {
            format!("failed: {failed:?}, root recreated: {recreated}, source deleted: {deleted}")
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(
        daemon.log().matches("the output root is missing").count(),
        1,
        "{}",
        daemon.log()
    );
    std::fs::rename(&away, &s.output).unwrap();
    s.wait_state(
        "during-outage.ts",
        JobState::Succeeded,
        Duration::from_secs(60),
    );
    assert!(s.output_of("during-outage.ts").exists());
    wait_for(
        "the source to be deleted after success",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (!s.input.join("during-outage.ts").exists()).then_some(()),
    )
    .unwrap();
    assert!(daemon.log().contains("the output root is back"));
}
