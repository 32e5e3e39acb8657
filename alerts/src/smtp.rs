//! SMTP delivery with `lettre` over rustls: where the server is (`smtp://` plain or with
//! STARTTLS, `smtps://` with implicit TLS), the password (read from its variable, file or
//! systemd credential at every delivery pass, never stored), and the multipart message built
//! from a queued one.
//!
//! Server certificates are verified against the system's CA store (`rustls-native-certs`;
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` replace it when set), read again for every pass, so a
//! relay with a private CA works once that CA is installed. STARTTLS is required when
//! `starttls = true`: a server that does not offer it gets neither password nor message.

use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use h264_config::agent::Email;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::queue::Message;

/// The transport type.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// `alerts.email.smtp` cannot be used.
    #[error("alerts.email.smtp = {url:?}: {reason}")]
    Url {
        /// The configured value.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The password variable is not set (or not UTF-8).
    #[error("the SMTP password variable {name} is not set")]
    PasswordEnv {
        /// The variable's name.
        name: String,
    },
    /// The password file cannot be read, or is empty.
    #[error("cannot read the SMTP password from {}: {source}", path.display())]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The password credential cannot be found (no `$CREDENTIALS_DIRECTORY`, a bad name).
    #[error("alerts.email.password_credential: {0}")]
    PasswordCredential(#[from] h264_config::credentials::CredentialError),
    /// A user name is set, but no password source.
    #[error(
        "alerts.email.username is set but none of password_env, password_file and \
         password_credential is"
    )]
    NoPassword,
    /// A sender or recipient address does not parse.
    #[error("e-mail address {address:?}: {source}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The message could not be put together.
    #[error("building the e-mail: {0}")]
    Build(#[source] lettre::error::Error),
    /// The TLS settings could not be made.
    #[error("TLS setup for {host}: {source}")]
    Tls {
        /// The server's name.
        host: String,
        /// Why.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The server could not be reached, or did not accept the message.
    #[error("SMTP: {0}")]
    Send(#[source] lettre::transport::smtp::Error),
    /// The delivery took longer than `alerts.email.timeout`.
    #[error("no delivery within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

impl SmtpError {
    /// Whether the failure concerns this message only (the server rejected it for good, 5xx,
    /// other than for authentication), so the other messages may still go through.
    pub fn is_message_specific(&self) -> bool {
        match self {
            SmtpError::Send(e) if e.is_permanent() => {
                let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                !matches!(code.as_str(), "530" | "534" | "535" | "538")
            }
            SmtpError::Address { .. } | SmtpError::Build(_) => true,
            _ => false,
        }
    }
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS (`smtp://`, `starttls = false`): for relays on loopback.
    Plain,
    /// Plain connection upgraded with STARTTLS, which is required (`smtp://`, `starttls = true`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// The SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// How the connection is secured.
    pub security: Security,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port: given, or 25 (plain), 587 (STARTTLS), 465 (TLS).
    pub port: u16,
}

impl Endpoint {
    /// Parses `smtp://host[:port]` or `smtps://host[:port]`.
    pub fn parse(url: &str, starttls: bool) -> Result<Endpoint, SmtpError> {
        let bad = |reason| SmtpError::Url {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("no smtp:// or smtps://"))?;
        let security = match (scheme, starttls) {
            ("smtps", _) => Security::Tls,
            ("smtp", true) => Security::StartTls,
            ("smtp", false) => Security::Plain,
            _ => return Err(bad("the scheme must be smtp or smtps")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['@', '/', '?']) {
            return Err(bad("only host and port belong here (credentials go in username and password_env or password_file)"));
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or(bad("unclosed [ in the host"))?;
                (host, after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None => match security {
                Security::Plain => 25,
                Security::StartTls => 587,
                Security::Tls => 465,
            },
        };
        Ok(Endpoint {
            security,
            host: host.to_owned(),
            port,
        })
    }

    /// Whether the server is on this machine (a plain connection is safe there).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// The SMTP password: the variable `password_env`, or the first line of `password_file`, or
/// the first line of the systemd credential `password_credential`
/// (`$CREDENTIALS_DIRECTORY/NAME`).
pub fn password(email: &Email) -> Result<String, SmtpError> {
    if let Some(name) = &email.password_env {
        return std::env::var(name).map_err(|_| SmtpError::PasswordEnv { name: name.clone() });
    }
    let credential = match &email.password_credential {
        Some(name) => Some(h264_config::credentials::path(name)?),
        None => None,
    };
    let Some(path) = email.password_file.as_ref().or(credential.as_ref()) else {
        return Err(SmtpError::NoPassword);
    };
    let err = |source| SmtpError::PasswordFile {
        path: path.clone(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidData,
            "its first line is empty",
        )));
    }
    Ok(line.to_owned())
}

/// A transport for one delivery pass; `hello` is the name given in EHLO.
pub fn transport(email: &Email, hello: &str) -> Result<Transport, SmtpError> {
    let endpoint = Endpoint::parse(&email.smtp, email.uses_starttls())?;
    let tls = |host: &str| {
        TlsParameters::new(host.to_owned()).map_err(|source| SmtpError::Tls {
            host: host.to_owned(),
            source,
        })
    };
    let tls = match endpoint.security {
        Security::Plain => Tls::None,
        Security::StartTls => Tls::Required(tls(&endpoint.host)?),
        Security::Tls => Tls::Wrapper(tls(&endpoint.host)?),
    };
    let mut builder = Transport::builder_dangerous(endpoint.host.clone())
        .port(endpoint.port)
        .tls(tls)
        .timeout(Some(email.timeout.get()))
        .hello_name(ClientId::Domain(hello.to_owned()));
    if let Some(user) = &email.username {
        builder = builder.credentials(Credentials::new(user.clone(), password(email)?));
    }
    Ok(builder.build())
}

fn mailbox(address: &str) -> Result<Mailbox, SmtpError> {
    address.parse().map_err(|source| SmtpError::Address {
        address: address.to_owned(),
        source,
    })
}

/// The e-mail for a queued message: `multipart/alternative` with the text and the HTML body,
/// dated when the message was queued, with its stable `Message-ID`.
pub fn build(email: &Email, message: &Message) -> Result<lettre::Message, SmtpError> {
    let mut builder = lettre::Message::builder()
        .from(mailbox(&email.from)?)
        .subject(message.subject.clone())
        .date(SystemTime::UNIX_EPOCH + Duration::from_millis(message.created_ms))
        .message_id(Some(message.message_id.clone()));
    for to in &email.to {
        builder = builder.to(mailbox(to)?);
    }
    let body = MultiPart::alternative_plain_html(message.text.clone(), message.html.clone());
    builder.multipart(body).map_err(SmtpError::Build)
}

/// Sends `message` within `alerts.email.timeout`; `Ok` once the server accepted it.
pub async fn send(
    transport: &Transport,
    email: &Email,
    message: &Message,
) -> Result<(), SmtpError> {
    let built = build(email, message)?;
    let timeout = email.timeout.get();
    match tokio::time::timeout(timeout, transport.send(built)).await {
        Ok(Ok(_response)) => Ok(()),
        Ok(Err(e)) => Err(SmtpError::Send(e)),
        Err(_) => Err(SmtpError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(smtp: &str, starttls: bool) -> Email {
        Email {
            smtp: smtp.into(),
            starttls: Some(starttls),
            from: "agent@example.org".into(),
            to: vec!["ops@example.org".into()],
            ..Email::default()
        }
    }

    #[test]
    fn starttls_is_the_default_on_the_submission_port() {
        let on = |smtp: &str| Email {
            smtp: smtp.into(),
            ..Email::default()
        };
        assert!(on("smtp://mail.example.org:587").uses_starttls());
        assert!(!on("smtp://127.0.0.1:2525").uses_starttls());
        let off = Email {
            starttls: Some(false),
            ..on("smtp://[::1]:587")
        };
        assert!(!off.uses_starttls());
        assert!(on("smtp://[::1]:587").smtp_is_loopback());
        assert!(!on("smtp://mail.example.org:25").smtp_is_loopback());
    }

    #[test]
    fn endpoints_parse_with_their_default_ports() {
        let cases = [
            (
                "smtp://127.0.0.1:2525",
                false,
                Security::Plain,
                "127.0.0.1",
                2525,
            ),
            (
                "smtp://mail.example.org",
                false,
                Security::Plain,
                "mail.example.org",
                25,
            ),
            (
                "smtp://mail.example.org/",
                true,
                Security::StartTls,
                "mail.example.org",
                587,
            ),
            (
                "smtps://mail.example.org",
                false,
                Security::Tls,
                "mail.example.org",
                465,
            ),
            (
                "smtps://mail.example.org:4650",
                true,
                Security::Tls,
                "mail.example.org",
                4650,
            ),
            ("smtp://[::1]:25", false, Security::Plain, "::1", 25),
            ("smtp://[::1]", true, Security::StartTls, "::1", 587),
        ];
        for (url, starttls, security, host, port) in cases {
            let e = Endpoint::parse(url, starttls).unwrap();
            assert_eq!(
                e,
                Endpoint {
                    security,
                    host: host.into(),
                    port
                },
                "{url}"
            );
        }
        assert!(Endpoint::parse("smtp://[::1]:25", false)
            .unwrap()
            .is_loopback());
        assert!(!Endpoint::parse("smtp://mail.example.org", false)
            .unwrap()
            .is_loopback());
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (url, reason) in [
            ("mail.example.org", "no smtp://"),
            ("http://mail.example.org", "scheme"),
            ("smtp://user:pw@mail.example.org", "credentials go in"),
            ("smtp://mail.example.org:abc", "not a number"),
            ("smtp://:25", "no host"),
            ("smtp://[::1:25", "unclosed"),
        ] {
            let err = Endpoint::parse(url, false).unwrap_err().to_string();
            assert!(err.contains(reason), "{url}: {err}");
        }
    }

    #[test]
    fn transports_are_built_for_each_kind_of_security() {
        // Building checks the TLS settings (rustls with the system's roots) and the password
        // lookup; the connection itself is made at the first send.
        for (url, starttls) in [
            ("smtp://127.0.0.1:25", false),
            ("smtp://mail.example.org", true),
            ("smtps://mail.example.org", false),
        ] {
            transport(&email(url, starttls), "agent.example.org").unwrap();
        }
        let mut e = email("smtps://mail.example.org", false);
        e.username = Some("alerts".into());
        e.password_env = Some("H264_ALERTS_TEST_UNSET_PASSWORD_VARIABLE".into());
        let err = transport(&e, "h").unwrap_err();
        assert!(matches!(err, SmtpError::PasswordEnv { .. }), "{err}");
        e.password_env = None;
        assert!(matches!(
            transport(&e, "h").unwrap_err(),
            SmtpError::NoPassword
        ));
    }

    #[test]
    fn the_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        let mut e = email("smtps://mail.example.org", false);
        e.username = Some("alerts".into());
        e.password_file = Some(path.clone());
        assert!(matches!(password(&e), Err(SmtpError::PasswordFile { .. })));
        std::fs::write(&path, "s3cret\r\nsecond line\n").unwrap();
        assert_eq!(password(&e).unwrap(), "s3cret");
        transport(&e, "h").unwrap();
        std::fs::write(&path, "\n").unwrap();
        let err = password(&e).unwrap_err().to_string();
        assert!(err.contains("first line is empty"), "{err}");
    }

    #[test]
    fn messages_are_multipart_alternative_with_both_bodies() {
        let m = Message {
            kind: "file_failed".into(),
            created_ms: 1_700_000_000_000,
            subject: "[h264-agent a] news.ts failed".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
            message_id: "<1.2.h264-agent@host>".into(),
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
            stands_for: Vec::new(),
        };
        let raw =
            String::from_utf8(build(&email("smtp://h", false), &m).unwrap().formatted()).unwrap();
        for needle in [
            "multipart/alternative",
            "text/plain",
            "text/html",
            "plain body",
            "<p>html body</p>",
            "Message-ID: <1.2.h264-agent@host>",
            "Date: Tue, 14 Nov 2023 22:13:20",
            "To: ops@example.org",
        ] {
            assert!(raw.contains(needle), "{needle} in\n{raw}");
        }
        let mut bad = email("smtp://h", false);
        bad.to = vec!["not an address".into()];
        assert!(build(&bad, &m).unwrap_err().is_message_specific());
    }
}
