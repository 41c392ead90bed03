//! The two processes between the runner and the command. The helper, outside the sandbox's
//! PID namespace, waits for the sandbox's init and passes signals on; the init (pid 1
//! inside) starts the command, passes signals on, reaps the orphans the command leaves, and
//! exits with the command's status when it ends. Its exit ends the namespace: the kernel
//! kills every process left in it, so nothing a runner started outlives the runner (no
//! writes to the session after `agentfs ps` shows it gone or `apply` ran).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals passed on to the command when another process sends them (the runner passes on
/// those sent to `agentfs run`).
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The signals the helper and the init take through a signalfd instead of by default
/// action: the forwarded ones and SIGCHLD. Block them before forking, so none is lost.
pub fn blocked() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks [`blocked`] in this process (children inherit the mask; the command's exec resets
/// it).
pub fn block() -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked()), None)
}

/// The status to leave with for a child's end: its exit code, or 128 + the signal that
/// killed it (as shells report it).
pub fn exit_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, sig, _) => Some(128u8.wrapping_add(sig as i32 as u8)),
        _ => None,
    }
}

/// Whether a signal was sent by a process (kill, sigqueue, tgkill) rather than raised by
/// the kernel; a terminal's Ctrl-C is the kernel's and reaches the command directly, being
/// sent to its whole process group.
pub fn sent_by_a_process(si_code: i32) -> bool {
    si_code <= 0
}

/// Waits until `child` ends, passing signals sent to this process on to it and reaping
/// every other child (as pid 1 of a namespace, the orphans of the command). Returns the
/// status to exit with. Needs [`blocked`] blocked.
pub fn supervise(child: Pid) -> u8 {
    let fd = match SignalFd::with_flags(&blocked(), SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("agentfs: cannot watch for signals: {e}");
            let _ = kill(child, Signal::SIGKILL);
            return super::SETUP_FAILED;
        }
    };
    loop {
        let info = match fd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("agentfs: cannot read signals: {e}");
                let _ = kill(child, Signal::SIGKILL);
                return super::SETUP_FAILED;
            }
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig != Signal::SIGCHLD {
            if sent_by_a_process(info.ssi_code) {
                let _ = kill(child, sig);
            }
            continue;
        }
        // SIGCHLDs merge: reap every child that has ended.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) if status.pid() == Some(child) => {
                    if let Some(code) = exit_code(status) {
                        return code;
                    }
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => return super::SETUP_FAILED,
            }
        }
    }
}

/// A descriptor that becomes readable when this process ends, for a child to learn that it
/// lost its parent (pid 1 of a namespace cannot ask getppid).
pub fn own_pidfd() -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open with our own pid; the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from the kernel, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(fd)
}

/// Makes this process die with its parent (whose pidfd is `parent`); false if the parent
/// is already gone.
pub fn die_with_parent(parent: &OwnedFd) -> bool {
    // SAFETY: plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut p = libc::pollfd {
        fd: parent.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_like_a_shell() {
        let pid = Pid::from_raw(2);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }

    #[test]
    fn only_signals_sent_by_processes_are_passed_on() {
        assert!(sent_by_a_process(libc::SI_USER));
        assert!(sent_by_a_process(libc::SI_QUEUE));
        assert!(sent_by_a_process(libc::SI_TKILL));
        assert!(!sent_by_a_process(libc::SI_KERNEL));
    }
}
