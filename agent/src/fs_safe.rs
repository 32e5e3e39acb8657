//! File operations that never follow a symlink someone planted in a shared folder.
//!
//! Output folders are shares other people write to (playout, editors), and watch roots are
//! written by recorders and SMB users: any name there may be a symlink to a file the agent's
//! service user can write. So the agent:
//! - writes temporaries only in a private work folder beside the output (`.h264create-work`,
//!   created 0700, checked to be a real folder the agent owns, never a symlink), under short
//!   fixed-length names (a 255-byte source name still fits), created with `O_EXCL|O_NOFOLLOW`;
//! - gives them their final name with `rename`/`link`, which replace or refuse a name and never
//!   write through it;
//! - creates files it must create in place (`.error.txt`) with `O_EXCL|O_NOFOLLOW`;
//! - checks with `symlink_metadata`, never `metadata`, whether a name is taken.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The private work folder's name, in each output folder.
pub const WORK_DIR: &str = ".h264create-work";

/// Why a path was not written.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    /// A name the agent writes was taken by a symlink (or another kind of file).
    #[error("{} is a symlink or not a folder the agent owns: refused, nothing written through it; remove it", .0.display())]
    Planted(PathBuf),
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl From<UnsafePath> for io::Error {
    fn from(e: UnsafePath) -> io::Error {
        match e {
            UnsafePath::Io { source, .. } => source,
            planted => io::Error::new(io::ErrorKind::PermissionDenied, planted.to_string()),
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnsafePath + '_ {
    move |source| UnsafePath::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary name of `output` (a file of folder `dir`): `dir/.h264create-work/.<hash>.<ext>
/// .h264create-tmp`, 64 hex digits whatever the length of the name.
pub fn work_temp(output: &Path) -> PathBuf {
    let dir = output.parent().unwrap_or(Path::new("."));
    let name = output.file_name().unwrap_or_default();
    let digest = Sha256::digest(name.as_encoded_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().chars().take(8).collect::<String>())
        .unwrap_or_default();
    dir.join(WORK_DIR)
        .join(format!(".{hex}.{ext}{}", crate::publish::TEMP_SUFFIX))
}

/// Makes sure `dir/.h264create-work` is a real folder the agent owns, readable by nobody else;
/// creates it (0700) when missing. A symlink or someone else's folder under that name is
/// refused.
pub fn ensure_work_dir(dir: &Path) -> Result<PathBuf, UnsafePath> {
    let work = dir.join(WORK_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&work) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_at(&work)(e)),
    }
    let meta = std::fs::symlink_metadata(&work).map_err(io_at(&work))?;
    let owned = meta.uid() == nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_dir() || !owned || meta.permissions().mode() & 0o077 != 0 {
        return Err(UnsafePath::Planted(work));
    }
    Ok(work)
}

/// Creates `path` for writing, failing when the name exists in any form (a symlink included):
/// `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 (before the umask).
pub fn create_new(path: &Path) -> Result<std::fs::File, UnsafePath> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => UnsafePath::Planted(path.to_path_buf()),
            _ => io_at(path)(e),
        })
}

/// Creates an empty temporary for `output` in the private work folder (removing a leftover of
/// the agent's own there first) and returns its path, for FFmpeg to write.
pub fn fresh_temp(output: &Path) -> Result<PathBuf, UnsafePath> {
    let dir = output.parent().unwrap_or(Path::new("."));
    ensure_work_dir(dir)?;
    let temp = work_temp(output);
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(&temp)(e)),
    }
    create_new(&temp)?;
    Ok(temp)
}

/// Gets an output folder ready for a job: the folders between the output root `root` and
/// `output` (created when missing, never through a symlink), the private work folder, and a
/// fresh empty temporary for `output` in it. The root itself is never created here: a root that
/// vanished (an unmounted share) is an error, not a new folder on the local disk.
pub fn prepare_output(output: &Path, root: &Path) -> io::Result<()> {
    if !std::fs::metadata(root).is_ok_and(|m| m.is_dir()) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the output root {} is missing: it is not recreated (a share that is not mounted?)",
                root.display()
            ),
        ));
    }
    if let Some(parent) = output.parent() {
        create_dirs_beneath(root, parent)?;
    }
    fresh_temp(output)?;
    Ok(())
}

/// Replaces `path` with `bytes` without ever writing through a symlink at `path`: the bytes go
/// to a new file in the private work folder, then `rename` gives it the name (replacing a
/// planted link, not its target).
pub fn replace_with(path: &Path, bytes: &[u8]) -> Result<(), UnsafePath> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_work_dir(dir)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".progress");
    let temp = work_temp(&dir.join(name));
    let _ = std::fs::remove_file(&temp);
    let mut file = create_new(&temp)?;
    let written = file.write_all(bytes).map_err(io_at(&temp));
    drop(file);
    let renamed = written.and_then(|()| std::fs::rename(&temp, path).map_err(io_at(path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed
}

/// Whether any name is at `path` (a dangling symlink counts).
pub fn taken(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Creates `dir` and the folders above it up to `base` (which must exist), refusing a symlink
/// anywhere on the way: each part must be a real folder.
pub fn create_dirs_beneath(base: &Path, dir: &Path) -> Result<(), UnsafePath> {
    let rel = dir.strip_prefix(base).unwrap_or(Path::new(""));
    let mut at = base.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match std::fs::DirBuilder::new().mode(0o755).create(&at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&at)(e)),
        }
        let meta = std::fs::symlink_metadata(&at).map_err(io_at(&at))?;
        if !meta.file_type().is_dir() {
            return Err(UnsafePath::Planted(at));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_symlinks_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.conf");
        std::fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let link = out.join(".show.mp4.progress");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        replace_with(&link, b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&link).unwrap(), b"{}");
        let planted = out.join("note.txt");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        assert!(matches!(create_new(&planted), Err(UnsafePath::Planted(_))));
        // A planted work folder is refused.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(dir.path(), other.join(WORK_DIR)).unwrap();
        assert!(matches!(
            ensure_work_dir(&other),
            Err(UnsafePath::Planted(_))
        ));
    }

    #[test]
    fn temporary_names_fit_whatever_the_name() {
        let long = "x".repeat(251) + ".mp4";
        let temp = work_temp(&Path::new("/out").join(&long));
        assert!(temp.file_name().unwrap().len() < 100, "{temp:?}");
        assert!(temp.starts_with("/out/.h264create-work"));
    }
}
