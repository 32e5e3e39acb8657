//! Idle cost: resident memory and CPU of an agent watching 20,000 sources that are all converted
//! already, and the time of its start-up reconcile (scan + one reconcile per source).
//!
//! Run with `cargo bench --release -p h264-agent --bench idle_cost` (release: the agent binary
//! is measured as shipped). Setting up 20,000 real conversions would take hours, so the
//! "already converted" state is written through the agent's own journal API: every source is a
//! hard link of one small H.264 file, every output a hard link of its MP4, and each journal row
//! is what a successful job records. Targets: start-up reconcile under 3 s, under 50 MB
//! resident, about 0 % CPU when idle.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use h264_agent::journal::{Completed, Journal};
use h264_agent::key::{Fingerprint, SourceKey};
use h264_testkit::fixtures::Fixture;

const FILES: usize = 20_000;
const PER_FOLDER: usize = 1_000;
const IDLE_SAMPLE: Duration = Duration::from_secs(10);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let (input, output, state) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("state"),
    );
    for d in [&input, &output, &state] {
        std::fs::create_dir_all(d).unwrap();
    }
    let text = format!(
        "[agent]\nstate_dir = '{}'\n[[watch]]\nsource = '{}'\noutput = '{}'\nmode = \"events\"\n\
         [readiness]\nstable_for = \"10s\"\n[transcode]\npreset = \"ultrafast\"\n",
        state.display(),
        input.display(),
        output.display()
    );
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = h264_config::parse_agent_config(&text, None).unwrap().config;
    let spec = h264_agent::settings::spec_hash(&config);

    let setup = Instant::now();
    let sample = Fixture::H264Mp4.path();
    let published = dir.path().join("published.mp4");
    std::fs::copy(sample, &published).unwrap();
    let root: Arc<Path> = Arc::from(std::fs::canonicalize(&input).unwrap());
    let out_root = std::fs::canonicalize(&output).unwrap();
    let journal = Journal::open(&state).unwrap();
    journal.bulk(|| {
        for i in 0..FILES {
            let folder = format!("day-{:02}", i / PER_FOLDER);
            let rel = Path::new(&folder).join(format!("rec-{i:05}.mp4"));
            std::fs::create_dir_all(root.join(&folder)).unwrap();
            std::fs::create_dir_all(out_root.join(&folder)).unwrap();
            std::fs::hard_link(sample, root.join(&rel)).unwrap();
            let out = out_root.join(&rel);
            std::fs::hard_link(&published, &out).unwrap();
            let key = SourceKey::new(root.clone(), rel);
            let fp = Fingerprint::of(&std::fs::metadata(key.path()).unwrap());
            journal.start(&key, &fp, &spec, &out).unwrap();
            let done = Completed {
                mode: "remux",
                bytes_in: 1,
                bytes_out: 1,
                media_secs: 3.0,
                wall_secs: 1.0,
                captions: "not requested".into(),
                caption_warning: None,
                transcode_secs: 1.0,
                transcode_cpu_secs: 1.0,
                captions_secs: 0.0,
                captions_work_secs: 0.0,
            };
            journal.succeed(&key, &done).unwrap();
        }
    });
    drop(journal);
    println!(
        "set-up of {FILES} converted sources: {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let log = dir.path().join("agent.log");
    let spawned = Instant::now();
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("start-up reconcile finished"))
        {
            break line.to_string();
        }
        assert!(
            spawned.elapsed() < Duration::from_secs(120),
            "no start-up reconcile:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = spawned.elapsed().as_secs_f64();
    println!("start-up reconcile: {wall:.2} s from spawn ({line})");
    let jobs = std::fs::read_to_string(&log)
        .unwrap()
        .matches("job started")
        .count();
    println!("jobs started during start-up: {jobs} (expected 0)");

    let ticks_before = cpu_ticks(agent.id());
    let t0 = Instant::now();
    std::thread::sleep(IDLE_SAMPLE);
    let ticks = cpu_ticks(agent.id()) - ticks_before;
    let cpu = ticks as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_kib(agent.id());
    println!(
        "idle: {:.1} MB resident, {cpu:.2} % CPU over {} s",
        rss as f64 / 1024.0,
        IDLE_SAMPLE.as_secs()
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
