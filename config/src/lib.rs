//! Configuration formats of h264create.
//!
//! Today: the agent's TOML file ([`AgentConfig`]), loaded strictly by [`load_agent_config`] /
//! [`parse_agent_config`] (unknown keys are errors with a "did you mean"), validated with every
//! problem reported at once ([`Problem`]), and hashed in a canonical form
//! ([`AgentConfig::canonical_json`], [`sha256_hex`]).
//! Later: legacy INI and fleet YAML manifests.

pub mod agent;
pub mod canonical;
mod fields;
pub mod load;
pub mod problem;
mod suggest;
pub mod units;
pub mod validate;

pub use agent::AgentConfig;
pub use canonical::sha256_hex;
pub use load::{load_agent_config, parse_agent_config, ConfigError, Loaded};
pub use problem::{Problem, Severity};
pub use units::{ByteSize, FreeSpace, HumanDuration};
