//! A collector stand-in that really speaks OTLP/gRPC on loopback: the trace and metrics
//! services generated from the OTLP protobuf definitions, keeping every span it receives.
//!
//! # Concurrency
//! The server runs on its own thread with its own tokio runtime, so synchronous tests and async
//! tests alike can start one; received spans go into a mutex-guarded list that the test reads
//! with [`Collector::spans`]. Dropping the collector stops the server and joins the thread: a
//! graceful stop of at most [`STOP_GRACE`], then the connections are dropped (a client on a
//! runtime that is blocked, e.g. the test's own current-thread runtime dropping the collector,
//! never answers HTTP/2's shutdown ping, and a graceful stop alone would wait for it forever).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

/// The longest a dropped collector waits for its clients to go before closing on them.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// One span as the collector received it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// Every resource attribute, as text.
    pub resource: BTreeMap<String, String>,
    /// Lower-case hex.
    pub trace_id: String,
    /// Lower-case hex.
    pub span_id: String,
    /// Lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The status message (the error, for a failed span).
    pub status_message: String,
    /// Its events: name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// Its links to other spans (`follows_from`): trace id and span id, lower-case hex.
    pub links: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<CollectedSpan>,
    metric_requests: usize,
}

/// The stand-in collector.
#[derive(Debug)]
pub struct Collector {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Starts a collector on a free loopback port.
    pub fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let state = received.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the collector stand-in");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the collector stand-in");
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let (graceful, graceful_rx) = tokio::sync::oneshot::channel::<()>();
                let server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Traces(state.clone())))
                    .add_service(MetricsServiceServer::new(Metrics(state)))
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = graceful_rx.await;
                    });
                tokio::pin!(server);
                tokio::select! {
                    _ = &mut server => {}
                    _ = stopped => {
                        let _ = graceful.send(());
                        let _ = tokio::time::timeout(STOP_GRACE, &mut server).await;
                    }
                }
            });
        });
        let addr = ready_rx.recv().expect("the collector stand-in started");
        Self {
            addr,
            received,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.received.lock().unwrap().spans.clone()
    }

    /// How many metric export requests arrived.
    pub fn metric_requests(&self) -> usize {
        self.received.lock().unwrap().metric_requests
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An address that refuses connections: a collector that is down (its port held, never
/// listened on, for the rest of the test process: [`crate::port::HeldPort`]).
pub fn unreachable_endpoint() -> String {
    format!(
        "http://127.0.0.1:{}",
        crate::port::HeldPort::refusing_forever()
    )
}

struct Traces(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let status = s.status.unwrap_or_default();
                    got.push(CollectedSpan {
                        service: service.clone(),
                        resource: resource.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        name: s.name,
                        attributes: attributes(&s.attributes),
                        status_code: status.code,
                        status_message: status.message,
                        events: s
                            .events
                            .iter()
                            .map(|e| (e.name.clone(), attributes(&e.attributes)))
                            .collect(),
                        start_ns: s.start_time_unix_nano,
                        end_ns: s.end_time_unix_nano,
                        links: s
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                    });
                }
            }
        }
        self.0.lock().unwrap().spans.extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

struct Metrics(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metric_requests += 1;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The spans of `trace_id`, and a check that each one's parent is in the trace (or it is the
/// root): the problems found, one line each.
pub fn broken_parents(spans: &[CollectedSpan]) -> Vec<String> {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty() && !ids.contains(s.parent_span_id.as_str()))
        .map(|s| {
            format!(
                "{} span `{}` names parent {} which is not in the trace",
                s.service, s.name, s.parent_span_id
            )
        })
        .collect()
}
