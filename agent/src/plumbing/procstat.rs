//! The kernel's account of a process, from `/proc/PID/stat`: the CPU time it used (all its
//! threads, user and system, and the children it waited for) and the scheduling policy and
//! niceness it runs with.
//!
//! The file stays readable after the process exits until its parent reaps it, so a parent
//! that reads it before waiting (as [`crate::transcode`] does when FFmpeg closes its output)
//! gets the whole run. Reading a file is all this takes: no `unsafe`, no `wait4`.

use std::time::Duration;

/// `SCHED_IDLE`, as `/proc/PID/stat` gives the policy.
pub const SCHED_IDLE: u32 = 5;

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// User + system CPU time of its threads and of the children it reaped, in clock ticks.
    pub cpu_ticks: u64,
    /// Its niceness (-20 to 19).
    pub nice: i32,
    /// Its scheduling policy (0 normal, 3 batch, 5 idle, ...).
    pub policy: u32,
}

impl Stat {
    /// Parses the text of a `/proc/PID/stat` file (`None` if it is not one).
    pub fn parse(text: &str) -> Option<Stat> {
        // The command name (field 2) is in parentheses and may hold spaces or `)`: the fields
        // after it start after the last `)`. There, index 0 is field 3 (the state).
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |field: usize| -> Option<u64> { fields.get(field - 3)?.parse().ok() };
        let cpu_ticks = [14, 15, 16, 17]
            .into_iter()
            .map(number)
            .sum::<Option<u64>>()?;
        Some(Stat {
            cpu_ticks,
            nice: fields.get(19 - 3)?.parse().ok()?,
            policy: u32::try_from(number(41)?).ok()?,
        })
    }

    /// The CPU time.
    pub fn cpu(&self) -> Duration {
        let per_sec = ticks_per_second();
        Duration::from_secs(self.cpu_ticks / per_sec)
            + Duration::from_secs_f64((self.cpu_ticks % per_sec) as f64 / per_sec as f64)
    }
}

/// What the kernel says of process `pid` now (`None`: no such process, or no `/proc`).
pub fn read(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Stat::parse(&text)
}

/// The clock ticks per second `/proc` counts in (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_after_the_command_name() {
        // The shape of an idle-class FFmpeg's line, with an awkward name.
        let line = "4242 (ff) mpeg (x)) S 1 4242 4242 0 -1 4194560 3000 0 0 0 250 50 7 3 39 19 \
                    4 0 900 100000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 \
                    5 0 0 0 0 0 0 0 0 0 0 0\n";
        let s = Stat::parse(line).unwrap();
        assert_eq!(
            s,
            Stat {
                cpu_ticks: 310,
                nice: 19,
                policy: SCHED_IDLE
            }
        );
        assert_eq!(Stat::parse("garbage"), None);
        assert_eq!(Stat::parse("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = read(std::process::id()).expect("/proc/self/stat");
        assert!((-20..=19).contains(&me.nice), "{me:?}");
        assert!(me.cpu() < Duration::from_secs(100_000), "{me:?}");
    }
}
