//! Finding processes and their open files through `/proc` (Linux).
//!
//! Tests use these to check that the agent starts FFmpeg as its own child and leaves no FFmpeg
//! behind when it stops, and that a recording is (or is not) open for writing. Only `std::fs`
//! reads of `/proc` are used. On a system without `/proc` every list is empty.
//!
//! The lookups by name and by parent skip zombies (exited but not yet reaped) and return PIDs
//! in ascending order; [`list_processes`] shows every process with its state.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One entry of `/proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process ID.
    pub pid: u32,
    /// Parent's process ID.
    pub ppid: u32,
    /// `comm`: the executable's name, cut to 15 bytes by the kernel.
    pub name: String,
    /// State letter from `/proc/PID/stat`: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
}

impl ProcessInfo {
    /// Whether the process has exited and waits to be reaped (or is being torn down).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Every process `/proc` shows now (threads excluded), in ascending PID order. Processes that
/// exit while the list is read are left out.
pub fn list_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut list: Vec<ProcessInfo> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process_info)
        .collect();
    list.sort_by_key(|p| p.pid);
    list
}

/// The `/proc/PID/stat` fields of `pid`, if it exists.
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Parses `/proc/PID/stat`: `PID (COMM) STATE PPID ...`, where COMM may hold spaces and
/// parentheses (so the last `)` ends it).
fn parse_stat(stat: &str) -> Option<ProcessInfo> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let name = stat.get(open + 1..close)?.to_owned();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcessInfo {
        pid,
        ppid,
        name,
        state,
    })
}

/// The command line of `pid` (`/proc/PID/cmdline`), empty for kernel threads and zombies.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    process_info(pid).is_some_and(|p| !p.is_zombie())
}

/// Whether process `info` is called `name`: its `comm` (compared with `name` cut to 15 bytes,
/// as the kernel cuts it) or the last path component of its `argv[0]`.
fn has_name(info: &ProcessInfo, name: &str) -> bool {
    let comm_len = name.len().min(15);
    if name.is_char_boundary(comm_len) && info.name == name[..comm_len] {
        return true;
    }
    cmdline(info.pid)
        .and_then(|args| args.into_iter().next())
        .is_some_and(|argv0| Path::new(&argv0).file_name().is_some_and(|f| f == name))
}

/// Live processes called `name` (see [`ProcessInfo::name`]; `argv[0]`'s file name counts too).
pub fn processes_named(name: &str) -> Vec<u32> {
    list_processes()
        .into_iter()
        .filter(|p| !p.is_zombie() && has_name(p, name))
        .map(|p| p.pid)
        .collect()
}

/// Live direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    list_processes()
        .into_iter()
        .filter(|p| p.ppid == pid && !p.is_zombie())
        .map(|p| p.pid)
        .collect()
}

/// Live children of `pid`, their children and so on (not `pid` itself), from one snapshot of
/// `/proc`.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    descendant_infos(pid).into_iter().map(|p| p.pid).collect()
}

fn descendant_infos(pid: u32) -> Vec<ProcessInfo> {
    let all = list_processes();
    let mut found = BTreeSet::from([pid]);
    // PIDs can be reused, so a child may have a lower PID than its parent: repeat until stable.
    loop {
        let before = found.len();
        for p in &all {
            if found.contains(&p.ppid) && p.pid != pid {
                found.insert(p.pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    all.into_iter()
        .filter(|p| p.pid != pid && found.contains(&p.pid) && !p.is_zombie())
        .collect()
}

/// Live `ffmpeg` processes among the descendants of `pid` (direct children or deeper).
pub fn ffmpeg_children_of(pid: u32) -> Vec<u32> {
    descendant_infos(pid)
        .into_iter()
        .filter(|p| has_name(p, "ffmpeg"))
        .map(|p| p.pid)
        .collect()
}

/// One open file descriptor of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    /// The descriptor number.
    pub fd: u32,
    /// Where `/proc/PID/fd/FD` points (for a deleted file the kernel appends ` (deleted)`).
    pub target: PathBuf,
    /// The open flags from `/proc/PID/fdinfo/FD` (octal there), e.g. `O_WRONLY` = 1.
    pub flags: u32,
}

impl OpenFile {
    /// Whether the descriptor was opened for writing (`O_WRONLY` or `O_RDWR`).
    pub fn is_writable(&self) -> bool {
        self.flags & 0o3 != 0
    }
}

/// The open file descriptors of `pid` (empty if it is gone or not ours to inspect).
pub fn open_files(pid: u32) -> Vec<OpenFile> {
    open_files_in(&PathBuf::from(format!("/proc/{pid}")))
}

/// The open file descriptors of the calling process (`/proc/self`).
pub fn own_open_files() -> Vec<OpenFile> {
    open_files_in(Path::new("/proc/self"))
}

fn open_files_in(proc_dir: &Path) -> Vec<OpenFile> {
    let Ok(entries) = fs::read_dir(proc_dir.join("fd")) else {
        return Vec::new();
    };
    let mut files: Vec<OpenFile> = entries
        .flatten()
        .filter_map(|entry| {
            let fd: u32 = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            let fdinfo = fs::read_to_string(proc_dir.join("fdinfo").join(fd.to_string())).ok()?;
            let flags = parse_flags(&fdinfo)?;
            Some(OpenFile { fd, target, flags })
        })
        .collect();
    files.sort_by_key(|f| f.fd);
    files
}

/// The `flags:` line of `/proc/PID/fdinfo/FD`, an octal number.
fn parse_flags(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|octal| u32::from_str_radix(octal.trim(), 8).ok())
}

/// Whether process `pid` has `path` open for writing. `path` is compared after resolving
/// symbolic links, as `/proc/PID/fd` shows it.
pub fn is_open_for_writing(pid: u32, path: &Path) -> bool {
    let wanted = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    open_files(pid)
        .iter()
        .any(|f| f.is_writable() && f.target == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let info = parse_stat("4242 (my (odd) name) S 17 4242 4242 0 -1 4194560").unwrap();
        assert_eq!(info.pid, 4242);
        assert_eq!(info.name, "my (odd) name");
        assert_eq!(info.state, 'S');
        assert_eq!(info.ppid, 17);
    }

    #[test]
    fn parses_fdinfo_flags() {
        let flags = parse_flags("pos:\t0\nflags:\t0100001\nmnt_id:\t25\n").unwrap();
        assert_eq!(flags, 0o100001);
        let file = OpenFile {
            fd: 3,
            target: PathBuf::from("/x"),
            flags,
        };
        assert!(file.is_writable());
    }

    #[test]
    fn finds_own_process_and_children() {
        let me = std::process::id();
        let info = process_info(me).expect("/proc/self is readable");
        assert!(!info.is_zombie());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = children_of(me).contains(&child.id())
            && descendants_of(me).contains(&child.id())
            && processes_named("sleep").contains(&child.id())
            && ffmpeg_children_of(me).is_empty();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
        assert!(!is_alive(child.id()));
    }
}
