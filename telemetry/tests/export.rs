//! Spans really travel over OTLP/gRPC to a collector stand-in on loopback, with their parents,
//! resource and attributes; a collector that is down costs nothing but dropped, counted spans.

use std::time::{Duration, Instant};

use h264_telemetry::{propagate, Settings, Telemetry};
use h264_testkit::otlp::{broken_parents, unreachable_endpoint, Collector};
use tracing_subscriber::layer::SubscriberExt;

fn settings(endpoint: String) -> Settings {
    let mut s = Settings::new("h264-test", "9.9.9").with_resource("agent.id", "studio-1");
    s.otlp_endpoint = Some(endpoint);
    s
}

#[tokio::test]
async fn spans_arrive_at_the_collector_with_parents_resource_and_attributes() {
    let collector = Collector::start();
    let t = Telemetry::init(settings(collector.endpoint()), false).unwrap();
    let subscriber = tracing_subscriber::registry().with(t.layer().unwrap());
    let guard = tracing::subscriber::set_default(subscriber);
    let traceparent = {
        let root = tracing::info_span!(target: "h264_test", "rollout", rollout.id = 7);
        let _r = root.enter();
        let child = tracing::info_span!(target: "h264_test", "push", agents = 2);
        let _c = child.enter();
        tracing::error!(target: "h264_test", "push failed: agent gone");
        propagate::current_traceparent()
    };
    // A span in "another process": continues the trace from the traceparent string.
    {
        let remote = tracing::info_span!(target: "h264_test", "apply");
        assert!(propagate::set_parent_from_traceparent(
            &remote,
            &traceparent
        ));
        let _a = remote.enter();
    }
    // Spans of other crates (the exporter's own gRPC stack, say) are not exported.
    drop(tracing::info_span!(target: "tonic::transport", "noise").entered());
    drop(guard);
    t.shutdown(Duration::from_secs(5)).await;

    let spans = collector.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 3, "spans received: {names:?}");
    assert!(
        spans.iter().all(|s| s.trace_id == spans[0].trace_id),
        "{spans:#?}"
    );
    assert_eq!(broken_parents(&spans), Vec::<String>::new());
    let by = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by("push").parent_span_id, by("rollout").span_id);
    assert_eq!(by("apply").parent_span_id, by("push").span_id);
    assert_eq!(by("rollout").parent_span_id, "");
    assert_eq!(by("rollout").attributes["rollout.id"], "7");
    assert_eq!(
        by("push").status_code,
        2,
        "an error event marks the span failed"
    );
    let r = &by("rollout").resource;
    assert_eq!(r["service.name"], "h264-test");
    assert_eq!(r["service.version"], "9.9.9");
    assert_eq!(r["agent.id"], "studio-1");
    assert!(r.contains_key("host.name"));
}

#[tokio::test]
async fn a_collector_that_is_down_drops_and_counts_spans_and_shutdown_is_bounded() {
    let t = Telemetry::init(settings(unreachable_endpoint()), true).unwrap();
    let subscriber = tracing_subscriber::registry().with(t.layer().unwrap());
    let guard = tracing::subscriber::set_default(subscriber);
    let started = Instant::now();
    for i in 0..5_000 {
        drop(tracing::info_span!(target: "h264_test", "job", i).entered());
    }
    let making = started.elapsed();
    drop(guard);
    let t0 = Instant::now();
    let dropped_before = t.spans_dropped();
    t.shutdown(Duration::from_secs(2)).await;
    // Bounded: the flush gives up after its timeout (twice at most: spans, then metrics).
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t0.elapsed()
    );
    // The queue holds 2,048 spans: the rest were dropped at once, not waited for.
    assert!(
        dropped_before >= 5_000 - 2_048 - 512,
        "dropped {dropped_before} of 5000 (making them took {making:?})"
    );
}

/// A minimal OTLP/HTTP receiver: answers every POST with 200 and keeps (path, body).
async fn http_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    buf.drain(..head_end + len);
                    keep.lock().unwrap().push((path, body));
                    let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_travel_over_otlp_http_too() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    let (endpoint, got) = http_receiver().await;
    let mut s = settings(endpoint);
    s.otlp_protocol = h264_telemetry::Protocol::HttpProtobuf;
    let t = Telemetry::init(s, false).unwrap();
    let subscriber = tracing_subscriber::registry().with(t.layer().unwrap());
    let guard = tracing::subscriber::set_default(subscriber);
    drop(tracing::info_span!(target: "h264_test", "job", file = "news at 6.ts").entered());
    drop(guard);
    t.meter("h264-test")
        .u64_counter("h264_test_jobs")
        .build()
        .add(1, &[]);
    t.shutdown(Duration::from_secs(5)).await;

    let got = got.lock().unwrap().clone();
    let traces: Vec<_> = got.iter().filter(|(p, _)| p == "/v1/traces").collect();
    assert_eq!(
        traces.len(),
        1,
        "requests: {:?}",
        got.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let request = ExportTraceServiceRequest::decode(traces[0].1.as_slice()).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "job");
    assert!(
        got.iter().any(|(p, _)| p == "/v1/metrics"),
        "the metrics are pushed at shutdown"
    );
}
