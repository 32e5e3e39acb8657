//! Configuration formats of h264create.
//!
//! Today: the agent's TOML file ([`AgentConfig`]), loaded strictly by [`load`] (unknown keys are
//! errors with a "did you mean"), validated with every problem reported at once ([`Problem`]).
//! Later: legacy INI, fleet YAML manifests, canonical form and SHA256.

pub mod agent;
pub mod units;
