//! Start-up clean-up after a crash: FFmpeg processes that an earlier agent started and that
//! outlived it (each child has a process group of its own, so a `kill -9` of the agent does not
//! reach them). They are found by their output argument, a temporary file in one of this agent's
//! output folders, and killed before those temporaries are removed and the jobs redone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::publish::TEMP_SUFFIX;

/// Kills every process writing a temporary output under one of `outputs`; returns their pids.
#[cfg(target_os = "linux")]
pub fn kill_orphans(outputs: &[PathBuf]) -> Vec<i32> {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let writes_our_temp = cmdline.split(|b| *b == 0).any(|arg| {
            let arg = String::from_utf8_lossy(arg);
            let path = arg.strip_prefix("file:").unwrap_or(&arg);
            path.ends_with(TEMP_SUFFIX) && outputs.iter().any(|o| Path::new(path).starts_with(o))
        });
        if writes_our_temp {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && killed.iter().any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// Elsewhere there is no `/proc` to search; the temporaries are still removed.
#[cfg(not(target_os = "linux"))]
pub fn kill_orphans(_outputs: &[PathBuf]) -> Vec<i32> {
    Vec::new()
}
