//! The sandbox a runner's command lives in, and the plain view `agentfs exec` gives.
//!
//! The sandbox (`agentfs run`) is a user (for a normal user), mount, PID, IPC and UTS
//! namespace: the session's overlay is shown at the base directory's path, /tmp is the
//! session's private directory, a few allowed paths stay writable, every other mount is
//! read-only and every mount is `nosuid,nodev`; /dev and /proc are the sandbox's own; the
//! session stores are hidden; the command keeps Docker's default capabilities under
//! `no_new_privs`; and it runs under an init of its own whose exit ends every process it
//! left (see [`init`]). SECURITY.md says what this does and does not promise.
//!
//! It is set up by `agentfs` itself, re-executed as a hidden helper (`agentfs sandbox-exec`).
//! What to mount and remount is decided by pure functions ([`binds`], [`mounts::hardening`]);
//! the rest carries it out.

pub mod devices;
pub mod init;
pub mod mounts;
pub mod net;
pub mod privileges;
pub mod procfs;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{ForkResult, fork};
use serde::{Deserialize, Serialize};

/// Environment variable carrying the [`Plan`] (JSON) from the runner to the helper.
pub const PLAN_ENV: &str = "AGENTFS_SANDBOX_PLAN";

/// Exit status of the helper when the sandbox cannot be set up (as `env` and `docker` use
/// 125 for their own failures, 126 for a command that cannot run, 127 for one not found).
pub const SETUP_FAILED: u8 = 125;

/// Why the sandbox (or the plain view of `agentfs exec`) could not be set up; the helper
/// then exits with [`SETUP_FAILED`]. Its submodules' steps fail with it too.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the runner (pid {pid}) is gone")]
    RunnerGone { pid: u32 },
    #[error("cannot block signals")]
    BlockSignals(#[source] Errno),
    /// `unshare` failed; `user` says whether a user namespace was asked for (the likely
    /// culprit, which the message then names).
    #[error("cannot create {which}{}", if *user { USERNS_HINT } else { "" })]
    Namespaces {
        which: &'static str,
        user: bool,
        source: Errno,
    },
    /// Writing the user namespace's setgroups policy or id maps failed.
    #[error("cannot {what}")]
    MapIds {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot read this process's mount namespace")]
    NoMountNamespace,
    /// The session, where the sandbox's namespace is recorded, does not open.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Recording the sandbox's namespace for its runner failed.
    #[error(transparent)]
    Record(#[from] rusqlite::Error),
    #[error("cannot open a pidfd of the helper")]
    Pidfd(#[source] std::io::Error),
    #[error("cannot start the sandbox's init")]
    StartInit(#[source] Errno),
    #[error("cannot enter {}", path.display())]
    EnterCwd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the mount namespace private")]
    Propagation(#[source] Errno),
    #[error("cannot open {}", path.display())]
    Open { path: PathBuf, source: Errno },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bind mount of the plan failed.
    #[error("cannot show {} at {}", from.display(), to.display())]
    Bind {
        from: PathBuf,
        to: PathBuf,
        source: Errno,
    },
    /// A bind's target is missing outside the directories the sandbox may make it in.
    #[error("{} does not exist", .0.display())]
    MissingTarget(PathBuf),
    #[error("cannot stat a path to mount")]
    StatSource(#[source] Errno),
    /// The parent directory of a file to mount on cannot be made.
    #[error(transparent)]
    TargetParent(std::io::Error),
    #[error("cannot make {} to mount on", path.display())]
    MakeTarget {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Hiding a denied path or the home directory failed.
    #[error("cannot hide {}", path.display())]
    Hide { path: PathBuf, source: Errno },
    #[error("cannot hide the session store {}", path.display())]
    HideStore { path: PathBuf, source: Errno },
    /// Making a mount read-only and `nosuid,nodev` failed.
    #[error("cannot make the mount at {} safe", point.display())]
    Harden { point: PathBuf, source: Errno },
    #[error("cannot detach {}", point.display())]
    Detach { point: PathBuf, source: Errno },
    #[error("cannot read /proc/self/mountinfo")]
    MountInfo(#[source] std::io::Error),
    #[error("the host has no /dev/null to give the sandbox")]
    NoDevNull,
    /// Mounting one of the sandbox's own filesystems (/dev, /dev/pts, /dev/shm, /proc).
    #[error("cannot mount {what}")]
    OwnMount { what: &'static str, source: Errno },
    /// Making a file, directory or link of the sandbox's /dev failed.
    #[error("cannot make {}", path.display())]
    Make {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot show a device at {}", path.display())]
    Device { path: PathBuf, source: Errno },
    #[error("cannot make {} read-only", path.display())]
    ReadOnly { path: PathBuf, source: Errno },
    #[error("cannot mask {}", path.display())]
    Mask { path: PathBuf, source: Errno },
    #[error("cannot drop {cap} from the bounding set")]
    DropBounding {
        cap: caps::Capability,
        source: caps::errors::CapsError,
    },
    #[error("cannot clear the {set} capabilities")]
    ClearCaps {
        set: &'static str,
        source: caps::errors::CapsError,
    },
    #[error("cannot read the capabilities")]
    ReadCaps(#[source] caps::errors::CapsError),
    #[error("cannot set the {set:?} capabilities")]
    SetCaps {
        set: caps::CapSet,
        source: caps::errors::CapsError,
    },
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("cannot open a socket")]
    Socket(#[source] std::io::Error),
    #[error("cannot read lo's flags")]
    LoopbackFlags(#[source] std::io::Error),
    #[error("cannot bring lo up")]
    LoopbackUp(#[source] std::io::Error),
    #[error("cannot listen on the sandbox's loopback for the proxy")]
    ProxyListen(#[source] std::io::Error),
    /// The proxy's listening socket has no address.
    #[error(transparent)]
    ProxyPort(std::io::Error),
    /// Handing the proxy's socket to the runner failed.
    #[error(transparent)]
    Proxy(#[from] crate::run::proxy::ProxyError),
}

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// What the helper sets up before running the command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The session database, to record the sandbox's mount namespace for its runner.
    pub session_db: PathBuf,
    pub runner: i64,
    /// The pid of the runner, which the helper must not outlive.
    pub parent: u32,
    /// The session's shared overlay mount.
    pub overlay: PathBuf,
    /// Where the overlay is shown inside: the session's base directory.
    pub base: PathBuf,
    /// A host directory shown as /tmp inside (shared by the session's runners).
    pub private_tmp: Option<PathBuf>,
    /// Paths that stay writable as they are (not copy-on-write).
    pub allow: Vec<PathBuf>,
    /// Paths shown read-only (where they would be hidden, under a hidden home).
    pub read: Vec<PathBuf>,
    /// Paths hidden: a directory shows empty, a file reads as empty.
    pub deny: Vec<PathBuf>,
    /// $HOME shown empty but for the base directory and the paths above.
    pub hidden_home: Option<PathBuf>,
    /// Directories shown empty inside: the session stores.
    pub hide: Vec<PathBuf>,
    /// How the command reaches the network.
    pub network: crate::run::network::Network,
    /// With `network` Allow: the descriptor (inherited) to hand the proxy's socket over.
    pub proxy_channel: Option<i32>,
    /// The sandbox (`agentfs run`), or only the session's view (`agentfs exec`).
    pub read_only: bool,
    /// The working directory to enter inside (the caller's, by path).
    pub cwd: PathBuf,
}

/// One bind mount to make: `source` (a host path, opened before any mount is made) shown
/// at `target`. Binds are never recursive, so no host mount below a source comes along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    /// Left writable (else made read-only with the rest).
    pub writable: bool,
}

/// The bind mounts of `plan`, parents before children, so a writable path inside the base
/// directory is mounted on top of the overlay rather than hidden by it.
pub fn binds(plan: &Plan) -> Vec<Bind> {
    let mut binds = Vec::new();
    if let Some(tmp) = &plan.private_tmp {
        binds.push(Bind {
            source: tmp.clone(),
            target: PathBuf::from("/tmp"),
            writable: true,
        });
    }
    binds.push(Bind {
        source: plan.overlay.clone(),
        target: plan.base.clone(),
        writable: true,
    });
    for (paths, writable) in [(&plan.allow, true), (&plan.read, false)] {
        for p in paths {
            binds.push(Bind {
                source: p.clone(),
                target: p.clone(),
                writable,
            });
        }
    }
    // Stable: among equal depths the order above holds.
    binds.sort_by_key(|b| b.target.components().count());
    binds
}

/// Sets up the sandbox (or the plain view) of `plan` and runs `argv` in it. Returns the
/// exit status to leave with.
pub fn enter(plan: &Plan, argv: &[OsString]) -> u8 {
    // SAFETY: the helper is single-threaded.
    unsafe { std::env::remove_var(PLAN_ENV) };
    if argv.is_empty() {
        eprintln!("agentfs: no command to run");
        return SETUP_FAILED;
    }
    let result = if plan.read_only {
        sandbox(plan, argv)
    } else {
        view(plan, argv)
    };
    result.unwrap_or_else(|e| {
        eprintln!(
            "agentfs: cannot set up the sandbox: {}",
            crate::report::Chain(&e)
        );
        SETUP_FAILED
    })
}

/// Executes `argv` in place; returns only on failure, with the status for it.
fn exec_command(argv: &[OsString]) -> u8 {
    let (program, args) = argv.split_first().expect("a command");
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

fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Maps the caller's own ids into the user namespace it just made.
fn map_own_ids(uid: u32, gid: u32) -> Result<()> {
    let map = |what| move |source| SandboxError::MapIds { what, source };
    std::fs::write("/proc/self/setgroups", "deny").map_err(map("deny setgroups"))?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
        .map_err(map("map the user id"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
        .map_err(map("map the group id"))?;
    Ok(())
}

/// Said after a failed `unshare` of a user namespace.
const USERNS_HINT: &str = " (are unprivileged user namespaces disabled? see sysctl \
     kernel.unprivileged_userns_clone / user.max_user_namespaces)";

/// `agentfs exec`: the session's view at the base directory's path in a mount namespace of
/// its own; nothing else changes.
fn view(plan: &Plan, argv: &[OsString]) -> Result<u8> {
    let (uid, gid) = ids();
    if uid == 0 {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|source| SandboxError::Namespaces {
            which: "a mount namespace",
            user: false,
            source,
        })?;
    } else {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|source| {
            SandboxError::Namespaces {
                which: "a user and mount namespace",
                user: true,
                source,
            }
        })?;
        map_own_ids(uid, gid)?;
    }
    // Nothing mounted here may reach the host.
    set_propagation(MsFlags::MS_SLAVE)?;
    record_namespace(plan)?;
    let binds = binds(plan);
    let sources = open_sources(&binds)?;
    show_binds(&binds, &sources, &[])?;
    // The command must not outlive a runner killed with SIGKILL (nor hold its mount).
    // SAFETY: plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    std::env::set_current_dir(&plan.cwd).map_err(|source| SandboxError::EnterCwd {
        path: plan.cwd.clone(),
        source,
    })?;
    Ok(exec_command(argv))
}

/// `agentfs run`: the helper makes the namespaces, records them, and forks the sandbox's
/// init; it then waits for the init and passes signals on.
fn sandbox(plan: &Plan, argv: &[OsString]) -> Result<u8> {
    // The helper must not outlive a runner killed with SIGKILL, nor start after one was.
    // SAFETY: plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if std::os::unix::process::parent_id() != plan.parent {
        return Err(SandboxError::RunnerGone { pid: plan.parent });
    }
    init::block().map_err(SandboxError::BlockSignals)?;
    let (uid, gid) = ids();
    let user_ns = uid != 0;
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if user_ns {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let own_network = plan.network != crate::run::network::Network::Host;
    if own_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|source| SandboxError::Namespaces {
        which: "the sandbox's namespaces",
        user: user_ns,
        source,
    })?;
    if user_ns {
        map_own_ids(uid, gid)?;
    }
    if own_network {
        net::loopback_up()?;
    }
    if let Some(channel) = plan.proxy_channel {
        net::hand_over_proxy(channel)?;
    }
    record_namespace(plan)?;
    let me = init::own_pidfd().map_err(SandboxError::Pidfd)?;
    // SAFETY: the helper is single-threaded, so the child may do anything after fork.
    match unsafe { fork() }.map_err(SandboxError::StartInit)? {
        ForkResult::Parent { child } => {
            drop(me);
            Ok(init::supervise(child))
        }
        ForkResult::Child => std::process::exit(i32::from(be_init(plan, argv, user_ns, me))),
    }
}

/// Pid 1 of the sandbox: builds its mount table, starts the command and supervises it.
fn be_init(plan: &Plan, argv: &[OsString], user_ns: bool, parent: OwnedFd) -> u8 {
    if !init::die_with_parent(&parent) {
        return SETUP_FAILED;
    }
    drop(parent);
    if let Err(e) = build(plan, user_ns) {
        eprintln!(
            "agentfs: cannot set up the sandbox: {}",
            crate::report::Chain(&e)
        );
        return SETUP_FAILED;
    }
    let _ = std::env::set_current_dir("/");
    // SAFETY: single-threaded, as the helper was.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("agentfs: cannot start the command: {e}");
            SETUP_FAILED
        }
        Ok(ForkResult::Child) => std::process::exit(i32::from(become_command(plan, argv))),
        Ok(ForkResult::Parent { child }) => {
            // Nothing in the sandbox may read or trace the init (it keeps every capability).
            // SAFETY: plain prctl call.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            init::supervise(child)
        }
    }
}

/// The command's process: enters the working directory, gives up powers, executes.
fn become_command(plan: &Plan, argv: &[OsString]) -> u8 {
    if let Err(e) = std::env::set_current_dir(&plan.cwd) {
        eprintln!(
            "agentfs: cannot set up the sandbox: cannot enter {}: {e}",
            plan.cwd.display()
        );
        return SETUP_FAILED;
    }
    if let Err(e) = privileges::drop_to_kept() {
        eprintln!(
            "agentfs: cannot set up the sandbox: {}",
            crate::report::Chain(&e)
        );
        return SETUP_FAILED;
    }
    // The command starts with no signal blocked and SIGPIPE at its default, whatever the
    // helper and the Rust runtime set.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    // SAFETY: restoring a default disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    exec_command(argv)
}

/// Builds the sandbox's mount table (in the init, inside the new PID namespace).
fn build(plan: &Plan, user_ns: bool) -> Result<()> {
    // Host mounts made later never reach in, and nothing mounted here reaches the host.
    set_propagation(MsFlags::MS_PRIVATE)?;
    let binds = binds(plan);
    let sources = open_sources(&binds)?;
    // Other sessions' mounts go (a copy here would keep their daemons serving after the
    // host unmounted them). A user namespace may not detach the mounts it was given (they
    // are locked); there the copies stay hidden below the store, and their daemons end
    // by themselves.
    if !user_ns {
        let keep = [plan.overlay.clone()];
        for point in mounts::foreign_sessions(&mounts::read_mountinfo()?, &keep) {
            mounts::detach(&point)?;
        }
    }
    let mut scratch = vec![PathBuf::from("/tmp")];
    if let Some(home) = &plan.hidden_home {
        hide_home(home)?;
        scratch.push(home.clone());
    }
    show_binds(&binds, &sources, &scratch)?;
    if !user_ns {
        // This session's own mount, now shown at the base directory, goes from where the
        // host has it (reached through its descriptor: a hidden home may cover its path).
        if let Some(i) = binds.iter().position(|b| b.source == plan.overlay) {
            mounts::detach(Path::new(&format!(
                "/proc/self/fd/{}",
                sources[i].as_raw_fd()
            )))?;
        }
    }
    drop(sources);
    let writable: Vec<PathBuf> = binds
        .iter()
        .filter(|b| b.writable)
        .map(|b| b.target.clone())
        .collect();
    // Before /dev is replaced: a hidden file is shown as the host's /dev/null.
    for path in &plan.deny {
        conceal(path)?;
    }
    devices::set_up(user_ns)?;
    procfs::set_up()?;
    for store in &plan.hide {
        hide(store)?;
    }
    let mut own = vec![PathBuf::from("/proc"), PathBuf::from("/dev")];
    own.extend(plan.hide.iter().cloned());
    own.extend(plan.deny.iter().cloned());
    for remount in mounts::hardening(&mounts::read_mountinfo()?, &writable, &own) {
        mounts::apply(&remount)?;
    }
    Ok(())
}

/// Sets the propagation of every mount of this namespace (`MS_SLAVE`: host unmounts still
/// come in; `MS_PRIVATE`: nothing crosses either way).
fn set_propagation(kind: MsFlags) -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | kind,
        None::<&str>,
    )
    .map_err(SandboxError::Propagation)
}

/// Opens the source of every bind before any mount is made (a later mount, the private
/// /tmp or a hidden home, may hide one).
fn open_sources(binds: &[Bind]) -> Result<Vec<OwnedFd>> {
    binds.iter().map(|b| open_path(&b.source)).collect()
}

/// Makes the bind mounts from their opened sources; a missing target is made if it lies
/// under one of `scratch` (the private /tmp, a hidden home: directories of our own).
fn show_binds(binds: &[Bind], sources: &[OwnedFd], scratch: &[PathBuf]) -> Result<()> {
    for (bind, fd) in binds.iter().zip(sources) {
        make_target(&bind.target, fd, scratch)?;
        let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
        mount(
            Some(via.as_str()),
            &bind.target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| SandboxError::Bind {
            from: bind.source.clone(),
            to: bind.target.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Shows $HOME as an empty directory with the real one's owner and mode (the paths kept
/// under it are bound in afterwards).
fn hide_home(home: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(home).map_err(|source| SandboxError::Read {
        path: home.to_path_buf(),
        source,
    })?;
    let options = format!(
        "mode={:o},uid={},gid={},size=1m",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    );
    mount(
        Some("tmpfs"),
        home,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|source| SandboxError::Hide {
        path: home.to_path_buf(),
        source,
    })
}

/// Hides `path`: a directory shows empty and read-only, a file reads as empty (it is the
/// host's /dev/null).
fn conceal(path: &Path) -> Result<()> {
    let Ok(meta) = path.symlink_metadata() else {
        // Not in this view (under the private /tmp, or a hidden home).
        return Ok(());
    };
    let result = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=4k,mode=0700"),
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(|source| SandboxError::Hide {
        path: path.to_path_buf(),
        source,
    })
}

/// Shows the directory `store` empty and read-only, if it is in the sandbox's view.
fn hide(store: &Path) -> Result<()> {
    if !store.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        store,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k,mode=0755"),
    )
    .map_err(|source| SandboxError::HideStore {
        path: store.to_path_buf(),
        source,
    })
}

/// Tells the session which runner this namespace's processes work for, before any of them
/// can change a file.
fn record_namespace(plan: &Plan) -> Result<()> {
    let ns =
        crate::runners::mount_ns_of(std::process::id()).ok_or(SandboxError::NoMountNamespace)?;
    let store = crate::store::Store::open(&plan.session_db, crate::store::OpenMode::Existing)?;
    crate::runners::set_mount_ns(&store.conn, plan.runner, ns)?;
    Ok(())
}

/// Opens `p` as an `O_PATH` descriptor (a mount source that later mounts cannot hide).
fn open_path(p: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| SandboxError::Open {
        path: p.to_path_buf(),
        source,
    })
}

/// Makes sure `target` exists to mount on. It may be missing only below a `scratch`
/// directory (a base or allowed path under the host's /tmp, now the private one, or under a
/// hidden home); it is made there, a directory or a file like the source (known by its
/// descriptor: its path may be hidden now).
fn make_target(target: &Path, source: &OwnedFd, scratch: &[PathBuf]) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if !scratch.iter().any(|s| target.starts_with(s)) {
        return Err(SandboxError::MissingTarget(target.to_path_buf()));
    }
    let source_is_dir = nix::sys::stat::fstat(source)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(SandboxError::StatSource)?;
    if source_is_dir {
        std::fs::create_dir_all(target)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(SandboxError::TargetParent)?;
        }
        std::fs::File::create(target).map(drop)
    }
    .map_err(|source| SandboxError::MakeTarget {
        path: target.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            session_db: "/h/s.db".into(),
            runner: 1,
            parent: 1,
            overlay: "/h/s.db.run/mnt".into(),
            base: "/home/me/project".into(),
            private_tmp: Some("/h/s.db.run/tmp".into()),
            allow: vec!["/home/me/.cache".into(), "/home/me/project/target".into()],
            read: vec!["/home/me/.rustup".into()],
            deny: vec!["/home/me/.ssh".into()],
            hidden_home: Some("/home/me".into()),
            hide: vec!["/h".into()],
            network: crate::run::network::Network::Host,
            proxy_channel: None,
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
        assert_eq!(targets.len(), 5);
        let binds = binds(&plan());
        let read = binds
            .iter()
            .find(|b| b.target == Path::new("/home/me/.rustup"));
        assert!(read.is_some_and(|b| !b.writable));
        assert!(binds.iter().filter(|b| b.writable).count() == 4);
    }
}
