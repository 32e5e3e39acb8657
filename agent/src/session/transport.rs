//! The connection to the controller: a tonic [`Endpoint`] for `[controller] endpoint`, with TLS
//! for `https://` (rustls; the fleet CA in `ca`, this agent's certificate in `cert` and `key`),
//! built again at every connection attempt so that certificates replaced on disk are used at the
//! next reconnect without a restart.
//!
//! When a connection fails, [`advice`] reads the error for the TLS failures an operator can
//! fix (a controller certificate from another CA or for another name, an expired certificate,
//! a client certificate the controller does not take) and says what to change.

use std::time::Duration;

use h264_config::agent::Controller;
use tonic::transport::Endpoint;

use super::error::{chain, SessionError};

/// The endpoint to dial, TLS set up when it is `https://`.
pub(super) fn endpoint(cfg: &Controller) -> Result<Endpoint, SessionError> {
    let url = cfg.endpoint.clone().unwrap_or_default();
    let tls_error = |why: String| SessionError::Tls {
        endpoint: url.clone(),
        why,
    };
    let mut endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| tls_error(format!("not a usable address: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if url.starts_with("https://") {
        let ca = cfg.ca.as_deref().ok_or_else(|| {
            tls_error("controller.ca is not set; https:// needs the fleet CA".to_owned())
        })?;
        let host = h264_trust::tls::host_of(&url)
            .ok_or_else(|| tls_error("the address names no host".to_owned()))?;
        let identity = cfg.cert.as_deref().zip(cfg.key.as_deref());
        let tls = h264_trust::tls::client_config(ca, identity, &host)
            .map_err(|e| tls_error(e.to_string()))?;
        endpoint = endpoint.tls_config(tls).map_err(|e| tls_error(chain(&e)))?;
    }
    Ok(endpoint)
}

/// What to fix for a TLS failure described by `error` (an error and its causes), or `None`
/// when it is not one the operator can fix in this agent's `[controller]` section.
pub(super) fn advice(error: &str, cfg: &Controller) -> Option<String> {
    let ca = cfg
        .ca
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let host = cfg
        .endpoint
        .as_deref()
        .and_then(h264_trust::tls::host_of)
        .unwrap_or_default();
    let has = |needle: &str| error.contains(needle);
    let text = if has("UnknownIssuer") || has("unknown issuer") {
        format!(
            "the controller's certificate is not issued by the fleet CA in controller.ca ({ca}): \
             point ca at the CA that issued it (`fleetctl pki init` wrote ca.crt), or give the \
             controller a certificate from this CA (`fleetctl pki issue --server {host}`)"
        )
    } else if has("NotValidForName") || has("not valid for name") {
        format!(
            "the controller's certificate does not name `{host}`: use the host name it was \
             issued for in controller.endpoint, or issue one for this name (`fleetctl pki issue \
             --server {host}`)"
        )
    } else if has("Expired") || has("NotValidYet") {
        "the controller's certificate is expired or not valid yet: renew it, and check this \
         machine's clock"
            .to_owned()
    } else if has("CertificateRequired") || has("certificate required") {
        "the controller requires a client certificate: set controller.cert and controller.key \
         (`fleetctl pki issue --agent ID`)"
            .to_owned()
    } else if has("UnknownCA") || has("BadCertificate") || has("bad certificate") {
        "the controller refused this agent's certificate: it must be issued by the controller's \
         client CA and name this agent (h264create://agent/ID)"
            .to_owned()
    } else if cfg.cert.is_none()
        && cfg
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("https://"))
        && has("connection closed")
    {
        // TLS 1.3: a server that requires a client certificate says so after the handshake,
        // and the client sees only the connection close.
        "the controller closed the TLS connection; if it requires client certificates, set \
         controller.cert and controller.key (`fleetctl pki issue --agent ID`)"
            .to_owned()
    } else if has("InvalidContentType") || has("CorruptMessage") || has("corrupt message") {
        "the controller does not speak TLS at this address: use http:// if it runs without TLS \
         (loopback only), or check the port"
            .to_owned()
    } else {
        return None;
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_get_advice_and_others_do_not() {
        let cfg = Controller {
            endpoint: Some("https://ctl.example:7443".into()),
            ca: Some("/etc/h264create/ca.crt".into()),
            ..Controller::default()
        };
        for (error, want) in [
            (
                "transport error: invalid peer certificate: UnknownIssuer",
                "/etc/h264create/ca.crt",
            ),
            (
                "invalid peer certificate: NotValidForName",
                "does not name `ctl.example`",
            ),
            (
                "received fatal alert: CertificateRequired",
                "controller.cert",
            ),
            (
                "received fatal alert: UnknownCA",
                "refused this agent's certificate",
            ),
        ] {
            let advice = advice(error, &cfg).unwrap_or_else(|| panic!("{error}"));
            assert!(advice.contains(want), "{advice}");
        }
        assert_eq!(advice("tcp connect error: Connection refused", &cfg), None);
        let closed =
            "the controller refused the session: hyper::Error(Canceled, \"connection closed\")";
        assert!(advice(closed, &cfg).unwrap().contains("controller.cert"));
        let with_cert = Controller {
            cert: Some("a.crt".into()),
            key: Some("a.key".into()),
            ..cfg
        };
        assert_eq!(advice(closed, &with_cert), None);
    }

    #[test]
    fn https_without_a_ca_is_refused_before_dialing() {
        let cfg = Controller {
            endpoint: Some("https://ctl.example:7443".into()),
            ..Controller::default()
        };
        let err = endpoint(&cfg).unwrap_err().to_string();
        assert!(err.contains("controller.ca is not set"), "{err}");
        let cfg = Controller {
            endpoint: Some("http://127.0.0.1:7443".into()),
            ..Controller::default()
        };
        assert!(endpoint(&cfg).is_ok());
    }
}
