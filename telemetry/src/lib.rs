//! OpenTelemetry for the three programs of h264create (agent, controller, fleetctl).
//!
//! - **Traces**: `tracing` spans of the h264create crates (level INFO and above) become
//!   OpenTelemetry spans, exported over OTLP (gRPC or HTTP/protobuf) when an endpoint is
//!   configured in the program's config file or through `OTEL_EXPORTER_OTLP_ENDPOINT`. Without
//!   one, no layer is installed and spans cost what plain `tracing` spans cost.
//! - **Trace context**: [`propagate`] carries W3C `traceparent` in gRPC metadata and inside
//!   messages, so one trace follows a rollout from fleetctl through the controller to each agent.
//! - **Metrics**: instruments made from [`Telemetry::meter`] are exported over OTLP (when an
//!   endpoint is set) and served to Prometheus by a [`scrape::ScrapeEndpoint`] (when the program
//!   has a metrics address).
//! - **Never in the way**: finished spans go through a bounded queue ([`export`]); when the
//!   collector is slow or down they are dropped and counted (`h264_telemetry_spans_dropped`), the
//!   program never waits for it. [`Telemetry::shutdown`] flushes what is buffered within a bound.
//!
//! Call [`Telemetry::init`] from inside the tokio runtime (the gRPC exporter needs it), then add
//! [`Telemetry::layer`] to the program's `tracing` subscriber.

pub mod export;
pub mod propagate;
pub mod scrape;
mod settings;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{
    RetryPolicy, WithExportConfig, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tracing_subscriber::Layer;

pub use settings::{Protocol, Settings};

use export::{BoundedProcessor, Flusher, SpanCounters};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter could not be built (a malformed endpoint, for example).
    #[error(
        "cannot set up OTLP {signal} export to {endpoint} ({protocol}): {message}; check the \
         [telemetry] otlp_endpoint setting or OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The protocol.
        protocol: &'static str,
        /// What the exporter said.
        message: String,
    },
    /// The Prometheus exporter could not be registered.
    #[error("cannot set up the Prometheus metrics: {0}")]
    Prometheus(String),
}

/// The telemetry of one program: keep it alive for the program's life, then
/// [`shutdown`](Telemetry::shutdown) it.
#[derive(Debug)]
pub struct Telemetry {
    settings: Settings,
    tracer_provider: Option<SdkTracerProvider>,
    flusher: Option<Flusher>,
    spans: Option<Arc<SpanCounters>>,
    meter_provider: Option<SdkMeterProvider>,
    registry: Option<prometheus::Registry>,
}

impl Telemetry {
    /// Nothing exported, no metrics kept: what a program runs with when nothing is configured.
    pub fn disabled(settings: Settings) -> Self {
        Self {
            settings,
            tracer_provider: None,
            flusher: None,
            spans: None,
            meter_provider: None,
            registry: None,
        }
    }

    /// Sets up OTLP export (when `settings.otlp_endpoint` is set) and a Prometheus registry
    /// (when `prometheus`). Must be called inside a tokio runtime.
    pub fn init(settings: Settings, prometheus: bool) -> Result<Self, TelemetryError> {
        let resource = resource(&settings);
        let mut t = Self::disabled(settings);
        if let Some(endpoint) = t.settings.otlp_endpoint.clone() {
            let mut exporter = span_exporter(&t.settings, &endpoint)?;
            exporter.set_resource(&resource);
            let (processor, flusher, counters) =
                BoundedProcessor::start(exporter, t.settings.span_queue, t.settings.export_timeout);
            t.tracer_provider = Some(
                SdkTracerProvider::builder()
                    .with_resource(resource.clone())
                    .with_span_processor(processor)
                    .build(),
            );
            t.flusher = Some(flusher);
            t.spans = Some(counters);
        }
        let push_metrics = t.settings.export_metrics && t.settings.otlp_endpoint.is_some();
        if prometheus || push_metrics {
            let mut builder = SdkMeterProvider::builder().with_resource(resource);
            if prometheus {
                let registry = prometheus::Registry::new();
                let reader = opentelemetry_prometheus::exporter()
                    .with_registry(registry.clone())
                    .scope_info_enabled(false)
                    .without_target_info()
                    .build()
                    .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
                builder = builder.with_reader(reader);
                t.registry = Some(registry);
            }
            if let Some(endpoint) = t.settings.otlp_endpoint.clone().filter(|_| push_metrics) {
                let exporter = metric_exporter(&t.settings, &endpoint)?;
                let reader =
                    opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                        exporter,
                        opentelemetry_sdk::runtime::Tokio,
                    )
                    .with_interval(t.settings.metrics_interval)
                    .build();
                builder = builder.with_reader(reader);
            }
            let provider = builder.build();
            opentelemetry::global::set_meter_provider(provider.clone());
            t.meter_provider = Some(provider);
            t.count_own_drops();
        }
        Ok(t)
    }

    fn count_own_drops(&self) {
        let Some(counters) = self.spans.clone() else {
            return;
        };
        let meter = self.meter("h264-telemetry");
        // The instrument lives as long as the meter provider that holds its callback.
        let _ = meter
            .u64_observable_counter("h264_telemetry_spans_dropped")
            .with_description("Spans dropped because the collector was slow or unreachable")
            .with_callback(move |o| o.observe(counters.dropped.load(Ordering::Relaxed), &[]))
            .build();
    }

    /// The settings in force (after the environment).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether spans are exported.
    pub fn traces_enabled(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// The layer that turns this program's `tracing` spans into exported spans; `None` when
    /// nothing is exported. Only the h264create crates' spans and events at INFO and above are
    /// taken (the exporter's own gRPC and HTTP crates are left out, so export never traces
    /// itself).
    pub fn layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let provider = self.tracer_provider.as_ref()?;
        let tracer = provider.tracer(self.settings.service_name.clone());
        // The level hint lets `tracing` turn DEBUG and TRACE call sites off for good when no
        // other layer wants them, instead of asking this filter at every one.
        let ours = tracing_subscriber::filter::filter_fn(|meta| {
            let target = meta.target();
            (target.starts_with("h264") || target.starts_with("fleetctl"))
                && *meta.level() <= tracing::Level::INFO
        })
        .with_max_level_hint(tracing::Level::INFO);
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(ours)
                .boxed(),
        )
    }

    /// A meter for this program's instruments (a no-op meter when no metrics are kept).
    pub fn meter(&self, name: &'static str) -> Meter {
        match &self.meter_provider {
            Some(p) => p.meter(name),
            None => opentelemetry::global::meter(name),
        }
    }

    /// The Prometheus registry, when the program serves a scrape endpoint.
    pub fn registry(&self) -> Option<&prometheus::Registry> {
        self.registry.as_ref()
    }

    /// Spans dropped so far (queue full, export failed or timed out).
    pub fn spans_dropped(&self) -> u64 {
        self.spans
            .as_ref()
            .map_or(0, |c| c.dropped.load(Ordering::Relaxed))
    }

    /// Spans exported so far.
    pub fn spans_exported(&self) -> u64 {
        self.spans
            .as_ref()
            .map_or(0, |c| c.exported.load(Ordering::Relaxed))
    }

    /// Exports what is buffered and stops, taking at most about `timeout` (twice, at worst:
    /// once for spans, once for metrics) whether or not the collector answers.
    pub async fn shutdown(self, timeout: Duration) {
        if let Some(flusher) = &self.flusher {
            if !flusher.flush(timeout).await {
                tracing::warn!(
                    "telemetry: buffered spans not exported within {timeout:?}; they are dropped"
                );
            }
        }
        if let Some(provider) = self.tracer_provider {
            let _ = provider.shutdown();
        }
        if let Some(provider) = self.meter_provider {
            let task = tokio::task::spawn_blocking(move || provider.shutdown());
            let _ = tokio::time::timeout(timeout, task).await;
        }
    }
}

fn resource(settings: &Settings) -> Resource {
    let mut attributes = vec![
        KeyValue::new("service.version", settings.service_version.clone()),
        KeyValue::new("host.name", hostname()),
    ];
    attributes.extend(
        settings
            .resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    // `builder()` reads OTEL_RESOURCE_ATTRIBUTES; the explicit values below win over it.
    Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attributes(attributes)
        .build()
}

/// This machine's host name (best effort).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn http_url(endpoint: &str, signal: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(&format!("/v1/{signal}")) {
        base.to_owned()
    } else {
        format!("{base}/v1/{signal}")
    }
}

fn exporter_error(
    signal: &'static str,
    endpoint: &str,
    settings: &Settings,
    e: impl std::fmt::Display,
) -> TelemetryError {
    TelemetryError::Exporter {
        signal,
        endpoint: endpoint.to_owned(),
        protocol: settings.otlp_protocol.as_str(),
        message: e.to_string(),
    }
}

/// The retry policy `settings` ask for.
fn retries(settings: &Settings) -> RetryPolicy {
    if settings.export_retries {
        RetryPolicy::recommended()
    } else {
        RetryPolicy::disabled()
    }
}

fn span_exporter(
    settings: &Settings,
    endpoint: &str,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let built = match settings.otlp_protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(settings.export_timeout)
            .with_retry_policy(retries(settings))
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(http_url(endpoint, "traces"))
            .with_timeout(settings.export_timeout)
            .with_headers(Default::default())
            .with_retry_policy(retries(settings))
            .build(),
    };
    built.map_err(|e| exporter_error("traces", endpoint, settings, e))
}

fn metric_exporter(
    settings: &Settings,
    endpoint: &str,
) -> Result<opentelemetry_otlp::MetricExporter, TelemetryError> {
    let built = match settings.otlp_protocol {
        Protocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(settings.export_timeout)
            .with_retry_policy(retries(settings))
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(http_url(endpoint, "metrics"))
            .with_timeout(settings.export_timeout)
            .with_retry_policy(retries(settings))
            .build(),
    };
    built.map_err(|e| exporter_error("metrics", endpoint, settings, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_get_the_signal_path_once() {
        assert_eq!(
            http_url("http://c:4318", "traces"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            http_url("http://c:4318/", "metrics"),
            "http://c:4318/v1/metrics"
        );
        assert_eq!(
            http_url("http://c:4318/v1/traces", "traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[tokio::test]
    async fn prometheus_only_keeps_metrics_without_exporting_spans() {
        let t = Telemetry::init(Settings::new("test", "0").with_vars(|_| None), true).unwrap();
        assert!(!t.traces_enabled());
        let layer: Option<Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>> = t.layer();
        assert!(layer.is_none());
        let c = t.meter("test").u64_counter("h264_test_things").build();
        c.add(3, &[KeyValue::new("outcome", "ok")]);
        let text = scrape::render(t.registry().unwrap());
        assert!(
            text.contains("h264_test_things_total{outcome=\"ok\"} 3"),
            "{text}"
        );
        t.shutdown(Duration::from_secs(1)).await;
    }
}
