//! Configuration formats of h264create: what the agent and the fleet are told to do, read
//! strictly, checked thoroughly, and hashed so two configs can be compared.
//!
//! - The agent's file: TOML ([`parse_agent_config`], [`load_agent_config`]) or the legacy INI
//!   layout ([`parse_ini_config`]), both into one typed [`AgentConfig`]. [`load_config`] picks
//!   the file (a directory, TOML then INI) and falls back from a broken TOML file to the INI
//!   beside it, loudly ([`Loaded::fallback`]).
//! - Every problem at once ([`Problem`]: file, line, key path, message, hint), unknown keys with
//!   a "did you mean", risky values as warnings ([`validate`]).
//! - A canonical form and its SHA256 ([`AgentConfig::canonical_json`]), equal for equal
//!   meanings whatever the format; [`migrate`] turns INI into TOML and proves they mean the same.
//! - Fleet manifests ([`fleet`]): Kubernetes-style YAML setting the pipeline sections and the
//!   rollout, merged over each agent's local config.
//! - Guards against hostile input ([`limits`]): size, encoding, nesting, alias expansion.
//! - The controller's file ([`controller::parse_controller_file`]), read and checked with the
//!   same machinery; its `[alerts]` are `agent.toml`'s.

pub mod agent;
pub mod canonical;
pub mod controller;
pub mod credentials;
mod dual;
mod fields;
pub mod fleet;
mod ini;
mod keypath;
pub mod limits;
mod lines;
pub mod load;
pub mod migrate;
pub mod mounts;
pub mod problem;
mod strict;
mod suggest;
mod toml_spans;
pub mod units;
pub mod validate;

pub use agent::AgentConfig;
pub use canonical::sha256_hex;
pub use dual::{load_config, load_config_with};
pub use ini::parse_ini_config;
pub use load::{
    load_agent_config, load_agent_config_with, parse_agent_config, parse_agent_config_with,
    ConfigError, Fallback, Format, Loaded,
};
pub use problem::{Problem, Severity};
pub use units::{ByteSize, FreeSpace, HumanDuration};
pub use validate::Checks;
