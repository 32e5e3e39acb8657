//! Each recording of `h264_testkit::recordings` shows the phenomenon it stands for.

use h264_testkit::fixtures::Fixture;
use h264_testkit::probe::probe;
use h264_testkit::recordings::{self, PROGRAMMES};

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn a_cut_last_packet_leaves_57_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::metadata(Fixture::H264Ts.path()).unwrap().len();
    let cut = recordings::cut_last_packet(Fixture::H264Ts.path(), dir.path(), "cut.ts", 57);
    let len = std::fs::metadata(&cut).unwrap().len();
    assert_eq!(len, full - 188 + 57);
    assert_eq!(len % 188, 57);
}

#[test]
fn duplicated_audio_timestamps_make_the_null_muxer_complain() {
    let dir = tempfile::tempdir().unwrap();
    let ts = recordings::duplicate_audio_timestamps(dir.path(), "splice.ts", 3.0);
    let log = recordings::null_muxer_log(&ts);
    assert!(
        log.contains("non monotonically increasing dts"),
        "the phenomenon: {log}"
    );
}

#[test]
fn a_data_stream_makes_the_container_longer_than_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let ts = recordings::data_stream_ts(dir.path(), "scte.ts", 1.5, 2.2);
    let info = probe(&ts);
    let video = recordings::stream_duration(&ts, "v:0").unwrap();
    assert!(near(video, 1.5, 0.1), "video {video}");
    assert!(
        info.duration > video + 0.5,
        "container {} video {video}",
        info.duration
    );
    assert!(info.stream_count >= 3, "video, audio and data: {info:?}");
}

#[test]
fn two_programmes_on_two_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let ts = recordings::two_programmes(dir.path(), "mux.ts", 2.0, 5.0);
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_programs", "-of", "json"])
        .arg(&ts)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let programs = json["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2);
    for (p, (number, name)) in programs.iter().zip(PROGRAMMES) {
        assert_eq!(p["program_num"], number);
        assert_eq!(p["tags"]["service_name"], name);
    }
    let start = |p: &serde_json::Value| {
        p["streams"][0]["start_time"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let gap = start(&programs[1]) - start(&programs[0]);
    assert!(
        near(gap, 5.0, 0.2),
        "the second clock runs 5 s ahead: {gap}"
    );
}

#[test]
fn a_fragmented_mp4_claims_more_than_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = recordings::fragmented_mp4_claiming(dir.path(), "live.mp4", 5.2, 21.4);
    let info = probe(&mp4);
    assert!(
        near(info.duration, 21.4, 0.05),
        "the header's claim: {}",
        info.duration
    );
    let claimed = recordings::stream_duration(&mp4, "v:0").unwrap();
    assert!(
        near(claimed, 21.4, 0.05),
        "the track claims it too: {claimed}"
    );
}

#[test]
fn scrambled_video_packets_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let ts = recordings::scrambled_ts(dir.path(), "paytv.ts", 2.0);
    let bytes = std::fs::read(&ts).unwrap();
    let scrambled = bytes
        .chunks_exact(188)
        .filter(|p| p[0] == 0x47 && p[3] >> 6 != 0)
        .count();
    assert!(scrambled > 50, "{scrambled} scrambled packets");
}

#[test]
fn audio_only_and_data_only_streams() {
    let dir = tempfile::tempdir().unwrap();
    let radio = probe(&recordings::audio_only_ts(dir.path(), "radio.ts", 2.0));
    assert!(radio.video.is_none());
    assert_eq!(radio.audio.len(), 1);
    let data = probe(&recordings::data_only_ts(dir.path(), "data.ts", 2.0));
    assert!(data.video.is_none() && data.audio.is_empty());
    assert_eq!(data.stream_count, 1);
}
