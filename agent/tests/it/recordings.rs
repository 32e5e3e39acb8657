//! Recordings as real recorders write them, through the real binary and the real FFmpeg: what
//! converts (a cut last packet, duplicated audio timestamps, a data stream, a fragmented MP4
//! whose header claims more, one programme of a multiplex on two clocks, stray timestamps on a
//! higher rung of the retry ladder) and what is refused, with the words that say why
//! (truncated when asked, audio-only, data-only, scrambled, a programme that is not there).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_agent::transcode::Rung;
use h264_testkit::fixtures::Fixture;
use h264_testkit::otlp::{CollectedSpan, Collector};
use h264_testkit::probe::probe;
use h264_testkit::recordings::{self, stream_duration};
use h264_testkit::smtp::SmtpSink;

/// `BASE` with more lines in its `[readiness]` section.
fn with_readiness(extra: &str) -> String {
    BASE.replacen("[readiness]\n", &format!("[readiness]\n{extra}\n"), 1)
}

/// `BASE` with more lines in its `[transcode]` section.
fn with_transcode(extra: &str) -> String {
    BASE.replacen("[transcode]\n", &format!("[transcode]\n{extra}\n"), 1)
}

/// `sections` exporting traces to `collector`.
fn traced(sections: &str, collector: &Collector) -> String {
    format!(
        "{sections}\n[telemetry]\notlp_endpoint = \"{}\"\n",
        collector.endpoint()
    )
}

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// The output's video duration.
fn video_secs(path: &Path) -> f64 {
    stream_duration(path, "v:0").unwrap_or_else(|| panic!("no video in {}", path.display()))
}

/// Every span of the trace of the job of `name`, the `job` span first.
fn trace_of(spans: &[CollectedSpan], name: &str) -> Vec<CollectedSpan> {
    let job = spans
        .iter()
        .find(|s| {
            s.name == "job" && s.attributes.get("source.name").map(String::as_str) == Some(name)
        })
        .unwrap_or_else(|| panic!("no job trace for {name}: {spans:#?}"))
        .clone();
    let mut trace = vec![job.clone()];
    trace.extend(
        spans
            .iter()
            .filter(|s| s.trace_id == job.trace_id && s.span_id != job.span_id)
            .cloned(),
    );
    trace
}

fn span<'a>(trace: &'a [CollectedSpan], name: &str) -> &'a BTreeMap<String, String> {
    &trace
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} span in {trace:#?}"))
        .attributes
}

#[test]
fn a_transport_stream_cut_mid_packet_is_trimmed_converted_and_reported() {
    let collector = Collector::start();
    let sink = SmtpSink::started(None);
    let mail = format!(
        "\n[alerts.email]\nsmtp = \"{}\"\nfrom = \"agent@example.org\"\n\
         to = [\"ops@example.org\"]\ntimeout = \"5s\"\n",
        sink.url()
    );
    let s = Setup::new("", &(traced(BASE, &collector) + &mail));
    recordings::cut_last_packet(Fixture::H264Ts.path(), &s.input, "cut.ts", 57);
    let out = s.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}", out.status);
    let r = s.record("cut.ts").unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    let output = s.output_of("cut.ts");
    let source_video = stream_duration(Fixture::H264Ts.path(), "v:0").unwrap();
    assert!(
        near(video_secs(&output), source_video, 0.2),
        "what is left is converted, verified against the source"
    );
    // The warning: in the log, the alert (always logged) and the journal's events.
    assert!(
        log.contains("ended mid-packet: 57 bytes dropped"),
        "the log says so: {log}"
    );
    assert!(
        log.contains("converted with a warning"),
        "and the alert: {log}"
    );
    let events = h264_agent::journal::Journal::open(&s.state)
        .unwrap()
        .recent_events(10)
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("ended mid-packet: 57 bytes dropped")),
        "{events:#?}"
    );
    // The alert, e-mailed.
    let m = sink.mail_with_subject("converted with a warning");
    assert!(m.subject.ends_with("cut.ts"), "{}", m.subject);
    assert!(
        m.row("warning")
            .starts_with("ended mid-packet: 57 bytes dropped"),
        "{}",
        m.text()
    );
    assert_eq!(
        m.row("Event"),
        "file converted with a warning (file_warning)"
    );
    // And the trace.
    let trace = trace_of(&collector.spans(), "cut.ts");
    assert_eq!(span(&trace, "job")["source.trimmed_bytes"], "57");
    assert_eq!(span(&trace, "readiness")["source.trimmed_bytes"], "57");
    assert!(
        trace.iter().any(|s| s
            .events
            .iter()
            .any(|(name, _)| name.contains("ended mid-packet: 57 bytes dropped"))),
        "a span event: {trace:#?}"
    );
}

#[test]
fn partial_packet_fail_refuses_a_cut_transport_stream_as_truncated() {
    let s = Setup::new("", &with_readiness("partial_packet = \"fail\""));
    recordings::cut_last_packet(Fixture::H264Ts.path(), &s.input, "cut.ts", 57);
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    let r = s.record("cut.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.stage.as_deref(), Some("validate"));
    let error = r.error.unwrap();
    assert!(error.contains("truncated"), "{error}");
    assert!(error.contains("last 57 bytes"), "{error}");
    assert_eq!(r.attempts, 1, "not retried");
    assert!(s.output_files().is_empty());
}

#[test]
fn duplicated_audio_timestamps_are_no_damage_remuxed_or_encoded() {
    // Not one damage report allowed: the null muxer's complaints would have been 17 of them.
    for (transcode, mode) in [("", "remux"), ("remux = false", "encode")] {
        let sections = with_transcode(transcode).replacen(
            "[readiness]\n",
            "[readiness]\nmax_decode_errors = 0\n",
            1,
        );
        let s = Setup::new("", &sections);
        let ts = recordings::duplicate_audio_timestamps(&s.input, "splice.ts", 3.0);
        assert!(recordings::null_muxer_log(&ts).contains("non monotonically increasing dts"));
        let out = s.run_once();
        assert!(out.status.success(), "{mode}: exit status {:?}", out.status);
        let r = s.record("splice.ts").unwrap();
        assert_eq!(r.state, JobState::Succeeded, "{mode}: {r:?}");
        assert_eq!(r.mode.as_deref(), Some(mode));
        assert_eq!(r.rung, Rung::Standard.index(), "{mode}: the first rung");
        let info = probe(&s.output_of("splice.ts"));
        assert_eq!(info.audio.len(), 1);
        assert!(near(video_secs(&s.output_of("splice.ts")), 3.0, 0.2));
    }
}

#[test]
fn a_data_stream_longer_than_the_video_does_not_fail_a_correct_output() {
    let s = Setup::basic();
    let ts = recordings::data_stream_ts(&s.input, "scte.ts", 1.5, 2.2);
    let container = probe(&ts).duration;
    assert!(container > 2.0, "the container's claim: {container}");
    let out = s.run_once();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let r = s.record("scte.ts").unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    let output = s.output_of("scte.ts");
    assert!(
        near(video_secs(&output), 1.5, 0.1),
        "{}",
        video_secs(&output)
    );
    assert!(
        near(r.media_secs, 1.5, 0.1),
        "the video's duration is what was converted: {}",
        r.media_secs
    );
}

#[test]
fn a_fragmented_mp4_converts_to_its_full_playable_duration_not_its_headers_claim() {
    for (transcode, mode) in [("", "remux"), ("remux = false", "encode")] {
        let s = Setup::new("", &with_transcode(transcode));
        let mp4 = recordings::fragmented_mp4_claiming(&s.input, "live.mp4", 5.2, 21.4);
        assert!(near(probe(&mp4).duration, 21.4, 0.05));
        let out = s.run_once();
        assert!(out.status.success(), "{mode}: exit status {:?}", out.status);
        let r = s.record("live.mp4").unwrap();
        assert_eq!(r.state, JobState::Succeeded, "{mode}: {r:?}");
        assert_eq!(r.mode.as_deref(), Some(mode));
        let output = s.output_of("live.mp4");
        assert!(
            near(video_secs(&output), 5.2, 0.15),
            "{mode}: every frame: {}",
            video_secs(&output)
        );
        assert!(near(r.media_secs, 5.2, 0.15), "{mode}: {}", r.media_secs);
    }
}

/// Converts the two-programme multiplex with `program` (a `[[watch]]` line, or none) and
/// returns the output's video width, frame rate, audio stream count and video duration.
fn convert_multiplex(program: &str) -> (u32, f64, usize, f64) {
    let s = Setup::new(program, BASE);
    // The second programme's clock runs 5 s ahead: mixing them gives an 8 s output.
    recordings::two_programmes(&s.input, "mux.ts", 3.0, 5.0);
    let out = s.run_once();
    assert!(
        out.status.success(),
        "{program}: exit status {:?}",
        out.status
    );
    let r = s.record("mux.ts").unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{program}: {r:?}");
    let output = s.output_of("mux.ts");
    let info = probe(&output);
    let video = info.video.unwrap();
    (
        video.width,
        video.frame_rate.unwrap(),
        info.audio.len(),
        video_secs(&output),
    )
}

#[test]
fn one_programme_of_a_multiplex_with_its_own_audio_and_clock() {
    let (width, rate, audio, secs) = convert_multiplex("");
    assert_eq!(width, 320, "the first programme with video: News One");
    assert!(near(rate, 29.97, 0.05), "{rate}");
    assert_eq!(audio, 1, "its audio only");
    assert!(near(secs, 3.0, 0.2), "its own clock: {secs}");
    for program in ["program = \"sport two\"", "program = 202"] {
        let (width, rate, audio, secs) = convert_multiplex(program);
        assert_eq!(width, 352, "{program}: Sport Two");
        assert!(near(rate, 25.0, 0.05), "{program}: {rate}");
        assert_eq!(audio, 1, "{program}: its audio only");
        assert!(near(secs, 3.0, 0.2), "{program}: its own clock: {secs}");
    }
}

#[test]
fn a_programme_that_is_not_in_the_multiplex_is_refused_naming_those_that_are() {
    let s = Setup::new("program = \"Weather\"", BASE);
    recordings::two_programmes(&s.input, "mux.ts", 2.0, 5.0);
    assert_eq!(s.run_once().status.code(), Some(1));
    let r = s.record("mux.ts").unwrap();
    assert_eq!(r.state, JobState::Failed);
    let error = r.error.unwrap();
    assert!(error.contains("service \"Weather\""), "{error}");
    assert!(error.contains("101 \"News One\""), "{error}");
    assert!(error.contains("202 \"Sport Two\""), "{error}");
}

#[test]
fn audio_only_data_only_and_scrambled_streams_are_refused_with_those_words() {
    let s = Setup::basic();
    recordings::audio_only_ts(&s.input, "radio.ts", 2.0);
    recordings::data_only_ts(&s.input, "data.ts", 2.0);
    recordings::scrambled_ts(&s.input, "paytv.ts", 2.0);
    let out = s.run_once();
    assert_eq!(out.status.code(), Some(1));
    for (name, says) in [
        ("radio.ts", "audio-only"),
        ("data.ts", "data-only"),
        ("paytv.ts", "scrambled"),
    ] {
        let r = s.record(name).unwrap();
        assert_eq!(r.state, JobState::Failed, "{name}");
        assert_eq!(r.stage.as_deref(), Some("validate"), "{name}");
        let error = r.error.unwrap();
        assert!(error.starts_with(says), "{name}: {error}");
        assert_eq!(r.attempts, 1, "{name}: not retried");
    }
    let paytv = s.record("paytv.ts").unwrap().error.unwrap();
    assert!(paytv.contains("the video (PID"), "{paytv}");
    assert!(s.output_files().is_empty());
}

#[test]
fn stray_timestamps_climb_the_retry_ladder_and_the_rung_that_converted_is_recorded() {
    let collector = Collector::start();
    // max_attempts = 1: a climb is not a retry of the same thing, and is not limited by it.
    let sections = traced(
        &BASE.replace("max_attempts = 2", "max_attempts = 1"),
        &collector,
    );
    let s = Setup::new("", &sections);
    recordings::stray_video_timestamps(&s.input, "stray.ts", 3.0);
    // The daemon, so the retries run (they are requeued after the first attempt).
    let mut agent = s.spawn();
    let r = s.wait_state(
        "stray.ts",
        JobState::Succeeded,
        std::time::Duration::from_secs(90),
    );
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(r.rung, Rung::Retimed.index(), "{r:?}");
    assert_eq!(r.attempts, 3, "standard, tolerant, retimed");
    assert_eq!(
        r.mode.as_deref(),
        Some("encode"),
        "the retimed rung re-encodes"
    );
    let output = s.output_of("stray.ts");
    assert!(
        near(video_secs(&output), 3.0, 0.2),
        "{}",
        video_secs(&output)
    );
    // What `fleetctl agent errors` shows: the journal's events, newest first.
    let events = h264_agent::journal::Journal::open(&s.state)
        .unwrap()
        .recent_events(10)
        .unwrap();
    let said: Vec<(String, String)> = events
        .iter()
        .rev()
        .map(|e| (e.kind.clone(), e.message.clone()))
        .collect();
    assert_eq!(said.len(), 3, "{said:#?}");
    assert_eq!(said[0].0, "retrying");
    assert!(said[0].1.contains("[rung: standard]"), "{said:#?}");
    assert!(said[0].1.contains("climbs to rung `tolerant`"), "{said:#?}");
    assert!(
        said[0].1.contains("the video lasts"),
        "verification: {said:#?}"
    );
    assert_eq!(said[1].0, "retrying");
    assert!(said[1].1.contains("[rung: tolerant]"), "{said:#?}");
    assert!(said[1].1.contains("climbs to rung `retimed`"), "{said:#?}");
    assert_eq!(said[2].0, "converted");
    assert!(
        said[2].1.contains("converted on rung `retimed`"),
        "{said:#?}"
    );
    // The trace of each attempt names its rung.
    let spans = collector.spans();
    let rungs: Vec<&str> = spans
        .iter()
        .filter(|s| s.name == "job")
        .filter_map(|s| s.attributes.get("retry.rung").map(String::as_str))
        .collect();
    assert_eq!(rungs, ["standard", "tolerant", "retimed"], "{spans:#?}");
}

#[test]
fn a_file_no_rung_converts_fails_naming_every_rung() {
    // The retimed rung cannot rebuild what is not there: a duration tolerance no output meets.
    let sections = with_transcode("duration_tolerance = \"1ms\"")
        .replace("max_attempts = 2", "max_attempts = 1");
    let s = Setup::new("", &sections);
    recordings::stray_video_timestamps(&s.input, "stray.ts", 3.0);
    let mut agent = s.spawn();
    let r = s.wait_state(
        "stray.ts",
        JobState::Failed,
        std::time::Duration::from_secs(90),
    );
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(r.rung, Rung::Retimed.index());
    let error = r.error.unwrap();
    assert!(error.contains("[rung: retimed]"), "{error}");
    assert!(
        error.contains("no rung of the retry ladder (standard, tolerant, retimed) converted it"),
        "{error}"
    );
}

#[test]
fn damage_within_the_tolerance_converts_and_beyond_it_is_refused_as_corrupt() {
    let s = Setup::basic();
    recordings::damaged_ts(&s.input, "glitch.ts", 3.0, 2);
    recordings::damaged_ts(&s.input, "broken.ts", 3.0, 40);
    assert_eq!(s.run_once().status.code(), Some(1));
    let glitch = s.record("glitch.ts").unwrap();
    assert_eq!(glitch.state, JobState::Succeeded, "{glitch:?}");
    let broken = s.record("broken.ts").unwrap();
    assert_eq!(broken.state, JobState::Failed, "{broken:?}");
    assert_eq!(broken.stage.as_deref(), Some("validate"));
    let error = broken.error.unwrap();
    assert!(error.starts_with("corrupt: "), "{error}");
    assert!(
        error.contains("readiness.max_decode_errors = 10"),
        "{error}"
    );
    assert!(
        error.contains("Packet corrupt") || error.contains("damaged"),
        "{error}"
    );
    assert_eq!(broken.attempts, 1, "refused, not retried");
    assert_eq!(s.output_files(), vec!["glitch.mp4".to_string()]);
}
