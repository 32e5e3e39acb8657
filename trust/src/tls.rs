//! TLS settings from PEM files: rustls with the ring provider, through tonic on the client
//! side and as a rustls `ServerConfig` for the controller's own acceptor.
//!
//! Every error names the file and what to do, because these files are written by hand or by
//! `fleetctl pki`, and a wrong path is the most common mistake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds nothing usable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// rustls refused the material (a key that does not match the certificate, ...).
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA cannot verify anything.
    #[error("{path}: cannot build a client certificate verifier: {message}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// What rustls said.
        message: String,
    },
}

fn file_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads a whole PEM file (certificates or a key).
pub fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(file_error(path, "is not a PEM file (no -----BEGIN line)"));
    }
    Ok(bytes)
}

/// The certificates of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("cannot read a private key: {e}")))
}

/// The crypto provider of every TLS connection here.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client's TLS settings for tonic: trust `ca` (the fleet CA) for the server named
/// `domain`, and present `identity` (certificate and key files) when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    domain: &str,
) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
    read_certs(ca)?;
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read_pem(ca)?))
        .domain_name(domain.to_owned());
    if let Some((cert, key)) = identity {
        read_certs(cert)?;
        read_key(key)?;
        config = config.identity(tonic::transport::Identity::from_pem(
            read_pem(cert)?,
            read_pem(key)?,
        ));
    }
    Ok(config)
}

/// The controller's server settings: its certificate chain and key, and, with `client_ca`,
/// client certificates verified against that CA. A client without a certificate is still let
/// through the handshake (operators may use tokens); what it may do is decided per call.
/// ALPN offers HTTP/2 only (gRPC).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_error(ca, format!("not a usable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier {
                    path: ca.to_owned(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The host of a URL (`https://ctl.example:7443` -> `ctl.example`), for the server name a
/// client checks; brackets of an IPv6 literal removed.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://ctl.example:7443").as_deref(),
            Some("ctl.example")
        );
        assert_eq!(
            host_of("https://127.0.0.1:7443/").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("https://[::1]:7443").as_deref(), Some("::1"));
        assert_eq!(host_of("ctl:1").as_deref(), Some("ctl"));
    }
}
