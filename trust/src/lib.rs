//! Fleet trust for h264create, shared by the controller, the agent and fleetctl:
//!
//! - [`identity`]: who a certificate says its holder is (`h264create://agent/ID`,
//!   `h264create://operator/ROLE/NAME`), and the operator roles (viewer < operator < admin);
//! - [`signing`]: ed25519 keys in one-line text files and the signed statement of a revision
//!   (its generation and canonical SHA256), so agents apply only what an operator signed;
//! - [`tls`]: reading PEM files into rustls/tonic TLS settings (rustls with ring; no OpenSSL);
//! - [`pki`]: a small certificate authority for a fleet (`fleetctl pki init|issue`).

pub mod identity;
pub mod pki;
pub mod signing;
pub mod tls;

pub use identity::{Identity, Role};
pub use signing::{PublicKey, SecretKey, SignatureError};
