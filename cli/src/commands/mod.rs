//! One module per verb group of `fleetctl`.

pub mod config;
