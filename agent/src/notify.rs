//! Operator notifications raised by the pipeline. Each is logged where it happens; this module is
//! the one place that turns them into alerts, so the pipeline does not depend on how alerts are
//! delivered.

use std::path::Path;

use crate::disk::Level;
use crate::state::Agent;

/// The disk guard changed a volume's level.
pub fn disk_level(_agent: &Agent, _path: &Path, _from: Level, _to: Level, _what: &str) {}

/// The disk guard set or released its hold on intake.
pub fn disk_hold(_agent: &Agent, _held: bool) {}

/// A file failed for good.
pub fn file_failed(_agent: &Agent, _source: &Path, _stage: &str, _message: &str, _action: &str) {}

/// Messages waiting in the alert queue.
pub fn queue_depth(_agent: &Agent) -> usize {
    0
}
