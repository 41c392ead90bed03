//! The sandbox's mount table: which mounts to harden and how, decided from
//! /proc/self/mountinfo alone (never `statfs`: a stopped FUSE daemon of another session would
//! hang it), then carried out.
//!
//! Every mount becomes `nosuid,nodev` (root keeps CAP_MKNOD, and a device node it makes on a
//! writable mount, or finds on a read-only one, must not open a host disk); every mount but
//! the writable binds also becomes read-only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::SandboxError;

/// One bind remount to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remount {
    pub point: PathBuf,
    pub flags: MsFlags,
}

/// The flags a remount must keep from a mount's per-mount options: `ro` (a writable bind of
/// a read-only mount stays read-only) and `noexec`, which a user namespace may not clear.
/// The kernel keeps the atime flags of a remount that names none.
pub fn kept_flags(options: &str) -> MsFlags {
    options
        .split(',')
        .fold(MsFlags::empty(), |flags, option| match option {
            "ro" => flags | MsFlags::MS_RDONLY,
            "noexec" => flags | MsFlags::MS_NOEXEC,
            _ => flags,
        })
}

/// The remounts that harden the mount table `info`. Mounts at `writable` targets get
/// `nosuid,nodev`; mounts below one are hidden by it (binds are not recursive) and left
/// alone; mounts at or below an `own` path (the fresh /proc and /dev, the hidden stores) were
/// made hardened; every other mount is made read-only, `nosuid,nodev`. For a point listed
/// several times the last line is the visible mount.
pub fn hardening(info: &str, writable: &[PathBuf], own: &[PathBuf]) -> Vec<Remount> {
    let mut order: Vec<PathBuf> = Vec::new();
    let mut options: HashMap<PathBuf, String> = HashMap::new();
    for m in crate::mount::mountinfo(info) {
        if options.insert(m.point.clone(), m.options).is_none() {
            order.push(m.point);
        }
    }
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    order
        .into_iter()
        .filter(|p| !own.iter().any(|o| p.starts_with(o)))
        .filter_map(|point| {
            let kept = kept_flags(&options[&point]);
            let flags = if writable.contains(&point) {
                base | kept
            } else if writable.iter().any(|w| point.starts_with(w)) {
                return None;
            } else {
                base | kept | MsFlags::MS_RDONLY
            };
            Some(Remount { point, flags })
        })
        .collect()
}

/// Mount points of agentfs FUSE mounts in `info` other than `keep`: other sessions' mounts,
/// which a sandbox has no business reaching (and whose copies would keep their daemons
/// serving after the host unmounted them).
pub fn foreign_sessions(info: &str, keep: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in crate::mount::mountinfo(info) {
        let ours = m.fstype.starts_with("fuse") && m.source.starts_with("agentfs:");
        if ours && !keep.contains(&m.point) && !out.contains(&m.point) {
            out.push(m.point);
        }
    }
    // Children first, so that a parent's detach does not take a child's path away.
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Whether a failed mount call on `point` means it is not reachable from here: hidden under
/// another mount (EINVAL: no mount root there), gone (ENOENT, ENOTDIR) or behind a directory
/// the user may not search (EACCES), which the command cannot pass either.
fn unreachable(e: Errno) -> bool {
    matches!(
        e,
        Errno::EINVAL | Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES
    )
}

/// Carries out one remount.
pub fn apply(r: &Remount) -> Result<(), SandboxError> {
    match mount(None::<&str>, &r.point, None::<&str>, r.flags, None::<&str>) {
        Err(source) if !unreachable(source) => Err(SandboxError::Harden {
            point: r.point.clone(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Takes the mount at `point` out of this namespace (and every mount below it).
pub fn detach(point: &Path) -> Result<(), SandboxError> {
    match umount2(point, MntFlags::MNT_DETACH) {
        Err(source) if !unreachable(source) => Err(SandboxError::Detach {
            point: point.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Reads this process's mount table.
pub fn read_mountinfo() -> Result<String, SandboxError> {
    std::fs::read_to_string("/proc/self/mountinfo").map_err(SandboxError::MountInfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw - devtmpfs devtmpfs rw
26 24 0:24 / /dev/pts rw - devpts devpts rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 0:25 / /home rw,noexec - ext4 /dev/vdb rw
29 27 0:26 / /tmp rw - tmpfs tmpfs rw
30 28 0:27 / /home/me/project rw,nosuid,nodev - fuse agentfs:s:1 rw
31 28 0:28 / /home/me/project/sub rw - ext4 /dev/vdc rw
32 27 0:29 / /mnt/with\\040space ro - ext4 /dev/vdd rw
33 27 0:30 / /var/lib/x.db.run/mnt rw,nosuid,nodev - fuse agentfs:x:9 rw
37 27 0:34 / /mnt/sshfs rw - fuse.sshfs me@host: rw
34 27 0:31 / /tmp rw - ext4 /dev/vda rw
35 27 0:32 / /home/me/.agentfs ro - tmpfs tmpfs rw
36 35 0:33 / /home/me/.agentfs/s.db.run/mnt rw - fuse.agentfs agentfs:s:1 rw
";

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn every_mount_is_hardened_and_all_but_the_writable_ones_read_only() {
        let writable = vec![p("/tmp"), p("/home/me/project")];
        let own = vec![p("/proc"), p("/dev"), p("/home/me/.agentfs")];
        let plan = hardening(INFO, &writable, &own);
        let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        let ro = base | MsFlags::MS_RDONLY;
        assert_eq!(
            plan,
            vec![
                Remount {
                    point: p("/"),
                    flags: ro
                },
                // noexec is kept: a user namespace may not clear it.
                Remount {
                    point: p("/home"),
                    flags: ro | MsFlags::MS_NOEXEC
                },
                // /tmp twice: the last line (the private bind) is the one remounted, once.
                Remount {
                    point: p("/tmp"),
                    flags: base
                },
                Remount {
                    point: p("/home/me/project"),
                    flags: base
                },
                Remount {
                    point: p("/mnt/with space"),
                    flags: ro
                },
                Remount {
                    point: p("/var/lib/x.db.run/mnt"),
                    flags: ro
                },
                Remount {
                    point: p("/mnt/sshfs"),
                    flags: ro
                },
            ]
        );
    }

    #[test]
    fn a_writable_bind_of_a_read_only_mount_stays_read_only() {
        let info = "40 27 0:40 / /srv/ro ro,nosuid - ext4 /dev/vde ro\n";
        let plan = hardening(info, &[p("/srv/ro")], &[]);
        assert!(plan[0].flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(kept_flags("rw,nosuid,nodev,relatime"), MsFlags::empty());
    }

    #[test]
    fn other_sessions_mounts_are_found_deepest_first() {
        let keep = vec![p("/home/me/project")];
        assert_eq!(
            foreign_sessions(INFO, &keep),
            vec![
                p("/home/me/.agentfs/s.db.run/mnt"),
                p("/var/lib/x.db.run/mnt")
            ]
        );
    }
}
