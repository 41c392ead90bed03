//! What the command keeps of root's powers: Docker's default capabilities, enough for package
//! installs (chown, chmod, mknod of FIFOs, setuid/setgid to other users) and nothing that
//! reaches past the sandbox (mounts, ptrace, modules, raw I/O, the clock, reboot, network
//! configuration, reading files by handle). The others go from every set, and
//! `no_new_privs` keeps set-id programs and file capabilities from giving any back.

use caps::{CapSet, Capability, CapsHashSet};

use super::SandboxError;

/// Docker's default capability set.
pub const KEPT: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETFCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_MKNOD,
    Capability::CAP_AUDIT_WRITE,
];

/// Drops every capability not in [`KEPT`] from the bounding, ambient, inheritable,
/// effective and permitted sets of this process, and sets `no_new_privs`. Root keeps
/// [`KEPT`] across `execve` through the bounding set; other users keep nothing.
pub fn drop_to_kept() -> Result<(), SandboxError> {
    let kept: CapsHashSet = KEPT.iter().copied().collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, still effective here.
    for cap in caps::runtime::thread_all_supported() {
        if !kept.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|source| SandboxError::DropBounding { cap, source })?;
        }
    }
    for (set, name) in [
        (CapSet::Ambient, "ambient"),
        (CapSet::Inheritable, "inheritable"),
    ] {
        caps::clear(None, set).map_err(|source| SandboxError::ClearCaps { set: name, source })?;
    }
    for set in [CapSet::Effective, CapSet::Permitted] {
        let now = caps::read(None, set).map_err(SandboxError::ReadCaps)?;
        let left: CapsHashSet = now.intersection(&kept).copied().collect();
        caps::set(None, set, &left).map_err(|source| SandboxError::SetCaps { set, source })?;
    }
    // SAFETY: plain prctl call.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    Ok(())
}
