//! Captioned recordings: the agent with caption sidecars against plain FFmpeg's transcode alone.
//!
//! Run with `cargo bench -p h264-agent --bench caption_overhead`. It makes, once per run, two
//! 60-second 1920x1080 interlaced MPEG-2 recordings at 29.97 frames/s with AC-3 audio in
//! MPEG-TS, whose pictures carry CEA-608 captions on CC1 in their A/53 user data (a new cue every
//! two seconds), then measures, alternating, `CAPTION_OVERHEAD_ROUNDS` times each (default 1):
//!
//! - **ffmpeg**: the two transcodes alone, at once, with the agent's own FFmpeg arguments for
//!   them ([`h264_agent::transcode::arguments`] and [`h264_agent::captions::output_arguments`]:
//!   libx264 `veryfast`, CRF 21, `bwdif`, AAC, every frame kept with its timestamp);
//! - **agent**: the release `h264-agent --once` on a fresh copy of both, `workers = 2`,
//!   `veryfast`, with `.srt` and `.vtt` sidecars extracted by FFmpeg (`[captions] formats =
//!   ["srt", "vtt"]`, `tool = "ffmpeg"`), every output checked (the captions cue for cue);
//! - **baseline**: with `BASELINE=PATH`, another agent binary (an earlier build) the same way.
//!
//! `AGENT=PATH` measures that agent binary instead of the one built with the bench;
//! `CAPTION_OVERHEAD_DIR=PATH` works in that folder and keeps it (the clips are made once and
//! reused; the last agent run's log is `agent.log` there).
//!
//! It prints each wall time and CPU time (user + system of every process it waited for), the
//! totals and the ratios agent/ffmpeg. Goal: 1.03 or less in wall time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use h264_agent::captions::{output_arguments, plan_from_probe};
use h264_agent::probe::{probe_programme_json, Choice};
use h264_agent::transcode::{arguments, plan as transcode_plan, run, Plan};
use h264_config::agent::Transcode;
use h264_testkit::captions::{encode_608, inject_mpeg2_captions, Cue, FRAME_RATE};
use tokio_util::sync::CancellationToken;

const SECS: u32 = 60;
const CLIPS: usize = 2;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    h264_testkit::ffmpeg::require_ffmpeg();
    let rounds: u32 = std::env::var("CAPTION_OVERHEAD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let baseline = std::env::var_os("BASELINE").map(PathBuf::from);
    // CAPTION_OVERHEAD_DIR=PATH: work there and keep it (the clips are made once and reused,
    // the agent's last log and outputs stay for a look); else in a temporary folder.
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("CAPTION_OVERHEAD_DIR")
        .map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    let clips = dir.join("clips");
    std::fs::create_dir_all(&clips).unwrap();
    let made = Instant::now();
    let sources: Vec<PathBuf> = (1..=CLIPS)
        .map(|i| {
            let clip = clips.join(format!("news-{i}.ts"));
            if clip.exists() {
                clip
            } else {
                make_clip(&clips, &format!("news-{i}.ts"))
            }
        })
        .collect();
    println!(
        "{CLIPS} clips of {SECS} s 1920x1080i MPEG-2 + AC-3 with CEA-608 on CC1 ({:.1} s to make); \
         load average {}",
        made.elapsed().as_secs_f64(),
        load_average()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    // AGENT=PATH measures another build of the agent (a release build, with a bench binary
    // built in the test profile).
    let agent = std::env::var_os("AGENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_h264-agent")));
    let mut kinds: Vec<(&str, Option<PathBuf>)> = vec![("ffmpeg", None), ("agent", Some(agent))];
    if let Some(b) = baseline {
        kinds.push(("baseline", Some(b)));
    }
    let mut totals = vec![(0.0, 0.0); kinds.len()];
    for round in 1..=rounds {
        for (k, (kind, bin)) in kinds.iter().enumerate() {
            let cpu_before = children_cpu();
            let started = Instant::now();
            match bin {
                None => rt.block_on(ffmpeg_alone(&sources, &dir.join("ffmpeg-out"))),
                Some(bin) => run_agent(bin, &dir, &clips),
            }
            let wall = started.elapsed().as_secs_f64();
            let cpu = children_cpu() - cpu_before;
            println!("round {round}: {kind:<8} wall {wall:7.2} s  cpu {cpu:7.2} s");
            totals[k].0 += wall;
            totals[k].1 += cpu;
        }
    }
    let (fw, fc) = totals[0];
    for (k, (kind, _)) in kinds.iter().enumerate() {
        let (w, c) = totals[k];
        let media = f64::from(SECS) * CLIPS as f64 * f64::from(rounds);
        println!(
            "{kind:<8} total wall {w:7.2} s  cpu {c:7.2} s  cpu-seconds per media-second {:.3}",
            c / media
        );
        if k > 0 {
            println!(
                "ratio {kind}/ffmpeg: wall {:.3}, cpu {:.3} (goal: wall 1.03 or less)",
                w / fw,
                c / fc
            );
        }
    }
}

/// One captioned recording: MPEG-2 1080i encoded by FFmpeg, the captions written into each
/// picture's user data, muxed with AC-3.
fn make_clip(dir: &Path, name: &str) -> PathBuf {
    let frames = SECS * 30;
    let es = dir.join(format!(".{name}.m2v"));
    ffmpeg(&[
        "-f".as_ref(),
        "lavfi".as_ref(),
        "-i".as_ref(),
        format!("testsrc2=size=1920x1080:rate={FRAME_RATE}").as_ref(),
        "-frames:v".as_ref(),
        frames.to_string().as_ref(),
        "-pix_fmt".as_ref(),
        "yuv420p".as_ref(),
        "-c:v".as_ref(),
        "mpeg2video".as_ref(),
        "-b:v".as_ref(),
        "15M".as_ref(),
        "-bf".as_ref(),
        "0".as_ref(),
        "-flags".as_ref(),
        "+ilme+ildct".as_ref(),
        "-top".as_ref(),
        "1".as_ref(),
        "-f".as_ref(),
        "mpeg2video".as_ref(),
        es.as_os_str(),
    ]);
    let cues: Vec<Cue> = (0..frames / 60 - 1)
        .map(|k| Cue {
            text: format!("CAPTION NUMBER {k}"),
            start_frame: k * 60 + 30,
            end_frame: k * 60 + 52,
        })
        .collect();
    let with_cc = dir.join(format!(".{name}.cc.m2v"));
    let raw = std::fs::read(&es).unwrap();
    std::fs::write(
        &with_cc,
        inject_mpeg2_captions(&raw, &encode_608(&cues, frames)),
    )
    .unwrap();
    std::fs::remove_file(&es).unwrap();
    let out = dir.join(name);
    ffmpeg(&[
        "-fflags".as_ref(),
        "+genpts".as_ref(),
        "-r".as_ref(),
        FRAME_RATE.as_ref(),
        "-f".as_ref(),
        "mpegvideo".as_ref(),
        "-i".as_ref(),
        with_cc.as_os_str(),
        "-f".as_ref(),
        "lavfi".as_ref(),
        "-i".as_ref(),
        format!("sine=frequency=440:sample_rate=48000:duration={SECS}").as_ref(),
        "-map".as_ref(),
        "0:v".as_ref(),
        "-map".as_ref(),
        "1:a".as_ref(),
        "-c:v".as_ref(),
        "copy".as_ref(),
        "-c:a".as_ref(),
        "ac3".as_ref(),
        "-ac".as_ref(),
        "2".as_ref(),
        "-f".as_ref(),
        "mpegts".as_ref(),
        out.as_os_str(),
    ]);
    std::fs::remove_file(&with_cc).unwrap();
    out
}

fn ffmpeg(args: &[&std::ffi::OsStr]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-v", "error"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// Both transcodes at once, with the agent's arguments.
async fn ffmpeg_alone(sources: &[PathBuf], out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let cancel = CancellationToken::new();
    let cfg = Transcode {
        preset: "veryfast".into(),
        crf: 21,
        ..Transcode::default()
    };
    let timeout = Duration::from_secs(600);
    let mut runs = Vec::new();
    for source in sources {
        let (info, json) = probe_programme_json(
            Path::new("ffprobe"),
            source,
            &Choice::FirstWithVideo,
            timeout,
            &cancel,
        )
        .await
        .unwrap();
        let mode = transcode_plan(&info, &cfg);
        let output = out.join(source.file_name().unwrap()).with_extension("mp4");
        let args = output_arguments(
            arguments(source, &output, mode, &cfg),
            &plan_from_probe(&json),
            matches!(mode, Plan::Encode { .. }),
            true,
        );
        let cancel = cancel.clone();
        runs.push(tokio::spawn(async move {
            run(Path::new("ffmpeg"), &args, timeout, &cancel, |_| {})
                .await
                .unwrap()
        }));
    }
    for r in runs {
        r.await.unwrap();
    }
}

fn run_agent(bin: &Path, dir: &Path, clips: &Path) {
    let (input, output, state) = (dir.join("in"), dir.join("out"), dir.join("state"));
    for d in [&input, &output, &state] {
        let _ = std::fs::remove_dir_all(d);
    }
    std::fs::create_dir_all(&input).unwrap();
    for entry in std::fs::read_dir(clips).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ts") {
            std::fs::copy(&path, input.join(path.file_name().unwrap())).unwrap();
        }
    }
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = '{}'\nworkers = 2\n[[watch]]\nsource = '{}'\noutput = '{}'\n\
             [readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
             [transcode]\npreset = \"veryfast\"\ncrf = 21\n\
             [captions]\nformats = [\"srt\", \"vtt\"]\ntool = \"ffmpeg\"\n",
            state.display(),
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::write(dir.join("agent.log"), log.as_bytes());
    assert!(out.status.success(), "{}: {log}", bin.display());
    for i in 1..=CLIPS {
        for ext in ["mp4", "srt", "vtt"] {
            let file = output.join(format!("news-{i}.{ext}"));
            let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0, "{} missing or empty; log:\n{log}", file.display());
        }
    }
    for line in log.lines().filter(|l| l.contains("stage times")) {
        if let Some(stages) = line.split("stages=").nth(1) {
            println!("    {stages}");
        }
    }
}

/// User + system seconds of this process's waited-for children (`/proc/self/stat`, in the
/// kernel's 100 Hz clock ticks).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 16 and 17 of the whole line (cutime, cstime) are 13 and 14 after `(comm) `.
    let ticks: f64 = fields[13].parse::<f64>().unwrap() + fields[14].parse::<f64>().unwrap();
    ticks / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
