//! The sandbox's own /dev: a small tmpfs holding the harmless device nodes bound from the
//! host, a devpts instance of its own (new terminals for `script`, tmux, ssh), a private
//! /dev/shm, the usual links, and the runner's terminal as /dev/console. Host disks,
//! /dev/mem, /dev/kmsg and other users' terminals are not there; nothing written under /dev
//! reaches the host.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::{MsFlags, mount};

use super::SandboxError;

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// Device nodes bound from the host /dev.
pub const NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symbolic links made in /dev.
pub const LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// The options of the new devpts instance: its own pty numbers, a /dev/pts/ptmx everyone may
/// open, new terminals for their owner (and group tty as root; a user namespace has no such
/// group mapped).
pub fn devpts_options(user_ns: bool) -> String {
    let mut o = String::from("newinstance,ptmxmode=0666,mode=0620");
    if !user_ns {
        o.push_str(",gid=5");
    }
    o
}

fn open_path(p: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| SandboxError::Open {
        path: p.to_path_buf(),
        source,
    })
}

/// Shows the file `source` (an open descriptor) at the new empty file `target`.
fn bind_file(source: &OwnedFd, target: &Path) -> Result<()> {
    std::fs::File::create(target).map_err(make(target))?;
    let via = format!("/proc/self/fd/{}", source.as_raw_fd());
    mount(
        Some(via.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| SandboxError::Device {
        path: target.to_path_buf(),
        source,
    })
}

/// The error for a file, directory or link of /dev that cannot be made.
fn make(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError {
    let path = path.to_path_buf();
    move |source| SandboxError::Make { path, source }
}

/// The error for one of the sandbox's own filesystems under /dev that cannot be mounted.
fn own_mount(what: &'static str) -> impl FnOnce(nix::errno::Errno) -> SandboxError {
    move |source| SandboxError::OwnMount { what, source }
}

/// The runner's terminal, if one of the standard descriptors is on one. It is opened again
/// by its path, in this mount namespace (a bind needs a source mounted here, and the
/// descriptor's mount is the host namespace's), and kept only if it is the same file.
fn terminal() -> Option<OwnedFd> {
    use std::os::unix::fs::MetadataExt;
    let fd = (0..3)
        // SAFETY: isatty only inspects the descriptor.
        .find(|fd| unsafe { libc::isatty(*fd) } == 1)?;
    let link = format!("/proc/self/fd/{fd}");
    let path = std::fs::read_link(&link).ok()?;
    let (want, found) = (
        std::fs::metadata(&link).ok()?,
        std::fs::metadata(&path).ok()?,
    );
    (want.dev() == found.dev() && want.ino() == found.ino())
        .then(|| open_path(&path).ok())
        .flatten()
}

/// Replaces /dev with the sandbox's own. Call it while /proc is still the host's (the binds
/// go through /proc/self/fd).
pub fn set_up(user_ns: bool) -> Result<()> {
    let dev = Path::new("/dev");
    // Open what is kept before the tmpfs hides it.
    let nodes: Vec<(&str, OwnedFd)> = NODES
        .iter()
        .filter_map(|n| open_path(&dev.join(n)).ok().map(|fd| (*n, fd)))
        .collect();
    if !nodes.iter().any(|(n, _)| *n == "null") {
        return Err(SandboxError::NoDevNull);
    }
    let console = terminal();
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        hidden,
        Some("mode=0755,size=1m"),
    )
    .map_err(own_mount("a private /dev"))?;
    for (name, fd) in &nodes {
        bind_file(fd, &dev.join(name))?;
    }
    if let Some(fd) = &console {
        bind_file(fd, &dev.join("console"))?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(make(&pts))?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(devpts_options(user_ns).as_str()),
    )
    .map_err(own_mount(
        "a devpts instance of the sandbox's own on /dev/pts",
    ))?;
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(make(&shm))?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        hidden,
        Some("mode=1777"),
    )
    .map_err(own_mount("a private /dev/shm"))?;
    for (name, target) in LINKS {
        let link = dev.join(name);
        std::os::unix::fs::symlink(target, &link).map_err(make(&link))?;
    }
    Ok(())
}
