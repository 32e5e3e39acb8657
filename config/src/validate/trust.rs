//! Rules for the trust keys of `[controller]`: how the agent proves who it is to the controller
//! and which controllers and revisions it believes.
//!
//! - `https://` needs `ca` (the fleet CA that issued the controller's certificate); `cert` and
//!   `key` go together and are used only over `https://`.
//! - `http://` to another machine is allowed but warned about: the session is cleartext and
//!   neither side knows who the other is.
//! - `trusted_keys` are `ed25519:BASE64` public keys ([`h264_trust::PublicKey`]).
//! - With a controller, `[agent] id` is also the name in the agent's certificate
//!   (`h264create://agent/<id>`), so it must be a valid identity name.
//!
//! [`check`] looks at the text only; [`files`] (with [`super::Checks::Full`]) reads the PEM
//! files on this machine, and checks that the certificate names this agent.

use std::path::Path;

use h264_trust::identity::{valid_name, Identity};
use h264_trust::PublicKey;

use super::controller::split_port;
use crate::agent::{AgentConfig, Controller};
use crate::problem::Problem;

const PKI_HINT: &str = "`fleetctl pki init --dir D` writes the fleet CA (D/ca.crt); \
                        `fleetctl pki issue --dir D --agent ID` an agent's D/ID.crt and D/ID.key";

/// The scheme of the endpoint, when it has one we know.
fn scheme(c: &Controller) -> Option<&str> {
    let (scheme, _) = c.endpoint.as_deref()?.split_once("://")?;
    matches!(scheme, "http" | "https").then_some(scheme)
}

/// Whether the endpoint's host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn loopback(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, _) = split_port(authority);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn check(config: &AgentConfig, out: &mut Vec<Problem>) {
    let c = &config.controller;
    match (&c.cert, &c.key) {
        (Some(_), None) => out.push(
            Problem::error("controller.cert", "is set without controller.key")
                .with_hint("set both (the certificate and its private key) or neither"),
        ),
        (None, Some(_)) => out.push(
            Problem::error("controller.key", "is set without controller.cert")
                .with_hint("set both (the certificate and its private key) or neither"),
        ),
        _ => {}
    }
    for (key, path) in [("ca", &c.ca), ("cert", &c.cert), ("key", &c.key)] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            let hint = "remove it, or name a PEM file";
            out.push(Problem::error(format!("controller.{key}"), "is empty").with_hint(hint));
        }
    }
    trusted_keys(&c.trusted_keys, out);
    match scheme(c) {
        Some("https") if c.ca.is_none() => {
            let message = "is not set, but controller.endpoint is https://: the agent \
                           cannot check the controller's certificate without the fleet CA";
            out.push(Problem::error("controller.ca", message).with_hint(PKI_HINT));
        }
        Some("https") => {}
        Some(_) => {
            let endpoint = c.endpoint.as_deref().unwrap_or_default();
            let unused: Vec<&str> = [("ca", &c.ca), ("cert", &c.cert), ("key", &c.key)]
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k)
                .collect();
            if !unused.is_empty() {
                let message = format!(
                    "{} {} not used: `{endpoint}` is http://, without TLS",
                    unused.join(", "),
                    if unused.len() == 1 { "is" } else { "are" }
                );
                let hint = "write https:// to connect with TLS";
                out.push(Problem::warning("controller.endpoint", message).with_hint(hint));
            } else if !loopback(endpoint) && !endpoint_refused(out) {
                let message = format!(
                    "`{endpoint}` is another machine over http://: the session is in cleartext \
                     and unauthenticated (anyone on the path can read it, and pose as the \
                     controller or as this agent)"
                );
                let hint = "use https:// with controller.ca, cert and key; pin \
                            controller.trusted_keys so that only signed revisions apply";
                out.push(Problem::warning("controller.endpoint", message).with_hint(hint));
            }
        }
        None => {}
    }
    if c.endpoint.is_some() {
        agent_id(config, out);
    }
}

/// Whether the endpoint itself was refused (then its scheme says nothing more).
fn endpoint_refused(out: &[Problem]) -> bool {
    out.iter()
        .any(|p| p.key == "controller.endpoint" && p.is_error())
}

/// Each key parses; a key listed twice is a warning.
fn trusted_keys(keys: &[String], out: &mut Vec<Problem>) {
    let mut seen: Vec<PublicKey> = Vec::new();
    for (i, text) in keys.iter().enumerate() {
        let at = format!("controller.trusted_keys[{i}]");
        match PublicKey::parse(text) {
            Ok(key) if seen.contains(&key) => {
                let message = format!("`{key}` is listed twice");
                out.push(Problem::warning(at, message).with_hint("remove one of them"));
            }
            Ok(key) => seen.push(key),
            Err(e) => {
                let hint = "copy the one line of the .pub file `fleetctl keys generate` wrote";
                out.push(Problem::error(at, e.to_string()).with_hint(hint));
            }
        }
    }
}

/// With a controller, the id is the agent's identity in its certificate.
fn agent_id(config: &AgentConfig, out: &mut Vec<Problem>) {
    let Some(id) = &config.agent.id else {
        return;
    };
    let reported = out.iter().any(|p| p.key == "agent.id" && p.is_error());
    if !reported && !valid_name(id) {
        let message = format!(
            "`{id}` cannot be an agent's identity with a controller (its certificate names \
             h264create://agent/<id>): 1-128 letters, digits, `.`, `_` and `-`, not starting \
             with `-` or `.`"
        );
        out.push(
            Problem::error("agent.id", message).with_hint("rename the agent, e.g. \"studio-a\""),
        );
    }
}

/// The PEM files can be read and hold what they should; the certificate names this agent.
pub(super) fn files(config: &AgentConfig, out: &mut Vec<Problem>) {
    let c = &config.controller;
    if let Some(ca) = c.ca.as_deref().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = h264_trust::tls::read_certs(ca) {
            let hint = "the fleet CA certificate, ca.crt of `fleetctl pki init`";
            out.push(Problem::error("controller.ca", e.to_string()).with_hint(hint));
        }
    }
    if let Some(cert) = c.cert.as_deref().filter(|p| !p.as_os_str().is_empty()) {
        certificate(config, cert, out);
    }
    if let Some(key) = c.key.as_deref().filter(|p| !p.as_os_str().is_empty()) {
        private_key(key, out);
    }
}

fn certificate(config: &AgentConfig, cert: &Path, out: &mut Vec<Problem>) {
    const KEY: &str = "controller.cert";
    let certs = match h264_trust::tls::read_certs(cert) {
        Ok(certs) => certs,
        Err(e) => {
            out.push(Problem::error(KEY, e.to_string()).with_hint(PKI_HINT));
            return;
        }
    };
    match (Identity::from_cert_der(&certs[0]), &config.agent.id) {
        (Some(Identity::Agent(named)), Some(id)) if named != *id => {
            let message = format!(
                "`{}` names agent `{named}`, but agent.id is `{id}`: the controller refuses a \
                 session whose id differs from its certificate's",
                cert.display()
            );
            let hint = format!("set agent.id = \"{named}\", or issue a certificate for `{id}`");
            out.push(Problem::error(KEY, message).with_hint(hint));
        }
        (Some(Identity::Agent(_)), _) => {}
        (other, _) => {
            let names = match other {
                Some(identity) => format!("names {identity}, not an agent"),
                None => "names no agent (no SAN URI h264create://agent/<id>)".to_owned(),
            };
            let message = format!("`{}` {names}", cert.display());
            out.push(Problem::error(KEY, message).with_hint(PKI_HINT));
        }
    }
}

fn private_key(key: &Path, out: &mut Vec<Problem>) {
    const KEY: &str = "controller.key";
    if let Err(e) = h264_trust::tls::read_key(key) {
        out.push(Problem::error(KEY, e.to_string()).with_hint(PKI_HINT));
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(key) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let message = format!(
                    "`{}` can be read by other users (mode {mode:04o}); whoever reads it can pose \
                     as this agent",
                    key.display()
                );
                let hint = format!("chmod 600 {}", key.display());
                out.push(Problem::warning(KEY, message).with_hint(hint));
            }
        }
    }
}
