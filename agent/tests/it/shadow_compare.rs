//! The shadow comparison on real media: a captioned H.264 recording (CEA-608 in its SEI)
//! converted by FFmpeg the way production does, and by candidates (a slightly different CRF,
//! `crf = 51`, captions dropped), compared with the agent's own code: SSIM and PSNR against
//! the decoded source through FFmpeg's filters, cues cue by cue, layouts and sizes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_agent::shadow::compare::{compare, cues, layout, same_cues, Pair, Tools};
use h264_agent::shadow::quality::{self, Sampling};
use h264_testkit::captions::captioned_h264_ts;
use h264_testkit::ffmpeg::{file_arg, require_ffmpeg, run_ffmpeg};
use tokio_util::sync::CancellationToken;

fn tools() -> Tools {
    require_ffmpeg();
    Tools {
        ffmpeg: "ffmpeg".into(),
        ffprobe: "ffprobe".into(),
        probe_timeout: Duration::from_secs(60),
    }
}

/// `source` converted to MP4 as production does (libx264 ultrafast, AAC), at `crf`, with
/// `extra` output options.
fn convert(source: &Path, dir: &Path, name: &str, crf: u8, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args: Vec<std::ffi::OsString> =
        vec!["-v".into(), "error".into(), "-y".into(), "-i".into()];
    args.push(file_arg(source));
    for a in ["-c:v", "libx264", "-preset", "ultrafast", "-crf"] {
        args.push(a.into());
    }
    args.push(crf.to_string().into());
    for a in [
        "-fps_mode:v",
        "vfr",
        "-enc_time_base:v",
        "-1",
        "-c:a",
        "aac",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|a| a.into()));
    args.extend(["-f".into(), "mp4".into(), file_arg(&out)]);
    run_ffmpeg(args);
    out
}

struct Media {
    _dir: tempfile::TempDir,
    source: PathBuf,
    production: PathBuf,
    near: PathBuf,
    crf51: PathBuf,
    no_captions: PathBuf,
}

fn media() -> Media {
    let dir = tempfile::tempdir().unwrap();
    let source = captioned_h264_ts(dir.path(), "news.ts").path;
    let production = convert(&source, dir.path(), "production.mp4", 23, &[]);
    let near = convert(&source, dir.path(), "near.mp4", 24, &[]);
    let crf51 = convert(&source, dir.path(), "crf51.mp4", 51, &[]);
    let no_captions = convert(&source, dir.path(), "nocc.mp4", 23, &["-a53cc", "0"]);
    Media {
        _dir: dir,
        source,
        production,
        near,
        crf51,
        no_captions,
    }
}

async fn pair(m: &Media, candidate: &Path) -> h264_agent::shadow::Comparison {
    let p = Pair {
        source: &m.source,
        production: &m.production,
        candidate,
        encode_secs: (1.0, 1.25),
        cpu_secs: (2.0, 2.2),
    };
    compare(&tools(), &p, Sampling::default(), &CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_near_candidate_matches_and_crf_51_or_lost_captions_show() {
    let m = media();
    let near = pair(&m, &m.near).await;
    assert!(near.candidate_ok);
    assert!(near.production_ssim > 0.95, "{near:?}");
    assert!(near.candidate_ssim > 0.95, "{near:?}");
    assert!(
        (near.candidate_ssim - near.production_ssim).abs() < 0.02,
        "{near:?}"
    );
    assert!(
        near.production_psnr > 30.0 && near.candidate_psnr > 30.0,
        "{near:?}"
    );
    assert_eq!(near.production_cues, 3, "{near:?}");
    assert!(near.cues_identical, "{near:?}");
    assert_eq!(near.production_layout, near.candidate_layout);
    assert!(near.production_layout.starts_with("h264 "), "{near:?}");
    assert!(near.production_layout.contains("aac"), "{near:?}");
    assert!(
        (near.production_secs - near.candidate_secs).abs() < 0.1,
        "{near:?}"
    );
    assert!(near.media_secs > 4.0, "{near:?}");
    assert_eq!(near.candidate_encode_secs, 1.25);
    assert!((near.cpu_ratio() - 1.1).abs() < 1e-9, "{near:?}");

    let crf51 = pair(&m, &m.crf51).await;
    assert!(
        crf51.candidate_ssim < 0.9,
        "crf 51 is visibly worse: {crf51:?}"
    );
    assert!(
        crf51.candidate_ssim < crf51.production_ssim - 0.05,
        "{crf51:?}"
    );
    assert!(crf51.candidate_psnr < crf51.production_psnr, "{crf51:?}");
    assert!(crf51.candidate_bytes < crf51.production_bytes, "{crf51:?}");

    let lost = pair(&m, &m.no_captions).await;
    assert_eq!(lost.candidate_cues, 0, "{lost:?}");
    assert!(!lost.cues_identical);
    assert!(
        lost.caption_difference.contains("CC1"),
        "{}",
        lost.caption_difference
    );
    assert!(
        lost.caption_difference.contains("HELLO FROM H264CREATE"),
        "{}",
        lost.caption_difference
    );
}

#[tokio::test]
async fn quality_of_a_file_against_itself_is_perfect_and_sampling_covers_long_files() {
    let m = media();
    let t = tools();
    let l = layout(&t, &m.production, &CancellationToken::new())
        .await
        .unwrap();
    let q = quality::measure(
        &t,
        &m.production,
        &m.production,
        l.duration,
        l.size,
        Sampling {
            segments: 2,
            secs: 1.0,
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(q.ssim > 0.999, "{q:?}");
    assert_eq!(q.psnr, quality::MAX_PSNR, "{q:?}");
    let c = cues(&t, &m.production, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(c.0.len(), 3);
    assert!(same_cues(&c, &c).is_ok());
}
