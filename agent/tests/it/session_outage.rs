//! Losing the controller changes nothing an agent does: it keeps converting on its
//! last-known-good revision, comes back on it after a restart, and reconnects by itself with
//! its state in the hello. A damaged last-known-good file is reported and set aside.

use crate::common;
use crate::session_controller;

use std::time::Duration;

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_proto::v1::Assignment;
use h264_testkit::fixtures::Fixture;
use nix::sys::signal::Signal;
use session_controller::{ping, revision, x264_crf, TestController};

const MINUTE: Duration = Duration::from_secs(60);

fn setup(controller: &TestController) -> Setup {
    let sections = format!(
        "{BASE}\n[controller]\nendpoint = \"{}\"\n\
         reconnect_backoff = \"100ms\"\nreconnect_backoff_max = \"500ms\"\n",
        controller.endpoint()
    );
    Setup::new("", &sections)
}

#[test]
fn the_agent_rides_out_a_controller_outage_on_its_last_known_good() {
    let controller = TestController::start();
    let s = setup(&controller);
    let mut agent = s.spawn();
    controller.wait_hello(1, MINUTE);
    let rev = revision(2, "  transcode: {crf: 23}\n");
    controller.assign(rev.clone()).ack();
    let port = controller.kill();

    // The controller is gone: the agent keeps converting under revision 2.
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "down.ts");
    s.wait_state("down.ts", JobState::Succeeded, MINUTE);
    assert_eq!(x264_crf(&s.output_of("down.ts")).as_deref(), Some("23.0"));

    // Restarted while the controller is down: back on revision 2, not on the local file.
    agent.signal(Signal::SIGTERM);
    agent.wait_exit(Duration::from_secs(30));
    let agent = s.spawn();
    assert_eq!(ping(&s.control()).config_generation, 2);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "restarted.ts");
    s.wait_state("restarted.ts", JobState::Succeeded, MINUTE);
    assert_eq!(
        x264_crf(&s.output_of("restarted.ts")).as_deref(),
        Some("23.0")
    );

    // The controller comes back (remembering nothing): the agent reconnects by itself and its
    // hello says what it runs, so the controller can resync.
    let controller = TestController::start_on(port);
    let hello = controller.wait_hello(1, MINUTE);
    assert_eq!(
        (
            hello.running_generation,
            hello.running_sha256.as_str(),
            hello.highest_accepted_generation
        ),
        (2, rev.sha256.as_str(), 2)
    );
    let resync = Assignment {
        nonce: "resync".into(),
        ..rev
    };
    controller.assign(resync).ack();
    assert!(agent.log().contains("assignment already in force"));
}

#[test]
fn a_damaged_last_known_good_is_reported_and_set_aside() {
    let controller = TestController::start();
    let s = setup(&controller);
    std::fs::create_dir_all(&s.state).unwrap();
    let file = s.state.join("last-known-good.json");
    std::fs::write(&file, "{\"format\": 1, \"generation\": 3, \"sha2").unwrap();
    let agent = s.spawn();
    assert_eq!(ping(&s.control()).config_generation, 0);
    assert!(!file.exists());
    assert!(s.state.join("last-known-good.json.damaged").exists());
    assert!(agent.log().contains("is damaged"), "{}", agent.log());
    let hello = controller.wait_hello(1, MINUTE);
    assert_eq!(
        (hello.running_generation, hello.highest_accepted_generation),
        (0, 0)
    );
    // A new revision is accepted and saved whole.
    controller
        .assign(revision(1, "  transcode: {crf: 23}\n"))
        .ack();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["generation"], 1);
}
