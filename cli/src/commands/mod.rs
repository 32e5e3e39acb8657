//! One module per verb group of `fleetctl`, plus what they share: the connection and exit codes
//! (`client`), the output formats (`output`) and the serde views of the protocol (`views`).

pub mod agent;
pub mod apply;
pub mod assign;
pub mod client;
pub mod config;
pub mod describe;
pub mod get;
pub mod jobs;
pub mod output;
pub mod report;
pub mod rollout;
pub mod shadow;
pub mod status;
pub mod trust;
pub mod views;
