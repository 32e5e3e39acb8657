//! Ready latency: from the moment a recorder closes a file to the moment FFmpeg starts on it,
//! with the agent in events mode, `stable_for = "2s"`, on a local disk.
//!
//! Run with `cargo bench -p h264-agent --bench ready_latency`. A real writer holds each file open
//! while it writes it in chunks (as a PVR does); FFmpeg's start is seen by polling `/proc` every
//! 2 ms for the agent's transcoding child. The target is `stable_for` + 0.5 s.

use std::time::{Duration, Instant};

use h264_testkit::fixtures::Fixture;
use h264_testkit::slow_writer::SlowWriter;

const STABLE_FOR: f64 = 2.0;
const ROUNDS: usize = 5;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here.
    }
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let (input, output, state) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("state"),
    );
    std::fs::create_dir_all(&input).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = '{}'\n[[watch]]\nsource = '{}'\noutput = '{}'\nmode = \"events\"\n\
             [readiness]\nstable_for = \"{STABLE_FOR}s\"\nmtime_grace = \"0s\"\n\
             [transcode]\npreset = \"ultrafast\"\n",
            state.display(),
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    let source = Fixture::Mpeg2InterlacedTs.path();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1)); // watchers up
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("rec-{round}.ts");
        let writer = SlowWriter::start(source, &input.join(&name), 4, Duration::from_millis(300));
        let closed = writer.wait();
        let started = loop {
            let found = h264_testkit::process::descendants_of(agent.id())
                .into_iter()
                .any(|pid| {
                    h264_testkit::process::cmdline(pid).is_some_and(|args| {
                        args.iter().any(|a| a == "-progress")
                            && args.iter().any(|a| a.contains(&name))
                    })
                });
            if found {
                break Instant::now();
            }
            assert!(
                closed.elapsed() < Duration::from_secs(30),
                "FFmpeg never started"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let latency = started.duration_since(closed).as_secs_f64();
        println!("round {round}: writer closed -> FFmpeg started in {latency:.3} s");
        latencies.push(latency);
        let out = output.join(format!("rec-{round}.mp4"));
        while !out.exists() {
            assert!(closed.elapsed() < Duration::from_secs(60), "no output");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = agent.kill();
    let _ = agent.wait();
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    println!(
        "ready latency: median {median:.3} s, max {max:.3} s (stable_for {STABLE_FOR} s, \
         target <= {:.1} s)",
        STABLE_FOR + 0.5
    );
}
