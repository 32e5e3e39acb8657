//! h264create as a service: what the agent and the controller need to run under a service
//! manager, and what the package installs beside the programs.
//!
//! - [`systemd`]: the notification protocol of `Type=notify` units, spoken by hand (a datagram
//!   to `$NOTIFY_SOCKET`, no libsystemd): `READY=1`, `STATUS=`, `WATCHDOG=1` at half of
//!   `$WATCHDOG_USEC`, `STOPPING=1`. Without `$NOTIFY_SOCKET` every call does nothing, so the
//!   programs behave the same from a terminal, a container or a unit.
//! - Credentials (`LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`) are configuration:
//!   `h264_config::credentials` finds them, so that `--check` looks at them too.
//! - [`signals`]: two-phase shutdown on SIGTERM/SIGINT (cancel, then force), shared by both
//!   daemons.
//! - [`cli`]: man pages (`clap_mangen`) and shell completions (`clap_complete`) made from the
//!   programs' own argument definitions, so they never drift from `--help`.

pub mod cli;
pub mod signals;
pub mod systemd;
