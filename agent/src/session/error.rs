//! Why a session with the controller ended.

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// TLS to the controller cannot be set up (a PEM file that cannot be read, no CA).
    #[error("cannot set up TLS to the controller at {endpoint}: {why}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        why: String,
    },
    /// No connection could be made.
    #[error("cannot connect to the controller at {endpoint}: {why}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The transport error and its causes.
        why: String,
    },
    /// The controller did not accept the session.
    #[error("the controller refused the session: {0}")]
    Refused(tonic::Status),
    /// The stream broke.
    #[error("the session broke: {0}")]
    Broken(tonic::Status),
    /// The outgoing half of the stream closed.
    #[error("the session's outgoing stream closed")]
    Closed,
}

/// An error and its causes on one line (transport errors say little on their own).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
