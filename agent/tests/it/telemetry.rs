//! OpenTelemetry end to end with the real binary, the real FFmpeg and a collector stand-in that
//! speaks OTLP/gRPC on loopback: one trace per job with its stage spans in order and the
//! expected attributes, the error on a failed job's failing span, the Prometheus endpoint in
//! valid exposition format, and an unreachable collector that neither stops a conversion nor
//! holds up the shutdown.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Setup, BASE};
use h264_agent::journal::JobState;
use h264_testkit::exposition;
use h264_testkit::fixtures::Fixture;
use h264_testkit::otlp::{broken_parents, unreachable_endpoint, CollectedSpan, Collector};
use h264_testkit::wait::wait_for;
use nix::sys::signal::Signal;

/// The stages of a job, in the order they start.
const STAGES: [&str; 6] = [
    "readiness",
    "probe",
    "transcode",
    "verify",
    "captions",
    "publish",
];

/// An installation whose agent is called `id`.
fn setup_with_id(id: &str, sections: &str) -> Setup {
    let s = Setup::new("", sections);
    let text = std::fs::read_to_string(&s.config).unwrap().replacen(
        "[agent]\n",
        &format!("[agent]\nid = \"{id}\"\n"),
        1,
    );
    std::fs::write(&s.config, text).unwrap();
    s
}

/// The `job` span of the source named `name`, and every span of its trace.
fn job_trace(spans: &[CollectedSpan], name: &str) -> (CollectedSpan, Vec<CollectedSpan>) {
    let jobs: Vec<&CollectedSpan> = spans
        .iter()
        .filter(|s| {
            s.name == "job" && s.attributes.get("source.name").map(String::as_str) == Some(name)
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one job trace for {name}: {spans:#?}");
    let job = jobs[0].clone();
    let trace: Vec<CollectedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == job.trace_id)
        .cloned()
        .collect();
    (job, trace)
}

/// The stage spans of a trace, by start time.
fn stages(trace: &[CollectedSpan], job: &CollectedSpan) -> Vec<CollectedSpan> {
    let mut stages: Vec<CollectedSpan> = trace
        .iter()
        .filter(|s| s.span_id != job.span_id)
        .cloned()
        .collect();
    stages.sort_by_key(|s| s.start_ns);
    stages
}

fn number(attributes: &BTreeMap<String, String>, key: &str) -> f64 {
    attributes
        .get(key)
        .unwrap_or_else(|| panic!("no attribute {key} in {attributes:#?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn a_converted_file_is_one_trace_with_its_stages_in_order_and_their_facts() {
    let collector = Collector::start();
    let mut s = setup_with_id("trace-test", BASE);
    // The collector through the standard variable; a log level that lets no INFO line through
    // does not stop the spans, which the telemetry layer filters on its own.
    s.env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint()));
    s.env.push(("RUST_LOG".into(), "warn".into()));
    let source = Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "news.ts");
    let started = Instant::now();
    let out = s.run_once();
    eprintln!("--once with telemetry took {:?}", started.elapsed());
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert_eq!(s.record("news.ts").unwrap().state, JobState::Succeeded);

    let spans = collector.spans();
    let (job, trace) = job_trace(&spans, "news.ts");
    assert_eq!(broken_parents(&trace), Vec::<String>::new());
    assert_eq!(job.parent_span_id, "", "the job span is the trace's root");
    let stages = stages(&trace, &job);
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, STAGES, "stage spans by start time");
    for stage in &stages {
        assert_eq!(
            stage.parent_span_id, job.span_id,
            "{} is a child of job",
            stage.name
        );
        assert_eq!(
            stage.status_code, 0,
            "{}: {}",
            stage.name, stage.status_message
        );
        assert!(
            stage.start_ns >= job.start_ns && stage.end_ns <= job.end_ns,
            "{} lies within the job",
            stage.name
        );
    }

    let a = &job.attributes;
    assert_eq!(a["outcome"], "converted");
    assert_eq!(a["attempt"], "1");
    assert_eq!(a["mode"], "encode");
    assert_eq!(a["source.codec"], "mpeg2video");
    assert_eq!(a["output.codec"], "h264");
    assert!(a["source.path"].ends_with("news.ts"), "{a:#?}");
    assert!(a["output.path"].ends_with("news.mp4"), "{a:#?}");
    let source_size = std::fs::metadata(&source).unwrap().len();
    let output_size = std::fs::metadata(s.output_of("news.ts")).unwrap().len();
    assert_eq!(number(a, "source.size_bytes"), source_size as f64);
    assert_eq!(number(a, "output.size_bytes"), output_size as f64);
    assert!(
        (number(a, "media.duration_secs") - 3.0).abs() < 0.5,
        "{a:#?}"
    );
    assert!(number(a, "duration_secs") > 0.0);
    assert!(number(a, "speed") > 0.0);
    assert!(number(a, "readiness.wait_secs") >= 0.0);
    assert!(number(a, "queue.wait_secs") >= 0.0);
    assert_eq!(job.status_code, 0, "{}", job.status_message);
    assert!(
        job.events.iter().any(|(name, _)| name == "converted"),
        "the job's log lines are its events: {:?}",
        job.events
    );

    let by = |name: &str| stages.iter().find(|s| s.name == name).unwrap();
    let readiness = &by("readiness").attributes;
    assert_eq!(readiness["video.codec"], "mpeg2video");
    assert_eq!(readiness["video.interlaced"], "true");
    let transcode = &by("transcode").attributes;
    assert_eq!(transcode["mode"], "encode");
    assert_eq!(transcode["deinterlace"], "true");
    assert!(number(transcode, "speed") > 0.0);
    assert!(number(transcode, "ffmpeg.speed") > 0.0, "{transcode:#?}");
    assert_eq!(by("verify").attributes["output.codec"], "h264");
    assert_eq!(
        by("captions").attributes["captions.outcome"],
        "not requested"
    );
    assert_eq!(
        number(&by("publish").attributes, "output.size_bytes"),
        output_size as f64
    );

    let r = &job.resource;
    assert_eq!(r["service.name"], "h264-agent");
    assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["agent.id"], "trace-test");
    assert!(!r["host.name"].is_empty());
    assert!(
        collector.metric_requests() >= 1,
        "the metrics go over OTLP too, flushed at exit"
    );
}

#[test]
fn a_failed_file_carries_its_error_on_the_failing_span() {
    let collector = Collector::start();
    let config = format!(
        "{}\n[telemetry]\notlp_endpoint = \"{}\"\n",
        // An x264 tune that does not exist: FFmpeg fails as it opens the encoder.
        BASE.replace(
            "max_attempts = 2",
            "max_attempts = 1\nlocal_ffmpeg_args = [\"-tune\", \"nonsense\"]"
        ),
        collector.endpoint()
    );
    // The collector from the config file this time; and a recording cut off mid-packet, caught
    // by the whole-file probe.
    let s = setup_with_id("fail-test", &config);
    Fixture::Mpeg2InterlacedTs.copy_to(&s.input, "bad-tune.ts");
    let out = s.run_once();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed file makes --once exit 1"
    );
    let truncated = setup_with_id(
        "fail-test",
        &format!(
            "{}\n[telemetry]\notlp_endpoint = \"{}\"\n",
            BASE.replacen(
                "[readiness]\n",
                "[readiness]\npartial_packet = \"fail\"\n",
                1
            ),
            collector.endpoint()
        ),
    );
    Fixture::TruncatedTs.copy_to(&truncated.input, "cut.ts");
    assert_eq!(truncated.run_once().status.code(), Some(1));

    let spans = collector.spans();
    // FFmpeg's failure: on the transcode span, with its stderr tail.
    let (job, trace) = job_trace(&spans, "bad-tune.ts");
    assert_eq!(broken_parents(&trace), Vec::<String>::new());
    let stages = stages(&trace, &job);
    let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
    // The probe beside the transcode is stopped when the transcode fails.
    assert_eq!(names, ["readiness", "probe", "transcode"], "{stages:#?}");
    let transcode = stages.iter().find(|s| s.name == "transcode").unwrap();
    assert_eq!(transcode.status_code, 2, "{transcode:#?}");
    assert!(
        transcode.status_message.contains("FFmpeg failed"),
        "{}",
        transcode.status_message
    );
    let tail = &transcode.attributes["ffmpeg.stderr_tail"];
    assert!(tail.contains("nonsense"), "the stderr tail: {tail}");
    assert!(transcode.attributes.contains_key("ffmpeg.exit_status"));
    for ok in stages.iter().filter(|s| s.name != "transcode") {
        assert_eq!(ok.status_code, 0, "{}", ok.name);
    }
    assert_eq!(job.status_code, 2, "the job failed too");
    assert!(
        job.status_message.contains("FFmpeg failed"),
        "{}",
        job.status_message
    );
    assert_eq!(job.attributes["outcome"], "failed");
    assert_eq!(job.attributes["failed.stage"], "transcode");
    assert_eq!(job.attributes["attempt"], "1");
    assert!(
        job.events
            .iter()
            .any(|(name, _)| name.contains("conversion failed")),
        "{:?}",
        job.events
    );

    // A truncated recording (refused as asked, `partial_packet = "fail"`): the readiness stage
    // fails, before any transcode.
    let (job, trace) = job_trace(&spans, "cut.ts");
    assert_eq!(broken_parents(&trace), Vec::<String>::new());
    let readiness = trace.iter().find(|s| s.name == "readiness").unwrap();
    assert_eq!(readiness.status_code, 2, "{readiness:#?}");
    assert!(
        readiness.status_message.contains("truncated"),
        "{}",
        readiness.status_message
    );
    assert!(
        !trace.iter().any(|s| s.name == "transcode"),
        "no encode is spent on it"
    );
    assert_eq!(job.status_code, 2);
    assert_eq!(job.attributes["outcome"], "failed");
    assert_eq!(job.attributes["failed.stage"], "validate");
    assert!(
        !trace.iter().any(|s| s.name == "publish"),
        "nothing is published from a damaged recording"
    );
}

/// `GET path` on `addr`; the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn the_metrics_endpoint_serves_every_agent_metric_in_valid_exposition_format() {
    let mut s = Setup::new(
        "",
        &format!("{BASE}\n[telemetry]\nmetrics_listen = \"127.0.0.1:0\"\n"),
    );
    // Exporting too (to a collector that is down): the spans it drops are a metric as well.
    s.env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), unreachable_endpoint()));
    let mut agent = s.spawn();
    let addr = wait_for(
        "the agent to log its metrics address",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let log = agent.log();
            let at = log.find("metrics on http://")? + "metrics on http://".len();
            let end = log[at..].find("/metrics")?;
            Some(log[at..at + end].to_owned())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", agent.log()));

    let source = Fixture::H264Mp4.copy_to(&s.input, "clip.mp4");
    Fixture::TextAsVideo.copy_to(&s.input, "notes.ts");
    s.wait_state("clip.mp4", JobState::Succeeded, Duration::from_secs(60));
    s.wait_state("notes.ts", JobState::Failed, Duration::from_secs(60));
    // The journal records a job's end just before the job leaves the job map.
    let m = wait_for(
        "both jobs to end in the metrics",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let (status, body) = http_get(&addr, "/metrics");
            assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
            let m = exposition::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
            (m.value("h264_jobs_total", &[("outcome", "failed")]) == Some(1.0)
                && m.value("h264_jobs_running", &[]) == Some(0.0))
            .then_some((m, body))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", http_get(&addr, "/metrics").1));
    let (m, body) = m;
    eprintln!("--- /metrics ---\n{body}");

    for (family, kind) in [
        ("h264_jobs_total", "counter"),
        ("h264_job_duration_seconds", "histogram"),
        ("h264_input_bytes_total", "counter"),
        ("h264_output_bytes_total", "counter"),
        ("h264_queue_depth", "gauge"),
        ("h264_jobs_running", "gauge"),
        ("h264_jobs_waiting", "gauge"),
        ("h264_disk_free_bytes", "gauge"),
        ("h264_disk_total_bytes", "gauge"),
        ("h264_alert_queue_depth", "gauge"),
        ("h264_telemetry_spans_dropped_total", "counter"),
    ] {
        assert_eq!(
            m.types.get(family).map(String::as_str),
            Some(kind),
            "{family}\n{body}"
        );
    }
    assert_eq!(
        m.value("h264_jobs_total", &[("outcome", "converted")]),
        Some(1.0)
    );
    assert_eq!(
        m.value("h264_jobs_total", &[("outcome", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "h264_job_duration_seconds_count",
            &[("outcome", "converted")]
        ),
        Some(1.0)
    );
    let took = m
        .value("h264_job_duration_seconds_sum", &[("outcome", "converted")])
        .unwrap();
    assert!(took > 0.0 && took < 60.0, "{took}");
    let source_size = std::fs::metadata(&source).unwrap().len() as f64;
    let output_size = std::fs::metadata(s.output_of("clip.mp4")).unwrap().len() as f64;
    assert_eq!(m.value("h264_input_bytes_total", &[]), Some(source_size));
    assert_eq!(m.value("h264_output_bytes_total", &[]), Some(output_size));
    assert_eq!(m.value("h264_queue_depth", &[]), Some(0.0));
    assert_eq!(m.value("h264_jobs_waiting", &[]), Some(0.0));
    assert_eq!(m.value("h264_alert_queue_depth", &[]), Some(0.0));
    let volumes = m.named("h264_disk_free_bytes");
    assert!(!volumes.is_empty(), "{body}");
    for v in volumes {
        let volume = &v.labels["volume"];
        let total = m
            .value("h264_disk_total_bytes", &[("volume", volume)])
            .unwrap();
        assert!(
            v.value > 0.0 && v.value <= total,
            "{volume}: {} of {total}",
            v.value
        );
    }
    assert_eq!(http_get(&addr, "/nothing").0, "HTTP/1.1 404 Not Found");

    agent.signal(Signal::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn with_the_collector_down_files_convert_and_the_agent_stops_promptly() {
    let mut s = Setup::basic();
    s.env
        .push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), unreachable_endpoint()));
    let mut agent = s.spawn();
    Fixture::H264Mp4.copy_to(&s.input, "clip.mp4");
    s.wait_state("clip.mp4", JobState::Succeeded, Duration::from_secs(60));
    let stopping = Instant::now();
    agent.signal(Signal::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(15));
    let took = stopping.elapsed();
    eprintln!("stopped {took:?} after SIGTERM with the collector down");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "the shutdown waited {took:?} for a collector that is down"
    );
}

#[test]
fn a_bad_endpoint_in_the_environment_is_a_configuration_error() {
    let mut s = Setup::basic();
    s.env.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        "collector:4317".into(),
    ));
    let out = s.run_daemon_to_exit(Duration::from_secs(15));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT: `collector:4317` is not an http:// address"),
        "{stderr}"
    );
}
