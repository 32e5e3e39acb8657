//! A hung FFmpeg, for real: FFmpeg reading a named pipe that no one writes blocks in `open` and
//! reports no progress. The transcode stage must kill it after the stall timeout and reap it.

use std::time::{Duration, Instant};

use h264_agent::transcode::{arguments, run, Plan, TranscodeError};
use h264_config::agent::Transcode;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_hung_ffmpeg_is_killed_after_the_stall_timeout() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("never-written.ts");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = dir.path().join(".out.mp4.h264create-tmp");
    let cfg = Transcode::default();
    let args = arguments(&fifo, &out, Plan::Encode { deinterlace: false }, &cfg);
    let started = Instant::now();
    let result = run(
        &cfg.ffmpeg,
        &args,
        Duration::from_secs(2),
        &CancellationToken::new(),
        |_| {},
    )
    .await;
    assert!(
        matches!(result, Err(TranscodeError::Stalled { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait forever"
    );
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("stall_timeout"),
        "the error names the setting: {msg}"
    );
    let leftovers = ffmpeg_reading(&fifo);
    assert!(leftovers.is_empty(), "FFmpeg was reaped: {leftovers:?}");
}

#[tokio::test]
async fn cancelling_stops_ffmpeg_at_once() {
    h264_testkit::ffmpeg::require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.ts");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = dir.path().join(".out.mp4.h264create-tmp");
    let cfg = Transcode::default();
    let args = arguments(&fifo, &out, Plan::Encode { deinterlace: false }, &cfg);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let result = run(
        &cfg.ffmpeg,
        &args,
        Duration::from_secs(600),
        &cancel,
        |_| {},
    )
    .await;
    assert!(
        matches!(result, Err(TranscodeError::Cancelled)),
        "{result:?}"
    );
    assert!(ffmpeg_reading(&fifo).is_empty(), "FFmpeg was reaped");
}

/// This process's children (live or zombie) whose command line names `input`: tests run in
/// parallel threads, so each looks only at its own FFmpeg.
fn ffmpeg_reading(input: &std::path::Path) -> Vec<u32> {
    let needle = input.to_string_lossy().into_owned();
    h264_testkit::process::descendants_of(std::process::id())
        .into_iter()
        .filter(|pid| {
            h264_testkit::process::cmdline(*pid)
                .is_some_and(|args| args.iter().any(|a| a.contains(&needle)))
        })
        .collect()
}
