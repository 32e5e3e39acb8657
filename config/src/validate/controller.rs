//! Rules for `[controller]`, local to each agent: the endpoint is an `http://` or `https://`
//! `host:port` address the agent can dial, labels are plain `key = "value"` words a selector
//! can match, and the reconnect and stats timings stay within sane bounds. None of them looks
//! at the network. The trust keys (`ca`, `cert`, `key`, `trusted_keys`) have their own rules
//! ([`super::trust`]).

use std::time::Duration;

use super::{at_least, at_most};
use crate::agent::Controller;
use crate::problem::Problem;

/// The port h264-controller listens on by default.
const DEFAULT_PORT: u16 = 7443;

/// Longest label key or value, as in Kubernetes.
const LABEL_MAX: usize = 63;

pub(super) fn check(c: &Controller, out: &mut Vec<Problem>) {
    if let Some(endpoint) = &c.endpoint {
        self::endpoint(endpoint, out);
    }
    for (key, value) in &c.labels {
        label(key, value, out);
    }
    at_least(
        out,
        "controller.reconnect_backoff",
        c.reconnect_backoff,
        Duration::from_millis(100),
    );
    let hour = Duration::from_secs(3600);
    at_most(
        out,
        "controller.reconnect_backoff_max",
        c.reconnect_backoff_max,
        hour,
        "an agent that waits longer learns of new revisions late; 30s-5m is usual",
    );
    if c.reconnect_backoff > c.reconnect_backoff_max {
        let message = format!(
            "{} is longer than reconnect_backoff_max ({})",
            c.reconnect_backoff, c.reconnect_backoff_max
        );
        out.push(Problem::error("controller.reconnect_backoff", message));
    }
    at_least(
        out,
        "controller.stats_interval",
        c.stats_interval,
        Duration::from_secs(1),
    );
    at_most(
        out,
        "controller.stats_interval",
        c.stats_interval,
        hour,
        "the fleet view shows stats this old; 5s-1m is usual",
    );
}

fn endpoint(endpoint: &str, out: &mut Vec<Problem>) {
    const KEY: &str = "controller.endpoint";
    let example = format!("e.g. \"http://controller.example.org:{DEFAULT_PORT}\"");
    if endpoint.trim().is_empty() {
        let hint = "remove it to run without a controller";
        out.push(Problem::error(KEY, "is empty").with_hint(hint));
        return;
    }
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        let message = format!("`{endpoint}` is not an http:// or https:// address");
        out.push(Problem::error(KEY, message).with_hint(example));
        return;
    };
    match scheme {
        "http" | "https" => {}
        other => {
            let message = format!("`{other}://` is not http:// or https://");
            out.push(Problem::error(KEY, message).with_hint(example));
            return;
        }
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        let message = format!("`{endpoint}` has a path (`/{path}`); the controller takes none");
        out.push(Problem::error(KEY, message).with_hint(example));
        return;
    }
    let (host, port) = split_port(authority);
    if !valid_host(host) {
        let message = format!("`{endpoint}` names no valid host");
        out.push(Problem::error(KEY, message).with_hint(example));
        return;
    }
    match port {
        None => {
            let message = format!(
                "`{endpoint}` has no port, so port {} is used; h264-controller listens on {DEFAULT_PORT} by default",
                if scheme == "https" { 443 } else { 80 }
            );
            let hint = format!(
                "write {scheme}://{host}:{DEFAULT_PORT} unless a proxy listens on that port"
            );
            out.push(Problem::warning(KEY, message).with_hint(hint));
        }
        Some(port) if port.parse::<u16>().map_or(true, |p| p == 0) => {
            let message = format!("`{port}` is not a port (1-65535)");
            out.push(Problem::error(KEY, message).with_hint(example));
        }
        Some(_) => {}
    }
}

/// A host name (letters, digits, `.`, `-`, `_`) or a bracketed IPv6 literal.
pub(super) fn valid_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ".-_".contains(ch))
        }
    }
}

/// `host:port` → (`host`, `Some("port")`); an IPv6 literal keeps its brackets.
pub(super) fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.split_once("]:") {
            Some((host, port)) => (&authority[..host.len() + 1], Some(port)),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// A label a `k=v` selector can match: a key of letters, digits, `.`, `_`, `-` and `/`, and a
/// value of letters, digits, `.`, `_` and `-` (or empty), each at most 63 characters.
fn label(key: &str, value: &str, out: &mut Vec<Problem>) {
    let at = format!("controller.labels.{key}");
    let word = |s: &str, extra: &str| {
        s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch) || extra.contains(ch))
    };
    let hint = "labels look like site = \"studio-a\": letters, digits, `.`, `_` and `-`";
    if key.is_empty() || key.len() > LABEL_MAX || !word(key, "/") {
        let message = format!(
            "`{key}` is not a label name (1-{LABEL_MAX} letters, digits, `.`, `_`, `-`, `/`)"
        );
        out.push(Problem::error(at, message).with_hint(hint));
    } else if value.len() > LABEL_MAX || !word(value, "") {
        let message = format!(
            "`{value}` is not a label value (at most {LABEL_MAX} letters, digits, `.`, `_`, `-`)"
        );
        out.push(Problem::error(at, message).with_hint(hint));
    }
}
