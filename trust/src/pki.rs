//! A small certificate authority for one fleet (`fleetctl pki init|issue`): an ECDSA P-256 CA
//! and leaf certificates naming a controller host, an agent or an operator (see
//! [`crate::identity`] for the names). Enough to secure a fleet in minutes; a site with its
//! own PKI issues certificates with the same SAN URIs instead.
//!
//! Files: `DIR/ca.crt`, `DIR/ca.key`, and `DIR/NAME.crt`, `DIR/NAME.key` for each certificate
//! issued (NAME: the host, agent id or operator name). Keys are written 0600 and nothing is
//! ever overwritten.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::identity::{valid_name, Identity, Role};
use crate::signing::write_new;

/// How long the CA is valid.
const CA_DAYS: u64 = 3650;
/// How long a leaf certificate is valid.
const LEAF_DAYS: u64 = 825;

/// What a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A controller reachable as this host name or IP address.
    Server(String),
    /// An agent with this id.
    Agent(String),
    /// An operator with a name and a role.
    Operator(String, Role),
}

impl Subject {
    /// The file stem of its certificate and key.
    pub fn file_stem(&self) -> &str {
        match self {
            Subject::Server(n) | Subject::Agent(n) | Subject::Operator(n, _) => n,
        }
    }
}

/// Why the PKI helper failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file cannot be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rcgen refused.
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A name is not usable.
    #[error("{0}")]
    Name(String),
}

impl From<crate::signing::SignatureError> for PkiError {
    fn from(e: crate::signing::SignatureError) -> Self {
        match e {
            crate::signing::SignatureError::Io { path, message } => {
                PkiError::File { path, message }
            }
            other => PkiError::Name(other.to_string()),
        }
    }
}

fn validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(days * 86_400)).into();
}

/// Creates `dir` (0700 when new) with a new CA; returns the CA certificate's path.
pub fn init(dir: &Path, name: &str) -> Result<PathBuf, PkiError> {
    create_dir(dir)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "h264create fleet");
    params.distinguished_name = dn;
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    let (crt, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&crt, cert.pem().as_bytes(), 0o644)?;
    Ok(crt)
}

/// Issues a certificate for `subject`, signed by the CA in `dir`; returns the paths of the
/// certificate and its key.
pub fn issue(dir: &Path, subject: &Subject) -> Result<(PathBuf, PathBuf), PkiError> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| PkiError::File {
            message: format!(
                "cannot read ({e}); run `fleetctl pki init --dir {}` first",
                dir.display()
            ),
            path: p,
        })
    };
    let ca_key = KeyPair::from_pem(&read(dir.join("ca.key"))?)?;
    let ca_params = CertificateParams::from_ca_cert_pem(&read(dir.join("ca.crt"))?)?;
    let ca = ca_params.self_signed(&ca_key)?;

    let stem = subject.file_stem();
    let mut params = match subject {
        Subject::Server(host) => {
            if host.is_empty() || host.len() > 253 || host.contains(['/', ' ']) {
                return Err(PkiError::Name(format!(
                    "`{host}` is not a host name or IP address"
                )));
            }
            let mut p = CertificateParams::new(vec![host.clone()])?;
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            p
        }
        Subject::Agent(id) | Subject::Operator(id, _) => {
            if !valid_name(id) {
                return Err(PkiError::Name(format!(
                    "`{id}` is not 1-128 characters of A-Z a-z 0-9 . _ - (not starting with - or .)"
                )));
            }
            let identity = match subject {
                Subject::Agent(_) => Identity::Agent(id.clone()),
                Subject::Operator(_, role) => Identity::Operator {
                    name: id.clone(),
                    role: *role,
                },
                Subject::Server(_) => unreachable!(),
            };
            let mut p = CertificateParams::new(Vec::<String>::new())?;
            p.subject_alt_names
                .push(SanType::URI(identity.uri().try_into()?));
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            p
        }
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, stem);
    validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    let (crt, key_path) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&crt, cert.pem().as_bytes(), 0o644)?;
    Ok((crt, key_path))
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(PkiError::File {
            path: dir.to_owned(),
            message: format!("cannot create the folder: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_certificates_that_name_their_holders() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        init(&d, "test fleet").unwrap();
        assert!(init(&d, "again").is_err(), "never overwrites a CA");
        let (crt, _) = issue(&d, &Subject::Agent("studio-1".into())).unwrap();
        let der = crate::tls::read_certs(&crt).unwrap();
        assert_eq!(
            Identity::from_cert_der(&der[0]),
            Some(Identity::Agent("studio-1".into()))
        );
        let (crt, _) = issue(&d, &Subject::Operator("alice".into(), Role::Operator)).unwrap();
        let der = crate::tls::read_certs(&crt).unwrap();
        assert_eq!(
            Identity::from_cert_der(&der[0]),
            Some(Identity::Operator {
                name: "alice".into(),
                role: Role::Operator
            })
        );
        let (crt, key) = issue(&d, &Subject::Server("127.0.0.1".into())).unwrap();
        let der = crate::tls::read_certs(&crt).unwrap();
        assert_eq!(Identity::from_cert_der(&der[0]), None);
        crate::tls::server_config(&crt, &key, Some(&d.join("ca.crt"))).unwrap();
        assert!(issue(&d, &Subject::Agent("../x".into())).is_err());
    }
}
