//! Caption stage cost: the wall time of the caption stage (FFmpeg path, `.srt` + `.vtt`) as a
//! share of the transcode's, on the captioned fixtures (CEA-608 injected into H.264 and MPEG-2).
//!
//! Run with `cargo bench -p h264-agent --bench caption_cost`. The agent logs both stage times
//! on each "converted" line (JSON logs here); the target is under 10 %.

use h264_testkit::captions::CaptionedKind;

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
    std::fs::create_dir_all(&input).unwrap();
    let mut names = Vec::new();
    for (i, kind) in CaptionedKind::ALL.iter().enumerate() {
        let name = format!("cc-{i}.{}", kind.extension());
        kind.make(&input, &name);
        names.push((name, *kind));
    }
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = '{}'\nworkers = 1\n[[watch]]\nsource = '{}'\noutput = '{}'\n\
             [readiness]\nstable_for = \"0s\"\nmtime_grace = \"0s\"\n\
             [transcode]\npreset = \"veryfast\"\n\
             [captions]\nformats = [\"srt\", \"vtt\"]\ntool = \"ffmpeg\"\n\
             [logging]\nformat = \"json\"\n",
            state.display(),
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_h264-agent"))
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut transcode, mut captions, mut work) = (0.0, 0.0, 0.0);
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] != "converted" {
            continue;
        }
        let t = fields["transcode_secs"].as_f64().unwrap_or(0.0);
        let c = fields["captions_secs"].as_f64().unwrap_or(0.0);
        let w = fields["captions_work_secs"].as_f64().unwrap_or(0.0);
        let mode = fields["mode"].as_str().unwrap_or("?");
        let source = fields["source"].as_str().unwrap_or("?");
        let kind = names
            .iter()
            .find(|(n, _)| source.ends_with(n.as_str()))
            .map(|(_, k)| format!("{k:?}"))
            .unwrap_or_default();
        println!(
            "{kind:<10} {mode:<7} transcode {t:.3} s; caption stage added {c:.3} s ({:.1} %), \
             its own run {w:.3} s ({:.1} %, overlapping the transcode)",
            c / t * 100.0,
            w / t * 100.0
        );
        transcode += t;
        captions += c;
        work += w;
    }
    println!(
        "caption stage: added {captions:.3} s for {transcode:.3} s of transcode = {:.1} % \
         (target < 10 %); its own runs took {work:.3} s = {:.1} %",
        captions / transcode * 100.0,
        work / transcode * 100.0
    );
}
