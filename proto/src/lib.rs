//! The gRPC protocol shared by the agent, the controller and `fleetctl`.
//!
//! The `.proto` files live beside this crate; the generated tonic/prost code is added here when
//! the first service (the agent's local control API) lands. Nothing depends on it yet.
