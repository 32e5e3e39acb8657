//! The cost of the cue-for-cue caption check, against the transcode alone.
//!
//! Run with `cargo bench -p h264-agent --bench caption_check` (`CAPTION_CHECK_SECS=60` for a
//! longer clip). It makes a 1920x1080 interlaced H.264 MPEG-TS clip at 29.97 frames/s carrying
//! CC1 and CC3 captions (a new cue every two seconds on each, 20 `cc_data` triples a frame as
//! ATSC sends), then times, one after the other on an otherwise idle machine:
//!
//! - **transcode**: FFmpeg with the agent's own arguments for it (libx264 `veryfast`, CRF 21,
//!   `bwdif` deinterlacing, AAC), as [`h264_agent::transcode::arguments`] and
//!   [`h264_agent::captions::output_arguments`] make them;
//! - **source read**: [`h264_agent::captions::read_source`] on the clip (the quick caption probe,
//!   then every frame's caption bytes, read from the transport stream without decoding a picture
//!   where it can, through ffprobe and FFmpeg's decoder otherwise, and the CC1/CC3 decoding).
//!   The agent runs it beside the transcode, so it costs CPU, not wall time, when a core is free;
//! - **output check**: [`h264_agent::captions::verify_output`] on the transcode's MP4 (its
//!   caption bytes read from the H.264 bitstream without decoding, and the comparison), which the
//!   agent runs after the transcode: wall time added to every re-encoded captioned job.
//!
//! It prints each time and its ratio to the transcode's.

use std::path::Path;
use std::time::{Duration, Instant};

use h264_agent::captions::{output_arguments, plan, read_source, verify_output};
use h264_agent::transcode::{arguments, plan as transcode_plan, run, Plan};
use h264_config::agent::Transcode;
use h264_testkit::captions::{captioned_with, Captioning, Cue};
use tokio_util::sync::CancellationToken;

fn cues(frames: u32, text: &str, offset: u32) -> Vec<Cue> {
    (0..frames / 60 - 1)
        .map(|k| Cue {
            text: format!("{text} {k}"),
            start_frame: k * 60 + 30 + offset,
            end_frame: k * 60 + 52 + offset,
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    h264_testkit::ffmpeg::require_ffmpeg();
    let secs: u32 = std::env::var("CAPTION_CHECK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let frames = secs * 30;
    let dir = tempfile::tempdir().unwrap();
    let made = Instant::now();
    let clip = captioned_with(
        dir.path(),
        "clip.ts",
        &Captioning {
            cc1: cues(frames, "CAPTION ON CC1 NUMBER", 0),
            cc3: cues(frames, "PISTA EN CC3 NUMERO", 4),
            frames,
            interlaced: true,
            atsc_cc_count: true,
            fast_frames: None,
            size: "1920x1080".into(),
        },
    );
    println!(
        "clip: {secs} s of 1920x1080i H.264 with CC1 and CC3 ({:.1} s to make)",
        made.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(measure(&clip.path, &dir.path().join("out.mp4")));
}

async fn measure(source: &Path, output: &Path) {
    let cancel = CancellationToken::new();
    let cfg = Transcode::default();
    let ffprobe = Path::new("ffprobe");
    let timeout = Duration::from_secs(600);
    let info = h264_agent::probe::probe(ffprobe, source, timeout, &cancel)
        .await
        .unwrap();
    let captions = plan(ffprobe, source, timeout, &cancel).await.unwrap();
    let mode = transcode_plan(&info, &cfg);
    let args = output_arguments(
        arguments(source, output, mode, &cfg),
        &captions,
        matches!(mode, Plan::Encode { .. }),
        true,
    );
    let started = Instant::now();
    run(Path::new("ffmpeg"), &args, timeout, &cancel, |_| {})
        .await
        .unwrap();
    let transcode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let src = read_source(ffprobe, source, &captions, timeout, timeout, &cancel)
        .await
        .unwrap();
    let source_read = started.elapsed().as_secs_f64();
    let started = Instant::now();
    verify_output(
        Path::new("ffmpeg"),
        ffprobe,
        output,
        &src,
        0.5,
        timeout,
        timeout,
        &cancel,
    )
    .await
    .unwrap();
    let output_check = started.elapsed().as_secs_f64();
    println!(
        "transcode ({}): {transcode:.2} s",
        if matches!(mode, Plan::Encode { deinterlace: true }) {
            "encode, deinterlaced"
        } else {
            mode.mode()
        }
    );
    println!(
        "source read: {source_read:.2} s ({:.1} % of the transcode; {} CC1 and {} CC3 cues; \
         beside the transcode)",
        source_read / transcode * 100.0,
        src.cc1.len(),
        src.cc3.len()
    );
    println!(
        "output check: {output_check:.2} s ({:.1} % of the transcode; added after it)",
        output_check / transcode * 100.0
    );
    println!(
        "check in all: {:.2} s ({:.1} % of the transcode)",
        source_read + output_check,
        (source_read + output_check) / transcode * 100.0
    );
}
