//! The gRPC protocol of h264create: the agent's local control API (`h264create.v1.AgentControl`),
//! the agent sessions and the controller's admin API (`FleetSession`, `FleetAdmin`).
//!
//! Stages, outcomes, sync states and rollout phases are protobuf enums; [`names`] gives each
//! value the name logs, the journal and fleetctl show.
//!
//! The `.proto` files are in `proto/`; `build.rs` compiles them with `protox`, so building needs
//! no system `protoc`.

#![allow(missing_docs, clippy::all)]

/// Version 1 of the protocol.
pub mod v1 {
    tonic::include_proto!("h264create.v1");
}

pub mod names;
pub mod shadow;
