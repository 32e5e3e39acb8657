//! The shadow runner on real media with the real FFmpeg: a recording production converted is
//! converted again with the candidate's settings into the shadow area only, compared and
//! reported; its folder (and its link to the source) is removed afterwards, the source and
//! the output folder are untouched; the disk guard's word holds shadow work back. A candidate
//! with sidecars runs its caption stage in the shadow area, and its sidecars are compared with
//! production's cue by cue. Every program a shadow job starts (the candidate's FFmpeg, its
//! caption stage, the comparison's FFmpeg and ffprobe) runs at the lowest priority (the idle
//! scheduling and I/O classes): observed by shell scripts put in front of the real FFmpeg and
//! ffprobe, which record the priority they were started at and exec the program.

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_agent::plumbing::priority::{self, Lowest};
use h264_agent::plumbing::procstat::{Stat, SCHED_IDLE};
use h264_agent::shadow::runner::Shadow;
use h264_agent::shadow::Production;
use h264_config::agent::CaptionTool;
use h264_config::AgentConfig;
use h264_testkit::captions::{captioned_h264_ts, extract_with_ffmpeg};
use h264_testkit::ffmpeg::{file_arg, require_ffmpeg, run_ffmpeg};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Observers in front of the real `ffmpeg` and `ffprobe` (in `dir`): each run appends its
/// program's name, its I/O class (`ionice -p`), whether its arguments name an SRT file (`srt`
/// or `-`) and its `/proc/PID/stat` to `log`, then execs the program with the same pid, so
/// that what is recorded is what the program runs at.
fn observed(dir: &Path, log: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).unwrap();
    let make = |program: &str| {
        let path = dir.join(program);
        let script = format!(
            "#!/bin/sh\nread -r stat < /proc/$$/stat\nkind=-\ncase \"$*\" in *srt*) kind=srt ;; esac\n\
             echo \"{program} $(ionice -p $$ | tr ' ' '_') $kind $stat\" >> '{}'\n\
             exec {program} \"$@\"\n",
            log.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    (make("ffmpeg"), make("ffprobe"))
}

/// One run `observed` recorded.
#[derive(Debug)]
struct Run {
    program: String,
    io: String,
    srt: bool,
    stat: Stat,
}

/// The runs `observed` recorded.
fn runs(log: &Path) -> Vec<Run> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut words = line.splitn(4, ' ');
            let mut word = || words.next().unwrap().to_owned();
            let (program, io, kind) = (word(), word(), word());
            let stat = Stat::parse(&word()).unwrap();
            Run {
                program,
                io,
                srt: kind == "srt",
                stat,
            }
        })
        .collect()
}

/// Every run in `log` ran at the lowest priority this host grants; the runs.
async fn all_lowest(log: &Path) -> Vec<Run> {
    let seen = runs(log);
    let lowest = Lowest::detect().await;
    for r in &seen {
        match lowest {
            Lowest::Idle => {
                assert_eq!(r.stat.policy, SCHED_IDLE, "{r:?}");
                assert_eq!(r.io, "idle", "{r:?}");
            }
            Lowest::Nice => assert_eq!(r.stat.nice, 19, "{r:?}"),
            Lowest::Unchanged => panic!("neither chrt --idle nor nice runs on this host"),
        }
    }
    seen
}

/// A captioned H.264 recording in `incoming/` and production's MP4 of it in `h264/`.
struct Published {
    incoming: PathBuf,
    output: PathBuf,
    source: PathBuf,
    mp4: PathBuf,
}

/// [`Published`] under `dir`, the MP4 encoded by libx264 `ultrafast` at `crf`.
fn published(dir: &Path, crf: u32) -> Published {
    let (incoming, output) = (dir.join("incoming"), dir.join("h264"));
    std::fs::create_dir_all(&output).unwrap();
    let source = captioned_h264_ts(&incoming, "news.ts").path;
    let mp4 = output.join("news.mp4");
    let crf = crf.to_string();
    let args = [
        "-v",
        "error",
        "-i",
        "SOURCE",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
    ]
    .into_iter()
    .chain(["-crf", &crf, "-c:a", "aac", "-f", "mp4", "OUT"])
    .map(|a| match a {
        "SOURCE" => file_arg(&source),
        "OUT" => file_arg(&mp4),
        a => a.into(),
    });
    run_ffmpeg(args);
    Published {
        incoming,
        output,
        source,
        mp4,
    }
}

#[tokio::test]
async fn a_shadow_job_converts_into_the_shadow_area_reports_and_cleans_up() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let Published {
        incoming,
        output,
        source,
        mp4: published,
    } = published(dir.path(), 23);
    let area = dir.path().join("state").join("shadow");
    let tracker = TaskTracker::new();
    let shadow = Shadow::new(area.clone(), tracker.clone(), CancellationToken::new());
    let mut reports = shadow.subscribe();
    let production = Production {
        file: "incoming/news.ts",
        source: &source,
        output: &published,
        encode_secs: 1.0,
        encode_cpu_secs: 0.5,
        generation: 1,
        sidecars: &[],
    };
    // Nothing to shadow yet, then the disk guard holds it: nothing happens.
    shadow.offer(&production);
    let mut candidate = AgentConfig::embedded_default();
    candidate.transcode.preset = "ultrafast".into();
    candidate.transcode.crf = 51;
    candidate.transcode.remux = false;
    let log = dir.path().join("priorities.log");
    (candidate.transcode.ffmpeg, candidate.transcode.ffprobe) =
        observed(&dir.path().join("bin"), &log);
    shadow.set_candidate(Some((7, 2, candidate, 1)));
    shadow.set_disk_ok(false);
    shadow.offer(&production);
    assert!(names(&area.join("work")).is_empty());

    shadow.set_disk_ok(true);
    shadow.offer(&production);
    let c = tokio::time::timeout(Duration::from_secs(120), reports.recv())
        .await
        .expect("a comparison within 2 minutes")
        .unwrap();
    assert_eq!(
        (c.rollout, c.candidate_generation, c.production_generation),
        (7, 2, 1)
    );
    assert_eq!(c.file, "incoming/news.ts");
    assert!(c.candidate_ok, "{c:?}");
    assert!(c.candidate_ssim < c.production_ssim, "{c:?}");
    assert!(c.candidate_bytes < c.production_bytes, "{c:?}");
    assert!(c.candidate_encode_secs > 0.0, "{c:?}");
    assert!(c.candidate_cpu_secs > 0.0, "{c:?}");
    assert_eq!(c.production_cpu_secs, 0.5, "{c:?}");
    assert!(c.cpu_ratio() > 0.0, "{c:?}");
    assert_eq!(c.production_cues, 3, "{c:?}");
    // The candidate's FFmpeg, the comparison's FFmpeg runs and every ffprobe ran at the
    // lowest priority this host grants.
    let seen = all_lowest(&log).await;
    for program in ["ffmpeg", "ffprobe"] {
        let n = seen.iter().filter(|r| r.program == program).count();
        assert!(n >= 2, "{program} ran {n} time(s): {seen:?}");
    }
    tracker.close();
    tokio::time::timeout(Duration::from_secs(30), tracker.wait())
        .await
        .unwrap();
    assert!(
        names(&area.join("work")).is_empty(),
        "{:?}",
        names(&area.join("work"))
    );
    assert_eq!(
        names(&output),
        ["news.mp4"],
        "nothing but production's output"
    );
    assert_eq!(names(&incoming), ["news.ts"], "the source is untouched");
    assert!(
        reports.try_recv().is_err(),
        "one comparison: the held offers were dropped"
    );
}

#[tokio::test]
async fn a_candidate_ffmpeg_that_fails_is_reported_as_the_candidates_failure() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let source = captioned_h264_ts(dir.path(), "bad.ts").path;
    let published = dir.path().join("bad.mp4");
    std::fs::copy(&source, &published).unwrap();
    let tracker = TaskTracker::new();
    let shadow = Shadow::new(
        dir.path().join("shadow"),
        tracker.clone(),
        CancellationToken::new(),
    );
    let mut reports = shadow.subscribe();
    let mut candidate = AgentConfig::embedded_default();
    candidate.transcode.pix_fmt = "no_such_pix_fmt".into();
    shadow.set_candidate(Some((1, 2, candidate, 1)));
    shadow.offer(&Production {
        file: "bad.ts",
        source: &source,
        output: &published,
        encode_secs: 1.0,
        encode_cpu_secs: 0.5,
        generation: 1,
        sidecars: &[],
    });
    let c = tokio::time::timeout(Duration::from_secs(60), reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!c.candidate_ok, "{c:?}");
    assert!(
        c.candidate_error.contains("FFmpeg"),
        "{}",
        c.candidate_error
    );
}

#[tokio::test]
async fn a_candidate_that_drops_the_mp4s_captions_keeps_its_sidecars_both_compared() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let Published {
        output,
        source,
        mp4: published,
        ..
    } = published(dir.path(), 30);
    // Production's sidecar, as FFmpeg writes it from the source.
    extract_with_ffmpeg(&source, &output.join("news.srt"));
    let area = dir.path().join("shadow");
    let tracker = TaskTracker::new();
    let shadow = Shadow::new(area.clone(), tracker.clone(), CancellationToken::new());
    let mut reports = shadow.subscribe();
    let mut candidate = AgentConfig::embedded_default();
    candidate.transcode.preset = "ultrafast".into();
    candidate.transcode.crf = 30;
    candidate.transcode.remux = false;
    candidate.captions.formats = vec!["srt".into()];
    candidate.captions.tool = CaptionTool::Ffmpeg;
    candidate.captions.embed = false;
    let log = dir.path().join("priorities.log");
    (candidate.transcode.ffmpeg, candidate.transcode.ffprobe) =
        observed(&dir.path().join("bin"), &log);
    shadow.set_candidate(Some((3, 2, candidate, 1)));
    let formats = ["srt".to_string()];
    shadow.offer(&Production {
        file: "incoming/news.ts",
        source: &source,
        output: &published,
        encode_secs: 1.0,
        encode_cpu_secs: 0.5,
        generation: 1,
        sidecars: &formats,
    });
    let c = tokio::time::timeout(Duration::from_secs(120), reports.recv())
        .await
        .expect("a comparison within 2 minutes")
        .unwrap();
    assert!(c.candidate_ok, "{c:?}");
    assert_eq!((c.production_cues, c.candidate_cues), (3, 0), "{c:?}");
    assert!(!c.cues_identical && !c.captions_identical(), "{c:?}");
    assert_eq!(c.sidecar_formats, "srt", "{c:?}");
    assert_eq!(
        (c.production_sidecar_cues, c.candidate_sidecar_cues),
        (3, 3),
        "{c:?}"
    );
    assert_eq!(c.sidecar_difference, "", "the sidecars are the same: {c:?}");
    assert!(!c.captions_present(), "none in the MP4: {c:?}");
    assert_eq!(c.production_layout, c.candidate_layout, "{c:?}");
    // The caption stage's programs too (its source reading runs in a task of its own).
    let seen = all_lowest(&log).await;
    assert!(
        seen.iter().any(|r| r.program == "ffmpeg" && r.srt),
        "{seen:?}"
    );
    tracker.close();
    tokio::time::timeout(Duration::from_secs(30), tracker.wait())
        .await
        .unwrap();
    assert_eq!(names(&output), ["news.mp4", "news.srt"]);
    assert!(names(&area.join("work")).is_empty());
}

#[tokio::test]
async fn a_task_spawned_in_shadow_work_keeps_its_priority() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let source = captioned_h264_ts(dir.path(), "news.ts").path;
    let log = dir.path().join("priorities.log");
    let (_, ffprobe) = observed(&dir.path().join("bin"), &log);
    let cancel = CancellationToken::new();
    let limit = Duration::from_secs(60);
    // The caption stage reads the source in a task of its own (`read_source_beside`).
    let read = priority::lowest(async {
        let plan = h264_agent::captions::plan(&ffprobe, &source, limit, &cancel)
            .await
            .unwrap();
        let (mut reading, _running) = h264_agent::captions::read_source_beside(
            ffprobe.clone(),
            source.clone(),
            plan,
            limit,
            limit,
            true,
            None,
            cancel.clone(),
        );
        reading.get().await
    })
    .await
    .unwrap();
    assert!(read.any(), "the source's cues were read");
    let seen = all_lowest(&log).await;
    assert!(seen.len() >= 2, "{seen:?}");
}
