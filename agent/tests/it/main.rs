//! The agent's integration tests in one test binary (a file per topic, as modules): each
//! binary links the whole workspace, so one binary links once where twenty did. The real
//! `h264-agent` runs as a child process in nearly every test, so the tests share nothing
//! process-wide but the harness. `alerts.rs` stays a binary of its own: it sets process
//! environment variables (an SMTP password, `SSL_CERT_FILE`) that the agents other tests start
//! would inherit.

#[path = "../common/mod.rs"]
mod common;
#[path = "../session_controller/mod.rs"]
mod session_controller;

mod captions;
mod captions_ts;
mod ccextractor_standin;
mod control;
mod convert;
mod disk;
mod hardening;
mod lifecycle;
mod mp4_facts;
mod names;
mod outage;
mod policy;
mod recordings;
mod service;
mod session;
mod session_outage;
mod session_trust;
mod shadow_compare;
mod shadow_runner;
mod stall;
mod symlinks;
mod telemetry;
mod unreadable;
