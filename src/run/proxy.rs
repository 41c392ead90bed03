//! The HTTP proxy that is a sandbox's one way out with `--network=allow`. The sandbox's
//! helper makes a listening socket inside the sandbox's network namespace (which has only
//! loopback) and hands it over a Unix socket; the runner serves it from outside, in the host's
//! network: each request (`CONNECT` for TLS, passed through undecrypted, or a plain
//! `http://` request) is checked against the allow list, recorded in `fs_net_request`, and
//! refused with a message that names the fix, or passed on.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use super::network::{self, Target};
use crate::store::{OpenMode, Store, StoreError};

/// Why the proxy could not start, or could not serve one client.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot hand the proxy's socket to the runner")]
    HandOver(#[source] Errno),
    #[error("cannot receive the proxy's socket from the sandbox")]
    Receive(#[source] Errno),
    #[error("cannot read the proxy's socket")]
    ReadSocket(#[source] Errno),
    #[error("the sandbox sent no socket for the proxy")]
    NoSocket,
    /// The session, where requests are recorded, does not open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A client's request head is longer than the proxy reads.
    #[error("a request head over {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("the client closed before its request was complete")]
    Incomplete,
    /// Talking to the client or the server failed.
    #[error(transparent)]
    Connection(#[from] std::io::Error),
}

type Result<T, E = ProxyError> = std::result::Result<T, E>;

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// Sends the listening socket `listener` over `channel` (in the helper).
pub fn send_listener(channel: RawFd, listener: &TcpListener) -> Result<()> {
    let fds = [listener.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"L")];
    sendmsg::<()>(channel, &iov, &cmsg, MsgFlags::empty(), None).map_err(ProxyError::HandOver)?;
    Ok(())
}

/// Receives the listening socket the helper sends over `channel`.
fn receive_listener(channel: &UnixStream) -> Result<TcpListener> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(ProxyError::Receive)?;
    for cmsg in msg.cmsgs().map_err(ProxyError::ReadSocket)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
            return Ok(TcpListener::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Err(ProxyError::NoSocket)
}

/// What the proxy needs to judge and record a request.
struct Policy {
    domains: Vec<String>,
    runner: i64,
    store: Mutex<Store>,
}

/// Starts serving the proxy for runner `runner` of the session `db` on the socket that will
/// arrive on `channel`; runs until the runner's process ends.
pub fn start(channel: UnixStream, db: PathBuf, runner: i64, domains: Vec<String>) -> Result<()> {
    let store = Store::open(&db, OpenMode::Existing)?;
    let policy = Arc::new(Policy {
        domains,
        runner,
        store: Mutex::new(store),
    });
    std::thread::spawn(move || {
        let listener = match receive_listener(&channel) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "agentfs: the network proxy did not start: {}",
                    crate::report::Chain(&e)
                );
                return;
            }
        };
        for client in listener.incoming().flatten() {
            let policy = policy.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(client, &policy) {
                    eprintln!("agentfs: proxy: {}", crate::report::Chain(&e));
                }
            });
        }
    });
    Ok(())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn record(policy: &Policy, t: &Target, allowed: bool) {
    let store = policy.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = store.conn.execute(
        "INSERT INTO fs_net_request (at_ns, runner_id, method, host, port, allowed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![now_ns(), policy.runner, t.method, t.host, t.port, allowed],
    );
    if let Err(e) = r {
        eprintln!("agentfs: proxy: cannot record a request to {}: {e}", t.host);
    }
}

/// Reads the request head (up to the blank line); returns it and any bytes read past it.
fn read_head(client: &mut TcpStream) -> Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(ProxyError::HeadTooLong);
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(ProxyError::Incomplete);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn reply(client: &mut TcpStream, status: &str, text: &str) -> Result<()> {
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    )?;
    Ok(())
}

fn connect(t: &Target) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("the name resolves to no address");
    for addr in (t.host.as_str(), t.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Copies both ways until each side has closed its half.
fn pipe(a: TcpStream, b: TcpStream) -> Result<()> {
    let (mut a_read, mut b_write) = (a.try_clone()?, b.try_clone()?);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a_read, &mut b_write);
        let _ = b_write.shutdown(Shutdown::Write);
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = std::io::copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(Shutdown::Write);
    let _ = up.join();
    Ok(())
}

/// The head to send the server for a plain HTTP request: origin-form target, no proxy
/// headers, one request per connection (a later one may name another host).
fn server_head(t: &Target, head: &str) -> String {
    let mut out = format!(
        "{} {} {}\r\n",
        t.method,
        t.path.as_deref().unwrap_or("/"),
        t.version
    );
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn serve(mut client: TcpStream, policy: &Policy) -> Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, rest) = read_head(&mut client)?;
    let line = head.split("\r\n").next().unwrap_or("");
    let Some(target) = network::parse_request_line(line) else {
        return reply(
            &mut client,
            "400 Bad Request",
            "agentfs: this proxy takes CONNECT host:port or an absolute http:// request\n",
        );
    };
    let allowed = network::allowed(&target.host, &policy.domains);
    record(policy, &target, allowed);
    if !allowed {
        return reply(
            &mut client,
            "403 Forbidden",
            &format!(
                "agentfs: {}:{} is not on this session's network allow list; run with \
                 --allow-domain {} to reach it\n",
                target.host, target.port, target.host
            ),
        );
    }
    let mut server = match connect(&target) {
        Ok(s) => s,
        Err(e) => {
            return reply(
                &mut client,
                "502 Bad Gateway",
                &format!(
                    "agentfs: cannot reach {}:{}: {e}\n",
                    target.host, target.port
                ),
            );
        }
    };
    client.set_read_timeout(None)?;
    if target.path.is_none() {
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    } else {
        server.write_all(server_head(&target, &head).as_bytes())?;
    }
    server.write_all(&rest)?;
    pipe(client, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_request_goes_to_the_server_in_origin_form_without_proxy_headers() {
        let head = "GET http://example.com:8080/x?y HTTP/1.1\r\nHost: example.com:8080\r\n\
                    Proxy-Connection: keep-alive\r\nProxy-Authorization: x\r\nAccept: */*\r\n\
                    Connection: keep-alive\r\n\r\n";
        let t = network::parse_request_line(head.split("\r\n").next().unwrap()).unwrap();
        assert_eq!(
            server_head(&t, head),
            "GET /x?y HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }
}
