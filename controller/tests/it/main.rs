//! The controller's integration tests in one test binary (a file per topic, as modules): each
//! binary links the whole workspace, so one binary links once where nine did.

#[path = "../support/mod.rs"]
mod support;

mod hardening;
mod history;
mod metrics;
mod rollout_trace;
mod rollouts;
mod service;
mod sessions;
mod state;
mod trust;
