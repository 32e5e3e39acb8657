//! Finding and running the real `ffmpeg` and `ffprobe` from `PATH`.
//!
//! Tests that need FFmpeg call [`require_ffmpeg`] first: it panics when a tool is missing, so
//! a machine without FFmpeg fails the suite instead of skipping tests silently.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The message [`require_ffmpeg`] panics with (followed by the names of the missing tools).
pub const MISSING_FFMPEG: &str = "ffmpeg/ffprobe not found on PATH; install with `apt-get install \
                                  ffmpeg` or run scripts/test.sh";

/// Panics unless both `ffmpeg` and `ffprobe` can be run from `PATH`.
///
/// The check runs once per process; later calls return at once (or panic again with the same
/// message).
pub fn require_ffmpeg() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = CHECK.get_or_init(check_tools) {
        panic!("{message}");
    }
}

/// Whether both `ffmpeg` and `ffprobe` can be run from `PATH` (not cached).
pub fn ffmpeg_available() -> bool {
    check_tools().is_ok()
}

fn check_tools() -> Result<(), String> {
    let missing: Vec<&str> = ["ffmpeg", "ffprobe"]
        .into_iter()
        .filter(|tool| !runs(tool))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{MISSING_FFMPEG} (missing: {})",
            missing.join(", ")
        ))
    }
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// `file:` followed by `path`, as FFmpeg's input or output argument.
///
/// FFmpeg reads an argument that starts with `-` as an option and one with a `proto:` prefix as
/// a protocol; the `file:` prefix makes it take any file name literally.
pub fn file_arg(path: &Path) -> OsString {
    let mut arg = OsString::from("file:");
    arg.push(path.as_os_str());
    arg
}

/// Runs `ffmpeg -hide_banner -nostdin -y -v error ARGS...` and returns an error with the
/// command line and FFmpeg's messages if it cannot start or exits unsuccessfully.
pub fn try_run_ffmpeg<I, S>(args: I) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    require_ffmpeg();
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-nostdin", "-y", "-v", "error"])
        .args(args)
        .stdin(Stdio::null());
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|err| format!("could not run {shown}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ))
    }
}

/// Like [`try_run_ffmpeg`], but panics on failure (for fixture generation in tests).
pub fn run_ffmpeg<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    if let Err(message) = try_run_ffmpeg(args) {
        panic!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_message_is_exact() {
        assert_eq!(
            MISSING_FFMPEG,
            "ffmpeg/ffprobe not found on PATH; install with `apt-get install ffmpeg` or run \
             scripts/test.sh"
        );
    }

    #[test]
    fn file_arg_keeps_leading_dashes_literal() {
        assert_eq!(
            file_arg(Path::new("-x y.ts")),
            OsString::from("file:-x y.ts")
        );
    }
}
