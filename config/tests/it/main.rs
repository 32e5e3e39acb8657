//! The configuration crate's integration tests in one test binary (a file per topic, as
//! modules): each binary links the workspace, so one binary links once where ten did.

#[path = "../support/cases.rs"]
mod cases;

mod dual;
mod equivalence;
mod fixtures;
mod fleet;
mod hostile;
mod ini;
mod load;
mod migrate;
mod trust;
mod validate;
