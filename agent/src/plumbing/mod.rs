//! Plumbing the pipeline stands on, apart from the stages: supervised child processes
//! ([`child`]), the priority they run at ([`priority`]) and the kernel's account of them
//! ([`procstat`]: CPU time, scheduling class), log lines no file name can forge ([`escape`]),
//! FFmpeg input arguments ([`ffarg`]), the state folder's lock ([`lock`]), the agent's own log
//! files ([`logfile`]) and its named long-lived tasks ([`tasks`]). Nothing here knows about
//! jobs, the journal or the fleet.

pub mod child;
pub mod escape;
pub mod ffarg;
pub mod lock;
pub mod logfile;
pub mod priority;
pub mod procstat;
pub mod tasks;
