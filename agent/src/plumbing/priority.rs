//! The priority the agent's children run at: production's at the agent's own, shadow work's
//! ([`crate::shadow`]) at the lowest the host grants, so that it only takes what production
//! leaves.
//!
//! # Theory of operation
//! Every child the agent starts for a job (FFmpeg, ffprobe, CCExtractor) is built by
//! [`command`]. Outside a [`lowest`] scope it is exactly `Command::new(program)`: production's
//! children are never changed. Inside one (a tokio task-local: the future given to
//! [`lowest`], and the tasks it spawns through [`within`]`(`[`current`]`(), ..)`), the program
//! is wrapped in the [`Lowest`] wrapper this host allows, found once per process by
//! [`Lowest::detect`]:
//! - [`Lowest::Idle`]: `chrt --idle 0 ionice -c 3 -t PROGRAM ARGS`. The `SCHED_IDLE`
//!   scheduling class runs the program only on CPU time no normal task wants (a niced task
//!   still takes a share of a busy CPU: measured, production 15-23 % slower beside `nice -n 10`
//!   shadow work on two cores, 3 % beside `SCHED_IDLE`, see `benches/README.md`), and the idle
//!   I/O class only reads when the disk is otherwise idle (`-t`: a kernel whose I/O scheduler
//!   has no classes is not an error). Both tools come with util-linux, need no privilege to
//!   lower a priority, and exec the program: it keeps the pid, the process group and the
//!   signals the supervisor ([`super::child`]) relies on.
//! - [`Lowest::Nice`]: `nice -n 19 PROGRAM ARGS`, when `chrt` is missing or refused (a
//!   container whose seccomp profile forbids changing the scheduling class); one warning.
//! - [`Lowest::Unchanged`]: when even `nice` cannot run: the program runs as is, with one
//!   warning (shadow work then competes with production; a missing wrapper must not be
//!   reported as the candidate's failure).
//!
//! The workspace forbids `unsafe`, so the priority is never set between fork and exec
//! (`pre_exec`): wrapping the command is the only way, and a cheap one (two execs).

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::Path;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// How this host runs a program at the lowest priority (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lowest {
    /// `chrt --idle 0 ionice -c 3 -t`: the idle scheduling class and the idle I/O class.
    Idle,
    /// `nice -n 19`: `chrt` is missing or refused.
    Nice,
    /// No wrapper works: the program runs at the agent's priority.
    Unchanged,
}

/// The wrapper of [`Lowest::Idle`].
const IDLE: [&str; 6] = ["--idle", "0", "ionice", "-c", "3", "-t"];

tokio::task_local! {
    static SCOPE: Lowest;
}

static DETECTED: OnceCell<Lowest> = OnceCell::const_new();

impl Lowest {
    /// The wrapper this host allows: tried once per process (a run of `true` under each
    /// wrapper, best first), logged once; later calls return the first answer.
    pub async fn detect() -> Lowest {
        *DETECTED
            .get_or_init(|| async {
                let (found, why) = Self::probe().await;
                match found {
                    Lowest::Idle => tracing::debug!(
                        "shadow work runs in the idle scheduling and I/O classes (chrt --idle, ionice -c 3)"
                    ),
                    Lowest::Nice => tracing::warn!(
                        why = %why,
                        "chrt --idle is missing or refused on this host: shadow work runs under nice -n 19 \
                         and takes a share of the CPU from production; install util-linux or allow \
                         sched_setscheduler to the agent"
                    ),
                    Lowest::Unchanged => tracing::warn!(
                        why = %why,
                        "neither chrt --idle nor nice can run on this host: shadow work runs at the \
                         agent's own priority and competes with production; install util-linux and coreutils"
                    ),
                }
                found
            })
            .await
    }

    /// The first wrapper that runs `true`; why the better ones did not.
    async fn probe() -> (Lowest, String) {
        let mut why = Vec::new();
        for candidate in [Lowest::Idle, Lowest::Nice] {
            let mut cmd = candidate.wrap(Path::new("true"));
            let limit = std::time::Duration::from_secs(10);
            let never = tokio_util::sync::CancellationToken::new();
            match super::child::run_captured(&mut cmd, limit, &never).await {
                Ok(out) if out.status.success() => return (candidate, why.join("; ")),
                Ok(out) => why.push(format!(
                    "{} ({}): {}",
                    candidate.as_str(),
                    out.status,
                    super::child::tail_lines(&out.stderr, 2)
                )),
                Err(e) => why.push(format!("{}: {e}", candidate.as_str())),
            }
        }
        (Lowest::Unchanged, why.join("; "))
    }

    /// `program` wrapped so that it runs at this priority (arguments follow as usual).
    pub fn wrap(self, program: &Path) -> Command {
        match self {
            Lowest::Idle => {
                let mut cmd = Command::new("chrt");
                cmd.args(IDLE).arg(program);
                cmd
            }
            Lowest::Nice => {
                let mut cmd = Command::new("nice");
                cmd.args(["-n", "19"]).arg(program);
                cmd
            }
            Lowest::Unchanged => Command::new(program),
        }
    }

    /// Its name, for logs and tests: `idle`, `nice` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lowest::Idle => "idle",
            Lowest::Nice => "nice",
            Lowest::Unchanged => "unchanged",
        }
    }
}

/// A command for `program`: wrapped when the calling task runs inside [`lowest`], else
/// exactly `Command::new(program)`.
pub fn command(program: &Path) -> Command {
    match current() {
        Some(lowest) => lowest.wrap(program),
        None => Command::new(program),
    }
}

/// The wrapper of the calling task's scope, if it runs inside [`lowest`] (to hand to a task
/// it spawns, through [`within`]).
pub fn current() -> Option<Lowest> {
    SCOPE.try_with(|l| *l).ok()
}

/// Runs `work` so that every child it starts through [`command`] runs at the lowest priority
/// this host allows.
pub async fn lowest<F: Future>(work: F) -> F::Output {
    let lowest = Lowest::detect().await;
    SCOPE.scope(lowest, work).await
}

/// Runs `work` in the scope `scope` (from [`current`] in the task that spawned this one).
pub async fn within<F: Future>(scope: Option<Lowest>, work: F) -> F::Output {
    match scope {
        Some(lowest) => SCOPE.scope(lowest, work).await,
        None => work.await,
    }
}

/// The program and arguments of `cmd`, for messages and tests.
pub fn describe(cmd: &Command) -> Vec<OsString> {
    let std = cmd.as_std();
    std::iter::once(std.get_program())
        .chain(std.get_args())
        .map(OsStr::to_os_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cmd: &Command) -> String {
        describe(cmd)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn each_wrapper_execs_the_program_with_its_arguments() {
        let program = Path::new("/opt/ff mpeg/ffmpeg");
        let mut idle = Lowest::Idle.wrap(program);
        idle.arg("-i");
        assert_eq!(
            line(&idle),
            "chrt --idle 0 ionice -c 3 -t /opt/ff mpeg/ffmpeg -i"
        );
        assert_eq!(describe(&idle)[7], OsString::from("/opt/ff mpeg/ffmpeg"));
        assert_eq!(
            line(&Lowest::Nice.wrap(program)),
            "nice -n 19 /opt/ff mpeg/ffmpeg"
        );
        assert_eq!(
            line(&Lowest::Unchanged.wrap(program)),
            "/opt/ff mpeg/ffmpeg"
        );
    }

    #[tokio::test]
    async fn only_a_scope_changes_the_command() {
        assert_eq!(line(&command(Path::new("ffprobe"))), "ffprobe");
        assert_eq!(current(), None);
        let inside = within(Some(Lowest::Nice), async {
            let here = current();
            // A task spawned inside keeps the scope only when it is handed on.
            let lost = tokio::spawn(async { current() }).await.unwrap();
            let kept = tokio::spawn(within(here, async { current() }))
                .await
                .unwrap();
            (line(&command(Path::new("ffprobe"))), lost, kept)
        })
        .await;
        assert_eq!(
            inside,
            ("nice -n 19 ffprobe".to_string(), None, Some(Lowest::Nice))
        );
        assert_eq!(line(&command(Path::new("ffprobe"))), "ffprobe");
    }
}
