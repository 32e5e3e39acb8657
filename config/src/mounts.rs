//! Which file system a folder is on, from `/proc/mounts` (Linux): the agent polls folders on
//! network shares in `mode = "auto"`, and `--check` warns when readiness is too quick for one.

use std::path::Path;

/// File-system types that are network shares: events do not cross them, and the agent cannot
/// see which process on the recorder's machine holds a file open.
pub const NETWORK_FS: [&str; 10] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "ceph",
    "glusterfs",
    "afs",
];

/// The type of the file system `path` (absolute, symlinks resolved) is on, from the longest
/// mount point containing it in `/proc/mounts`; `None` when that cannot be read.
pub fn fs_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    fs_type_in(&mounts, path)
}

/// [`fs_type`] from the text of `/proc/mounts`.
pub fn fs_type_in(mounts: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_dev), Some(mnt), Some(fstype)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mnt = mnt.replace("\\040", " ");
        if path.starts_with(&mnt) && best.as_ref().is_none_or(|(len, _)| mnt.len() > *len) {
            best = Some((mnt.len(), fstype.to_string()));
        }
    }
    best.map(|(_, fs)| fs)
}

/// Whether `path` (absolute, symlinks resolved) lives on a network file system.
pub fn on_network_fs(path: &Path) -> bool {
    fs_type(path).is_some_and(|fs| NETWORK_FS.contains(&fs.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = "/dev/vda / ext4 rw 0 0\n\
                      //rec01/capture /srv/h264create/rec01 cifs rw,actimeo=1 0 0\n\
                      //rec02/my\\040share /mnt/my\\040share cifs rw 0 0\n";
        let at = |p: &str| fs_type_in(mounts, Path::new(p));
        assert_eq!(at("/srv/h264create/rec01/in").as_deref(), Some("cifs"));
        assert_eq!(at("/srv/h264create/rec011").as_deref(), Some("ext4"));
        assert_eq!(at("/mnt/my share/x").as_deref(), Some("cifs"));
        assert_eq!(at("/var/lib").as_deref(), Some("ext4"));
    }
}
