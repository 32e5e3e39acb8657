//! What to export and where: the program's defaults, the config file's `[telemetry]` values and
//! the standard `OTEL_*` variables, merged in that order of increasing precedence except that an
//! endpoint written in the config file wins over `OTEL_EXPORTER_OTLP_ENDPOINT` (an operator who
//! wrote it into the file meant it).

use std::time::Duration;

/// How spans and metrics travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
}

impl Protocol {
    /// Reads `grpc` or `http/protobuf` (the values of `OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" | "http" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }

    /// The name as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Telemetry settings of one program.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `service.name`: the program's name unless `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// The OTLP collector, e.g. `http://127.0.0.1:4317`; none: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// gRPC or HTTP.
    pub otlp_protocol: Protocol,
    /// Extra resource attributes, e.g. `("agent.id", "studio-1")`; `host.name` is added.
    pub resource: Vec<(String, String)>,
    /// Finished spans waiting for export; past this, new spans are dropped and counted.
    pub span_queue: usize,
    /// The longest one export may take before it is abandoned.
    pub export_timeout: Duration,
    /// How often metrics are pushed over OTLP.
    pub metrics_interval: Duration,
    /// Whether a failed export is tried again (3 times, backing off from 100 ms): right for a
    /// daemon, whose exports run in the background; a short-lived command (fleetctl) turns it
    /// off, so that a collector that is down costs it one refused connection, not seconds.
    pub export_retries: bool,
    /// Whether metrics are pushed over OTLP when an endpoint is set (a command without
    /// instruments turns it off).
    pub export_metrics: bool,
}

impl Settings {
    /// Defaults for `service_name` (e.g. `h264-agent`) at `version`, before the environment.
    pub fn new(service_name: &str, version: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            service_version: version.to_owned(),
            otlp_endpoint: None,
            otlp_protocol: Protocol::Grpc,
            resource: Vec::new(),
            span_queue: 2048,
            export_timeout: Duration::from_secs(5),
            metrics_interval: Duration::from_secs(30),
            export_retries: true,
            export_metrics: true,
        }
    }

    /// Applies the standard variables: `OTEL_SDK_DISABLED=true` turns export off;
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is used when no endpoint was configured;
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` picks the protocol for it; `OTEL_SERVICE_NAME` renames the
    /// service. `OTEL_RESOURCE_ATTRIBUTES` is read when the resource is built.
    pub fn with_env(self) -> Self {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// [`Settings::with_env`] with the variables looked up by `var` (for tests).
    pub fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(name) = set("OTEL_SERVICE_NAME") {
            self.service_name = name;
        }
        if self.otlp_endpoint.is_none() {
            if let Some(endpoint) = set("OTEL_EXPORTER_OTLP_ENDPOINT") {
                self.otlp_endpoint = Some(endpoint);
                if let Some(p) =
                    set("OTEL_EXPORTER_OTLP_PROTOCOL").and_then(|p| Protocol::parse(&p))
                {
                    self.otlp_protocol = p;
                }
            }
        }
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            self.otlp_endpoint = None;
        }
        self
    }

    /// Adds a resource attribute.
    pub fn with_resource(mut self, key: &str, value: impl Into<String>) -> Self {
        self.resource.push((key.to_owned(), value.into()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_standard_variables_fill_what_the_file_left_out() {
        let s = Settings::new("h264-agent", "1.0").with_vars(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "ingest-agent"),
        ]));
        assert_eq!(s.otlp_endpoint.as_deref(), Some("http://collector:4318"));
        assert_eq!(s.otlp_protocol, Protocol::HttpProtobuf);
        assert_eq!(s.service_name, "ingest-agent");
    }

    #[test]
    fn an_endpoint_in_the_file_wins_and_the_sdk_can_be_disabled() {
        let mut s = Settings::new("h264-agent", "1.0");
        s.otlp_endpoint = Some("http://file:4317".into());
        let kept = s
            .clone()
            .with_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")]));
        assert_eq!(kept.otlp_endpoint.as_deref(), Some("http://file:4317"));
        let off = s.with_vars(vars(&[("OTEL_SDK_DISABLED", "TRUE")]));
        assert_eq!(off.otlp_endpoint, None);
    }

    #[test]
    fn nothing_configured_means_nothing_exported() {
        let s = Settings::new("h264-controller", "1.0").with_vars(|_| None);
        assert_eq!(s.otlp_endpoint, None);
        assert_eq!(Protocol::parse("http/json"), None);
    }
}
