//! `h264-controller`: the control plane of an h264create fleet. It keeps the fleet
//! configuration as numbered, SHA256-identified revisions, pushes every agent its assignment
//! over one bidirectional gRPC session per agent, records what each agent acknowledges, runs
//! and reports (stats, events), and serves fleetctl's admin API.
//!
//! The modules follow the flow: [`store`] (SQLite, survives restarts) → [`registry`] (the
//! fleet in memory, the push rules) ← [`session`] (agents) and [`admin`] (fleetctl);
//! [`persist`] writes the registry back behind them; [`rollout`] moves a revision through
//! canary and percentage steps behind health gates; [`run`] wires it all on one listener;
//! [`metrics`] observes the registry and the rollouts for Prometheus and OTLP. Trust:
//! [`web`] serves the console (`[web] listen`) over the admin API.
//! [`history`] takes in the agents' job history records and keeps them for reports.
//! [`listen`] accepts connections (TLS, the peer's certificate identity) and [`auth`] decides
//! who may call what (tokens, operator certificates, roles).
//! The binary only parses arguments, sets up logging, telemetry and signals, and calls
//! [`run()`].

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod config;
pub mod history;
pub mod listen;
pub mod metrics;
pub mod model;
pub mod persist;
pub mod registry;
pub mod rollout;
pub mod run;
pub mod selector;
pub mod session;
pub mod store;
pub mod web;

pub use config::ControllerConfig;
pub use run::{bind, run, Bound, ControllerError};
