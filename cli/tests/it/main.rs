//! fleetctl's integration tests in one test binary (a file per topic, as modules): each binary
//! links the whole workspace, so one binary links once where eleven did. The helpers they
//! share are modules here too: the other binaries of the workspace ([`bins`]), the controller
//! process and a protocol-speaking agent (the controller's test support), a real agent joined
//! to a controller ([`fleet_agent`]) and the rollout helpers ([`rollouts`]).

#[path = "../support/bins.rs"]
mod bins;
#[path = "../../../controller/tests/support/controller.rs"]
mod controller;
#[path = "../../../controller/tests/support/fake_agent.rs"]
mod fake_agent;
#[path = "../support/fleet_agent.rs"]
mod fleet_agent;
#[path = "../support/rollouts.rs"]
mod rollouts;

mod agent_local;
mod config;
mod console_e2e;
mod fleet;
mod fleet_e2e;
mod history_e2e;
mod rollout;
mod rollout_e2e;
mod shadow_e2e;
mod trace_e2e;
mod trust_e2e;
