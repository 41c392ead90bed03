//! The sandbox a runner's command lives in: a mount namespace of its own where the session's
//! overlay is shown at the base directory's path, /tmp is the session's private directory, a
//! few allowed paths stay writable and every other mount is read-only.
//!
//! It is set up by `agentfs` itself, re-executed as a hidden helper (`agentfs sandbox-exec`)
//! that then executes the command in place, so the runner waits on the command directly.
//! Which mounts to make is decided by pure functions; [`enter`] only carries them out.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use serde::{Deserialize, Serialize};

/// Environment variable carrying the [`Plan`] (JSON) from the runner to the helper.
pub const PLAN_ENV: &str = "AGENTFS_SANDBOX_PLAN";

/// Exit status of the helper when the sandbox cannot be set up (as `env` and `docker` use
/// 125 for their own failures, 126 for a command that cannot run, 127 for one not found).
pub const SETUP_FAILED: u8 = 125;

/// The capability to mount (linux/capability.h), which libc does not export.
const CAP_SYS_ADMIN: libc::c_ulong = 21;

/// What the helper sets up before running the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The session database, to record the sandbox's mount namespace for its runner.
    pub session_db: PathBuf,
    pub runner: i64,
    /// The session's shared overlay mount.
    pub overlay: PathBuf,
    /// Where the overlay is shown inside: the session's base directory.
    pub base: PathBuf,
    /// A host directory shown as /tmp inside (shared by the session's runners).
    pub private_tmp: Option<PathBuf>,
    /// Paths that stay writable as they are (not copy-on-write).
    pub allow: Vec<PathBuf>,
    /// Make every other mount read-only (`agentfs run`) or leave them (`agentfs exec`).
    pub read_only: bool,
    /// The working directory to enter inside (the caller's, by path).
    pub cwd: PathBuf,
}

/// One bind mount to make: `source` (a host path, opened before any mount is made) shown
/// at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    /// Take the mounts below `source` along.
    pub recursive: bool,
}

/// The bind mounts of `plan`, parents before children, so a writable path inside the base
/// directory is mounted on top of the overlay rather than hidden by it.
pub fn binds(plan: &Plan) -> Vec<Bind> {
    let mut binds = Vec::new();
    if let Some(tmp) = &plan.private_tmp {
        binds.push(Bind {
            source: tmp.clone(),
            target: PathBuf::from("/tmp"),
            recursive: false,
        });
    }
    binds.push(Bind {
        source: plan.overlay.clone(),
        target: plan.base.clone(),
        recursive: false,
    });
    for a in &plan.allow {
        binds.push(Bind {
            source: a.clone(),
            target: a.clone(),
            recursive: true,
        });
    }
    // Stable: among equal depths the order above holds.
    binds.sort_by_key(|b| b.target.components().count());
    binds
}

/// Mount points that must be made read-only: every one in `mountinfo` except /proc, /dev
/// and what lies at or below a writable target (those are ours, or hidden by ours).
pub fn read_only_targets(mountinfo: &str, writable: &[PathBuf]) -> Vec<PathBuf> {
    let keep = |p: &Path| {
        p.starts_with("/proc") || p.starts_with("/dev") || writable.iter().any(|w| p.starts_with(w))
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for m in crate::mount::mountinfo(mountinfo) {
        if !keep(&m.point) && !out.contains(&m.point) {
            out.push(m.point);
        }
    }
    out
}

/// Sets up the sandbox of `plan` in this process and executes `argv` in it. Returns only
/// on failure, with the exit status to leave with.
pub fn enter(plan: &Plan, argv: &[OsString]) -> u8 {
    if let Err(e) = set_up(plan) {
        eprintln!("agentfs: cannot set up the sandbox: {e:#}");
        return SETUP_FAILED;
    }
    let Some((program, args)) = argv.split_first() else {
        eprintln!("agentfs: no command to run");
        return SETUP_FAILED;
    };
    let e = std::process::Command::new(program).args(args).exec();
    let name = program.to_string_lossy();
    if e.kind() == std::io::ErrorKind::NotFound {
        eprintln!("agentfs: {name}: command not found");
        127
    } else {
        eprintln!("agentfs: cannot run {name}: {e}");
        126
    }
}

fn set_up(plan: &Plan) -> Result<()> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        unshare(CloneFlags::CLONE_NEWNS).context("cannot create a mount namespace")?;
    } else {
        // A normal user gets the right to mount in a user namespace of its own, keeping its
        // ids; the capabilities it has there are dropped when the command is executed.
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).context(
            "cannot create a user and mount namespace (are unprivileged user namespaces \
             disabled? see sysctl kernel.unprivileged_userns_clone / user.max_user_namespaces)",
        )?;
        std::fs::write("/proc/self/setgroups", "deny").context("cannot deny setgroups")?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
            .context("cannot map the user id")?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
            .context("cannot map the group id")?;
    }
    // Nothing mounted here may reach the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("cannot make the mount namespace private")?;
    record_namespace(plan)?;

    let binds = binds(plan);
    // Open every source first: a later mount (the private /tmp) may hide one.
    let sources: Vec<OwnedFd> = binds
        .iter()
        .map(|b| open_path(&b.source))
        .collect::<Result<_>>()?;
    for (bind, fd) in binds.iter().zip(&sources) {
        make_target(&bind.target, fd)?;
        let mut flags = MsFlags::MS_BIND;
        if bind.recursive {
            flags |= MsFlags::MS_REC;
        }
        let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(via.as_str()),
            &bind.target,
            None::<&str>,
            flags,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "cannot show {} at {}",
                bind.source.display(),
                bind.target.display()
            )
        })?;
    }
    drop(sources);

    if plan.read_only {
        let writable: Vec<PathBuf> = binds.iter().map(|b| b.target.clone()).collect();
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        for point in read_only_targets(&info, &writable) {
            remount_read_only(&point)?;
        }
        if uid == 0 {
            // Root keeps its other powers, but may not undo the read-only mounts.
            // SAFETY: plain prctl call.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("cannot drop CAP_SYS_ADMIN from the command's capabilities");
            }
        }
    }
    // The command must not outlive a runner killed with SIGKILL (nor hold its mount).
    // SAFETY: plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    std::env::set_current_dir(&plan.cwd)
        .with_context(|| format!("cannot enter {}", plan.cwd.display()))?;
    // SAFETY: the helper is single-threaded.
    unsafe { std::env::remove_var(PLAN_ENV) };
    Ok(())
}

/// Tells the session which runner this namespace's processes work for, before any of them
/// can change a file.
fn record_namespace(plan: &Plan) -> Result<()> {
    let ns = crate::runners::mount_ns_of(std::process::id())
        .ok_or_else(|| anyhow!("cannot read this process's mount namespace"))?;
    let store = crate::store::Store::open(&plan.session_db, crate::store::OpenMode::Existing)?;
    crate::runners::set_mount_ns(&store.conn, plan.runner, ns)?;
    Ok(())
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("cannot open {}", p.display()))
}

/// Makes sure `target` exists to mount on. It may be missing only where the private /tmp
/// now is (a base or allowed path under the host's /tmp); it is made there, a directory or a
/// file like the source (known by its descriptor: its path may be hidden now).
fn make_target(target: &Path, source: &OwnedFd) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if !target.starts_with("/tmp") {
        bail!("{} does not exist", target.display());
    }
    let source_is_dir = nix::sys::stat::fstat(source)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .context("cannot stat a path to mount")?;
    if source_is_dir {
        std::fs::create_dir_all(target)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(target).map(drop)
    }
    .with_context(|| format!("cannot make {} to mount on", target.display()))
}

/// Makes the mount at `point` read-only, keeping its other flags (which a user namespace
/// may not change).
fn remount_read_only(point: &Path) -> Result<()> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(st) = statvfs(point) else {
        // Gone, or not reachable from here (hidden below another mount).
        return Ok(());
    };
    let have = st.flags();
    if have.contains(FsFlags::ST_RDONLY) {
        return Ok(());
    }
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(f) {
            flags |= m;
        }
    }
    match mount(None::<&str>, point, None::<&str>, flags, None::<&str>) {
        Ok(()) => Ok(()),
        // Unmounted on the host since the mount table was read (mounts come and go there,
        // and reach this namespace as it follows the host's).
        Err(_) if !is_mount_point(point) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot make {} read-only", point.display())),
    }
}

fn is_mount_point(point: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|info| crate::mount::mountinfo(&info).any(|m| m.point == point))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            session_db: "/h/s.db".into(),
            runner: 1,
            overlay: "/h/s.db.run/mnt".into(),
            base: "/home/me/project".into(),
            private_tmp: Some("/h/s.db.run/tmp".into()),
            allow: vec!["/home/me/.cache".into(), "/home/me/project/target".into()],
            read_only: true,
            cwd: "/home/me/project".into(),
        }
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let targets: Vec<PathBuf> = binds(&plan()).into_iter().map(|b| b.target).collect();
        let pos = |p: &str| targets.iter().position(|t| t == Path::new(p)).unwrap();
        assert_eq!(pos("/tmp"), 0);
        assert!(pos("/home/me/project") < pos("/home/me/project/target"));
        assert_eq!(targets.len(), 4);
    }

    #[test]
    fn read_only_skips_proc_dev_and_writable_targets() {
        let info = "\
22 27 0:21 / /proc rw - proc proc rw
24 27 0:6 / /dev rw - devtmpfs devtmpfs rw
26 24 0:24 / /dev/pts rw - devpts devpts rw
27 1 254:0 / / rw - ext4 /dev/vda rw
28 27 0:25 / /home rw - ext4 /dev/vdb rw
29 27 0:26 / /tmp rw - tmpfs tmpfs rw
30 28 0:27 / /home/me/project rw - fuse.agentfs agentfs:s:1 rw
31 28 0:28 / /home/me/project/sub rw - ext4 /dev/vdc rw
32 27 0:29 / /mnt/with\\040space rw - ext4 /dev/vdd rw
";
        let writable = vec![PathBuf::from("/tmp"), PathBuf::from("/home/me/project")];
        assert_eq!(
            read_only_targets(info, &writable),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/home"),
                PathBuf::from("/mnt/with space")
            ]
        );
    }
}
