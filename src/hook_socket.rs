//! The mount daemon's end of the agents' hook channel: a Unix socket in the private /tmp of
//! `agentfs run`'s sandbox. Who sent a message is known from the socket's peer credentials
//! (never from what it says), and what it says is checked by `hooks` before it is recorded,
//! so a command in the sandbox can add well-formed tool calls of its own runner, nothing else.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::hooks::{self, Agent, HookError};
use crate::runners::{self, RunnerResolver};
use crate::vfs::Vfs;

/// How long one client may take to send its message.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a hook sends: which agent's input it passes on, and that input.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub agent: Agent,
    pub payload: String,
}

/// Listens on `socket` (made anew, mode 0600) and records what hooks send, until the
/// process ends. Errors with one client are answered to it and do not stop the others.
pub fn serve(socket: &Path, vfs: Arc<Vfs>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let resolver = RunnerResolver::new();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = match handle(&stream, &vfs, &resolver) {
                Ok(id) => format!("ok {id}\n"),
                Err(e) => format!("error {e}\n"),
            };
            let _ = (&stream).write_all(answer.as_bytes());
        }
    });
    Ok(())
}

/// Why a client's message was not recorded.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("cannot read the message: {0}")]
    Read(#[from] std::io::Error),
    #[error("the message is not a hook message: {0}")]
    Format(#[from] serde_json::Error),
    #[error("{0}")]
    Hook(#[from] HookError),
    #[error("the session: {0}")]
    Session(#[from] crate::vfs::VfsError),
}

fn handle(stream: &UnixStream, vfs: &Vfs, resolver: &RunnerResolver) -> Result<i64, ClientError> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let pid = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?
        .pid();
    let mut line = String::new();
    BufReader::new(stream.take(hooks::MAX_MESSAGE as u64 * 2 + 1024)).read_line(&mut line)?;
    if line.len() > hooks::MAX_MESSAGE * 2 {
        return Err(HookError::TooLarge.into());
    }
    let message: Message = serde_json::from_str(&line)?;
    let event = hooks::parse(message.agent, &message.payload)?;
    let store = vfs.store()?;
    let runner = resolver.runner_of(pid as u32, |ns| {
        runners::runner_with_ns(&store.conn, ns).ok()
    });
    Ok(hooks::record(&store.conn, runner, &event)?)
}
