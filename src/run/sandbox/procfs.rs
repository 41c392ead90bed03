//! A fresh /proc for the sandbox's PID namespace: the command sees its own processes only
//! (not the mount daemon, the runner, other runners or the host, so none of their roots,
//! working directories or memory), the kernel's knobs are read-only and the files that leak
//! the host's secrets are masked, as Docker's defaults do.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use super::SandboxError;

/// Kernel interfaces that stay readable but not writable.
pub const READ_ONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

/// Files that read as empty (kernel memory, other users' keys, timers that leak addresses).
pub const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/timer_stats",
];

/// Directories shown empty.
pub const MASKED_DIRS: &[&str] = &["/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware"];

const LOCKED: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Mounts /proc for this PID namespace (call it from a process inside it) and locks it down.
pub fn set_up() -> Result<(), SandboxError> {
    mount(Some("proc"), "/proc", Some("proc"), LOCKED, None::<&str>).map_err(|source| {
        SandboxError::OwnMount {
            what: "a /proc of the sandbox's own",
            source,
        }
    })?;
    for p in READ_ONLY.iter().map(Path::new).filter(|p| p.exists()) {
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| {
            mount(
                None::<&str>,
                p,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | LOCKED,
                None::<&str>,
            )
        })
        .map_err(|source| SandboxError::ReadOnly {
            path: p.to_path_buf(),
            source,
        })?;
    }
    for p in MASKED_FILES.iter().map(Path::new).filter(|p| p.exists()) {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| SandboxError::Mask {
            path: p.to_path_buf(),
            source,
        })?;
    }
    for p in MASKED_DIRS.iter().map(Path::new).filter(|p| p.is_dir()) {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | LOCKED,
            Some("size=0,mode=0555"),
        )
        .map_err(|source| SandboxError::Mask {
            path: p.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}
