//! Identities in certificates and the operator roles.
//!
//! A certificate names its holder with a SAN URI:
//!
//! | holder | URI |
//! |--------|-----|
//! | agent `studio-1` | `h264create://agent/studio-1` |
//! | operator `alice` with role `admin` | `h264create://operator/admin/alice` |
//!
//! A controller's server certificate carries its host name (a DNS or IP SAN) instead. The
//! scheme is ours on purpose: a certificate issued for anything else by the same CA (a web
//! server's, say) names no agent and no operator, and is refused.

use std::fmt;

/// The URI scheme and authority of every identity.
pub const URI_PREFIX: &str = "h264create://";

/// An operator's role, each including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: get, describe, status, watch, report, audit.
    Viewer,
    /// Viewer plus steering: rollout pause/resume/promote/abort/undo/retry, agent pause/resume.
    Operator,
    /// Everything: apply, assign, rollout start, label, delete agents, tokens.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Reads `viewer`, `operator` or `admin`.
    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a role: viewer, operator or admin"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An agent, by its id.
    Agent(String),
    /// An operator, by name, with a role.
    Operator {
        /// The operator's name (shown in the audit trail).
        name: String,
        /// What the operator may do.
        role: Role,
    },
}

impl Identity {
    /// The SAN URI of this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::Agent(id) => format!("{URI_PREFIX}agent/{id}"),
            Identity::Operator { name, role } => format!("{URI_PREFIX}operator/{role}/{name}"),
        }
    }

    /// Reads a SAN URI; `None` for a URI that is not one of ours or is malformed.
    pub fn from_uri(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix(URI_PREFIX)?;
        if let Some(id) = rest.strip_prefix("agent/") {
            return valid_name(id).then(|| Identity::Agent(id.to_owned()));
        }
        let rest = rest.strip_prefix("operator/")?;
        let (role, name) = rest.split_once('/')?;
        let role = Role::parse(role).ok()?;
        valid_name(name).then(|| Identity::Operator {
            name: name.to_owned(),
            role,
        })
    }

    /// The identity named by a certificate (DER): its first SAN URI that is one of ours.
    /// `None` when it names none (or cannot be read).
    pub fn from_cert_der(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(uri) => Identity::from_uri(uri),
            _ => None,
        })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Agent(id) => write!(f, "agent {id}"),
            Identity::Operator { name, role } => write!(f, "operator {name} ({role})"),
        }
    }
}

/// The longest agent id or operator name.
pub const MAX_NAME: usize = 128;

/// 1-128 characters of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_strangers_are_refused() {
        let a = Identity::Agent("studio-1".into());
        assert_eq!(a.uri(), "h264create://agent/studio-1");
        assert_eq!(Identity::from_uri(&a.uri()), Some(a));
        let o = Identity::Operator {
            name: "alice".into(),
            role: Role::Operator,
        };
        assert_eq!(o.uri(), "h264create://operator/operator/alice");
        assert_eq!(Identity::from_uri(&o.uri()), Some(o));
        for bad in [
            "https://agent/x",
            "h264create://agent/",
            "h264create://agent/a/b",
            "h264create://agent/-x",
            "h264create://operator/root/alice",
            "h264create://operator/admin/",
            "h264create://agent/a b",
        ] {
            assert_eq!(Identity::from_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }
}
