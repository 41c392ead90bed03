//! `agentfs hook`: the command an agent's own hooks run, which reports each tool call to the
//! session's mount so it is recorded with the changes it made.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use agentfs::hook_socket::Message;
use agentfs::hooks::{self, Agent};

/// Arguments of `agentfs hook`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Run by the agent's hooks inside `agentfs run`, with the hook's JSON on \
    stdin. Set it up once in the agent's settings (README shows each):\n  \
    Claude Code (.claude/settings.json):\n    \
    {\"hooks\": {\"PreToolUse\": [{\"matcher\": \"*\", \"hooks\": [{\"type\": \"command\", \"command\": \"agentfs hook claude-code\"}]}],\n               \
    \"PostToolUse\": [{\"matcher\": \"*\", \"hooks\": [{\"type\": \"command\", \"command\": \"agentfs hook claude-code\"}]}]}}\n  \
    Gemini CLI (.gemini/settings.json): the same under \"BeforeTool\" and \"AfterTool\", with `agentfs hook gemini`.\n\
    It never blocks the agent: it exits 0, and says on stderr when it could not record a call.\n\
    See the calls: agentfs timeline SESSION"
)]
pub struct Args {
    /// Whose hook input is on stdin.
    #[arg(value_enum)]
    agent: Agent,
}

/// Passes the hook's input on to the mount daemon; always exits 0.
pub fn run(args: Args) -> Result<ExitCode> {
    if let Err(e) = report(args.agent) {
        eprintln!("agentfs hook: the tool call was not recorded: {e:#}");
    }
    Ok(ExitCode::SUCCESS)
}

fn report(agent: Agent) -> Result<()> {
    let mut payload = String::new();
    std::io::stdin()
        .take(hooks::MAX_MESSAGE as u64 + 1)
        .read_to_string(&mut payload)
        .context("cannot read the hook input on stdin")?;
    // Checked here for a clear message; the daemon checks again before it records.
    hooks::parse(agent, &payload)?;
    let socket = std::env::var_os("AGENTFS_HOOK_SOCKET").map_or_else(
        || PathBuf::from("/tmp").join(hooks::SOCKET_NAME),
        PathBuf::from,
    );
    let mut stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "cannot reach the session at {} (agentfs hook works inside `agentfs run`)",
            socket.display()
        )
    })?;
    let mut line = serde_json::to_string(&Message { agent, payload })?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    match answer.strip_prefix("error ") {
        Some(e) => anyhow::bail!("{}", e.trim()),
        None => Ok(()),
    }
}
