//! The sandbox's network namespace, for `--network=none` and `--network=allow`: loopback
//! only, brought up; with `allow`, a listening socket on its loopback for the session's
//! proxy, handed to the runner outside (see [`crate::run::proxy`]), and the proxy variables
//! the command's tools follow.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};

use super::SandboxError;

/// Brings the namespace's loopback interface up (a new network namespace has it down).
pub fn loopback_up() -> Result<(), SandboxError> {
    // SAFETY: a plain datagram socket, owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(SandboxError::Socket(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(SandboxError::LoopbackFlags(std::io::Error::last_os_error()));
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(SandboxError::LoopbackUp(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The proxy variables for a proxy on `port` of the sandbox's loopback (the names differ
/// between tools, so both spellings). The sandbox's own loopback is reached directly.
pub fn proxy_env(port: u16) -> Vec<(&'static str, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let direct = "localhost,127.0.0.1,::1".to_string();
    vec![
        ("HTTP_PROXY", url.clone()),
        ("HTTPS_PROXY", url.clone()),
        ("http_proxy", url.clone()),
        ("https_proxy", url),
        ("NO_PROXY", direct.clone()),
        ("no_proxy", direct),
    ]
}

/// Makes the proxy's listening socket on the sandbox's loopback and sends it over
/// `channel` (a Unix socket from the runner, closed afterwards); sets the proxy variables.
pub fn hand_over_proxy(channel: i32) -> Result<(), SandboxError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(SandboxError::ProxyListen)?;
    let port = listener
        .local_addr()
        .map_err(SandboxError::ProxyPort)?
        .port();
    crate::run::proxy::send_listener(channel, &listener)?;
    // SAFETY: the channel was given to this process to use once; nothing else holds it.
    drop(unsafe { OwnedFd::from_raw_fd(channel) });
    for (k, v) in proxy_env(port) {
        // SAFETY: the helper is single-threaded.
        unsafe { std::env::set_var(k, v) };
    }
    Ok(())
}
