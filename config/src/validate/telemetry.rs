//! Rules for `[telemetry]`, local to each agent: the collector endpoint is an `http://` address
//! the OTLP exporter can dial (with the port the protocol's collectors listen on), the metrics
//! address is a `host:port` apart from the control API, and the queue and interval stay within
//! sane bounds. None of them looks at the network.
//!
//! [`otlp_endpoint`] is public so that a program can hold an endpoint from the environment
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`) to the same rules as one written in its file.

use std::time::Duration;

use super::{at_least, at_most};
use crate::agent::{AgentConfig, OtlpProtocol, Telemetry};
use crate::problem::Problem;

/// The largest span queue accepted (each queued span holds a few hundred bytes).
pub const MAX_SPAN_QUEUE: usize = 1_000_000;

pub(super) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    let t = &config.telemetry;
    out.extend(check_section(t));
    if let Some(listen) = &t.metrics_listen {
        // Port 0 twice is no clash: the system gives each its own port.
        let any_port = listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.port() == 0);
        if listen.trim() == config.agent.control.trim() && !any_port {
            let message =
                format!("`{listen}` is also agent.control, where the control API listens");
            let hint = "give the metrics endpoint a port of its own, e.g. \"127.0.0.1:9464\"";
            out.push(Problem::error("telemetry.metrics_listen", message).with_hint(hint));
        }
    }
}

/// Every problem with a `[telemetry]` section on its own (keys `telemetry.*`).
pub fn check_section(t: &Telemetry) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(endpoint) = &t.otlp_endpoint {
        out.extend(otlp_endpoint(
            "telemetry.otlp_endpoint",
            endpoint,
            t.otlp_protocol,
        ));
    }
    if let Some(listen) = &t.metrics_listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            let message = format!("`{listen}` is not an address with a port");
            let hint = "e.g. \"127.0.0.1:9464\", or \"0.0.0.0:9464\" for a Prometheus on another \
                        machine; remove it to serve no metrics endpoint";
            out.push(Problem::error("telemetry.metrics_listen", message).with_hint(hint));
        }
    }
    if t.span_queue == 0 || t.span_queue > MAX_SPAN_QUEUE {
        let message = format!("{} is out of range 1-{MAX_SPAN_QUEUE}", t.span_queue);
        let hint = "finished spans waiting for export; 2048 (the default) suits every agent";
        out.push(Problem::error("telemetry.span_queue", message).with_hint(hint));
    }
    at_least(
        &mut out,
        "telemetry.metrics_interval",
        t.metrics_interval,
        Duration::from_secs(1),
    );
    at_most(
        &mut out,
        "telemetry.metrics_interval",
        t.metrics_interval,
        Duration::from_secs(3600),
        "dashboards and alerts see metrics this old; 10s-1m is usual",
    );
    out
}

/// Every problem with `endpoint` as the OTLP collector for `protocol`, reported at `key` (a
/// config key, or the name of the environment variable it came from).
pub fn otlp_endpoint(key: &str, endpoint: &str, protocol: OtlpProtocol) -> Vec<Problem> {
    let mut out = Vec::new();
    let port = match protocol {
        OtlpProtocol::Grpc => 4317,
        OtlpProtocol::HttpProtobuf => 4318,
    };
    let example = format!("e.g. \"http://otel-collector.example.org:{port}\"");
    if endpoint.trim().is_empty() {
        let hint = "remove it to export nothing";
        out.push(Problem::error(key, "is empty").with_hint(hint));
        return out;
    }
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        let message = format!("`{endpoint}` is not an http:// address");
        out.push(Problem::error(key, message).with_hint(example));
        return out;
    };
    match scheme {
        "http" => {}
        "https" => {
            let message = "https:// is not supported by this build (its OTLP exporter has no TLS)";
            let hint = "use http:// to a collector on a trusted network, or run a collector on \
                        this machine (http://127.0.0.1:4317) that forwards over TLS";
            out.push(Problem::error(key, message).with_hint(hint));
            return out;
        }
        other => {
            let message = format!("`{other}://` is not http://");
            out.push(Problem::error(key, message).with_hint(example));
            return out;
        }
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_end_matches('/');
    if !path.is_empty() {
        match protocol {
            OtlpProtocol::Grpc => {
                let message =
                    format!("`{endpoint}` has a path (`/{path}`); OTLP over gRPC takes none");
                out.push(Problem::error(key, message).with_hint(example));
                return out;
            }
            OtlpProtocol::HttpProtobuf
                if path.ends_with("v1/traces") || path.ends_with("v1/metrics") =>
            {
                let message = format!(
                    "`{endpoint}` names one signal's path; the agent adds /v1/traces and \
                     /v1/metrics to the collector's base address itself"
                );
                let hint = format!("write the base address, {example}");
                out.push(Problem::error(key, message).with_hint(hint));
                return out;
            }
            OtlpProtocol::HttpProtobuf => {}
        }
    }
    let (host, port_text) = super::controller::split_port(authority);
    if !super::controller::valid_host(host) {
        let message = format!("`{endpoint}` names no valid host");
        out.push(Problem::error(key, message).with_hint(example));
        return out;
    }
    match port_text.map(str::parse::<u16>) {
        None => {
            let message = format!(
                "`{endpoint}` has no port, so port 80 is used; OTLP collectors listen on {port} \
                 for {}",
                protocol.as_str()
            );
            let hint = format!("write http://{host}:{port} unless a proxy listens on 80");
            out.push(Problem::warning(key, message).with_hint(hint));
        }
        Some(Ok(0)) | Some(Err(_)) => {
            let message = format!("`{}` is not a port (1-65535)", port_text.unwrap_or(""));
            out.push(Problem::error(key, message).with_hint(example));
        }
        Some(Ok(p)) => {
            let other = match protocol {
                OtlpProtocol::Grpc => (4318, OtlpProtocol::HttpProtobuf),
                OtlpProtocol::HttpProtobuf => (4317, OtlpProtocol::Grpc),
            };
            if p == other.0 {
                let message = format!(
                    "port {p} is where collectors take OTLP over {}, but otlp_protocol is \"{}\"",
                    other.1.as_str(),
                    protocol.as_str()
                );
                let hint = format!(
                    "use port {port}, or set otlp_protocol = \"{}\"",
                    other.1.as_str()
                );
                out.push(Problem::warning(key, message).with_hint(hint));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(endpoint: &str, protocol: OtlpProtocol) -> Vec<String> {
        otlp_endpoint("k", endpoint, protocol)
            .into_iter()
            .map(|p| format!("{}: {}", p.severity, p.message))
            .collect()
    }

    #[test]
    fn endpoints() {
        let grpc = OtlpProtocol::Grpc;
        let http = OtlpProtocol::HttpProtobuf;
        assert!(problems("http://127.0.0.1:4317", grpc).is_empty());
        assert!(problems("http://[::1]:4317", grpc).is_empty());
        assert!(problems("http://collector:4318/", http).is_empty());
        assert!(problems("http://proxy:4318/otlp", http).is_empty());
        for (bad, protocol, says) in [
            ("", grpc, "error: is empty"),
            ("collector:4317", grpc, "not an http://"),
            ("https://collector:4317", grpc, "https:// is not supported"),
            ("grpc://collector:4317", grpc, "is not http://"),
            ("http://collector:4317/v1", grpc, "takes none"),
            ("http://collector:4318/v1/traces", http, "one signal's path"),
            ("http://:4317", grpc, "no valid host"),
            ("http://collector:99999", grpc, "is not a port"),
            ("http://collector", grpc, "warning: "),
            ("http://collector:4318", grpc, "warning: port 4318"),
        ] {
            let got = problems(bad, protocol);
            assert!(got.len() == 1 && got[0].contains(says), "{bad}: {got:?}");
        }
    }

    #[test]
    fn the_section() {
        let ok = Telemetry {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            metrics_listen: Some("0.0.0.0:9464".into()),
            ..Telemetry::default()
        };
        assert!(check_section(&ok).is_empty());
        let bad = Telemetry {
            metrics_listen: Some("localhost".into()),
            span_queue: 0,
            metrics_interval: crate::HumanDuration::from_millis(10),
            ..Telemetry::default()
        };
        let keys: Vec<String> = check_section(&bad).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "telemetry.metrics_listen",
                "telemetry.span_queue",
                "telemetry.metrics_interval"
            ]
        );
        let mut config = AgentConfig::default();
        config.telemetry.metrics_listen = Some(config.agent.control.clone());
        let mut out = Vec::new();
        check(&config, &mut out);
        assert!(out[0].message.contains("agent.control"), "{out:?}");
        config.agent.control = "127.0.0.1:0".into();
        config.telemetry.metrics_listen = Some("127.0.0.1:0".into());
        let mut out = Vec::new();
        check(&config, &mut out);
        assert!(out.is_empty(), "port 0 twice is two ports: {out:?}");
    }
}
