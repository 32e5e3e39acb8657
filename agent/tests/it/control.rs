//! The local control API against a running agent binary, over real gRPC on loopback; and the
//! single-instance guards.

use crate::common;

use std::time::Duration;

use common::Setup;
use h264_agent::journal::JobState;
use h264_proto::v1::agent_control_client::AgentControlClient;
use h264_proto::v1::{ErrorsRequest, PauseRequest, PingRequest, ResumeRequest, StatsRequest};
use h264_testkit::fixtures::Fixture;
use h264_testkit::wait::{never_during, wait_for};
use nix::sys::signal::Signal;

/// One worker, and transcodes that last as long as the media (about 3 s).
const ONE_SLOW_WORKER: &str = r#"
[readiness]
stable_for = "0s"
mtime_grace = "0s"

[transcode]
preset = "ultrafast"
remux = false
local_ffmpeg_args = ["-vf", "realtime"]
max_attempts = 1
"#;

fn setup() -> Setup {
    let s = Setup::new("", ONE_SLOW_WORKER);
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("workers = 2", "workers = 1");
    std::fs::write(&s.config, text).unwrap();
    s
}

/// `request` with the agent's control token, read from its state folder as its own user can.
fn authorized<T>(s: &Setup, request: T) -> tonic::Request<T> {
    let token = std::fs::read_to_string(s.state.join("control.token")).unwrap();
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn ping_pause_resume_stats_and_errors_against_a_running_agent() {
    let s = setup();
    let rt = runtime();
    let mut agent = s.spawn();
    let mut client = rt
        .block_on(AgentControlClient::connect(format!(
            "http://{}",
            s.control()
        )))
        .unwrap();

    let ping = rt
        .block_on(client.ping(PingRequest {}))
        .unwrap()
        .into_inner();
    assert_eq!(ping.pid, agent.pid());
    assert_eq!(ping.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(ping.config_sha256.len(), 64);

    Fixture::H264Ts.copy_to(&s.input, "a.ts");
    agent.wait_for_ffmpeg(Duration::from_secs(30));
    let paused = rt
        .block_on(client.pause(authorized(
            &s,
            PauseRequest {
                cancel_running: false,
            },
        )))
        .unwrap();
    assert!(paused.into_inner().paused);
    Fixture::H264Ts.copy_to(&s.input, "b.ts");
    Fixture::TextAsVideo.copy_to(&s.input, "notes.ts");
    // The running job finishes; nothing new starts while paused.
    s.wait_state("a.ts", JobState::Succeeded, Duration::from_secs(30));
    never_during(
        Duration::from_secs(2),
        Duration::from_millis(50),
        || s.record("b.ts"),
        |r| format!("b.ts started while the agent was paused: {r:?}"),
    )
    .unwrap();
    let stats = rt
        .block_on(client.stats(StatsRequest {}))
        .unwrap()
        .into_inner();
    assert!(stats.paused);
    assert_eq!(stats.paused_by, "manual");
    assert_eq!(stats.running.len(), 2, "both wait: {:?}", stats.running);
    assert!(stats.running.iter().all(|j| j.stage().name() == "waiting"));

    let resumed = rt
        .block_on(client.resume(authorized(&s, ResumeRequest {})))
        .unwrap()
        .into_inner();
    assert!(!resumed.paused);
    s.wait_state("b.ts", JobState::Succeeded, Duration::from_secs(30));
    s.wait_state("notes.ts", JobState::Failed, Duration::from_secs(30));

    let stats = rt
        .block_on(client.stats(StatsRequest {}))
        .unwrap()
        .into_inner();
    let since = stats.since_start.unwrap();
    let journal = stats.journal.unwrap();
    assert_eq!((since.converted, since.failed), (2, 1));
    assert_eq!(
        (journal.converted, journal.failed),
        (2, 1),
        "the journal agrees"
    );
    let records = s.journal();
    let bytes_out: u64 = records
        .iter()
        .filter(|r| r.state == JobState::Succeeded)
        .map(|r| r.bytes_out)
        .sum();
    assert_eq!(journal.bytes_out, bytes_out);
    assert!(since.mean_speed > 0.0);
    assert!(!stats.volumes.is_empty());

    let errors = rt
        .block_on(client.errors(ErrorsRequest { limit: 10 }))
        .unwrap()
        .into_inner();
    assert_eq!(errors.errors.len(), 1, "{:?}", errors.errors);
    let e = &errors.errors[0];
    assert!(e.file.ends_with("notes.ts"));
    assert_eq!((e.stage().name(), e.kind.as_str()), ("validate", "failed"));
    assert_eq!(Some(e.message.clone()), s.record("notes.ts").unwrap().error);

    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn pause_with_cancel_stops_the_running_job_and_resume_redoes_it() {
    let s = setup();
    let rt = runtime();
    let mut agent = s.spawn();
    let mut client = rt
        .block_on(AgentControlClient::connect(format!(
            "http://{}",
            s.control()
        )))
        .unwrap();
    Fixture::H264Ts.copy_to(&s.input, "a.ts");
    let ffmpeg = agent.wait_for_ffmpeg(Duration::from_secs(30));
    let reply = rt
        .block_on(client.pause(authorized(
            &s,
            PauseRequest {
                cancel_running: true,
            },
        )))
        .unwrap();
    assert_eq!(reply.into_inner().cancelled, 1);
    s.wait_state("a.ts", JobState::Interrupted, Duration::from_secs(10));
    wait_for(
        "FFmpeg to stop",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (!common::alive(ffmpeg)).then_some(()),
    )
    .unwrap();
    assert!(s.output_files().is_empty(), "{:?}", s.output_files());
    rt.block_on(client.resume(authorized(&s, ResumeRequest {})))
        .unwrap();
    s.wait_state("a.ts", JobState::Succeeded, Duration::from_secs(30));
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn a_second_agent_on_the_same_port_is_refused_and_names_the_first() {
    let first = setup();
    let _agent = first.spawn();
    let second = Setup::basic();
    let text = std::fs::read_to_string(&second.config)
        .unwrap()
        .replace(&second.control_listen, &first.control());
    std::fs::write(&second.config, text).unwrap();
    let out = second.run_daemon_to_exit(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&first.control()) && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", _agent.pid())),
        "names the first agent: {stderr}"
    );
}

#[test]
fn a_second_agent_on_the_same_state_folder_is_refused_and_names_the_first() {
    let first = setup();
    let agent = first.spawn();
    let second = Setup::basic();
    let text = std::fs::read_to_string(&second.config).unwrap().replace(
        &second.state.display().to_string(),
        &first.state.display().to_string(),
    );
    std::fs::write(&second.config, text).unwrap();
    let out = second.run_daemon_to_exit(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already uses the state folder"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", agent.pid())),
        "names the first agent: {stderr}"
    );
    assert!(stderr.contains(&first.control()), "{stderr}");
}

#[test]
fn a_broken_toml_beside_a_good_ini_runs_on_the_ini_and_says_so_in_ping() {
    let s = setup();
    let dir = s.dir.path().join("etc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("agent.toml"), "[agent]\nworkers = \"many\"\n").unwrap();
    std::fs::write(
        dir.join("agent.ini"),
        format!(
            "; the old file\n[agent]\nstate_dir = {}\ncontrol = {}\n\n[watch]\nsource = {}\noutput = {}\n\n\
             [readiness]\nstable_for = 0\nmtime_grace = 0\n",
            s.state.display(),
            s.control_listen,
            s.input.display(),
            s.output.display()
        ),
    )
    .unwrap();
    std::fs::write(&s.config, "").unwrap();
    let mut agent = s.spawn_with_config(&dir);
    let rt = runtime();
    let ping = rt.block_on(async {
        let mut c = AgentControlClient::connect(format!("http://{}", s.control()))
            .await
            .unwrap();
        c.ping(PingRequest {}).await.unwrap().into_inner()
    });
    let warnings = ping.config_warnings.join("\n");
    assert!(
        warnings.contains("agent.toml") && warnings.contains("agent.ini"),
        "{warnings}"
    );
    assert!(agent.log().contains("WARNING"), "visible at start-up");
    Fixture::H264Mp4.copy_to(&s.input, "a.mp4");
    s.wait_state("a.mp4", JobState::Succeeded, Duration::from_secs(30));
    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

/// Review M3: a caller without the agent's control token (one that cannot read its state
/// folder, or sends none) cannot pause or resume it; the read-only calls stay open.
#[test]
fn pause_and_resume_without_the_control_token_are_refused() {
    let s = setup();
    let rt = runtime();
    let _agent = s.spawn();
    let mut client = rt
        .block_on(AgentControlClient::connect(format!(
            "http://{}",
            s.control()
        )))
        .unwrap();
    let ping = rt
        .block_on(client.ping(PingRequest {}))
        .unwrap()
        .into_inner();
    let token_file = std::path::PathBuf::from(&ping.control_token_file);
    assert_eq!(token_file, s.state.join("control.token"));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&s.state), 0o700);
    let refused = rt
        .block_on(client.pause(PauseRequest {
            cancel_running: true,
        }))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("control.token"),
        "{}",
        refused.message()
    );
    let mut forged = tonic::Request::new(ResumeRequest {});
    forged
        .metadata_mut()
        .insert("authorization", "Bearer 0000".parse().unwrap());
    assert_eq!(
        rt.block_on(client.resume(forged)).unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    let stats = rt
        .block_on(client.stats(StatsRequest {}))
        .unwrap()
        .into_inner();
    assert!(!stats.paused, "{stats:?}");
}
