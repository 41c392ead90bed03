//! `agentfs serve mcp`: a session's tools for agents over the Model Context Protocol (stdio).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use agentfs::session::SessionRef;

/// Arguments of `agentfs serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

/// What `agentfs serve` serves.
#[derive(Subcommand, Debug)]
enum What {
    /// Serve a session's files, key-value store, changes, diff and read-only SQL to an agent
    /// over MCP on stdin/stdout, without a mount. Every call is a row of `tool_calls`, and
    /// the journal rows it made name it.
    #[command(
        after_help = "Register it with your agent (SESSION: an id or a .db path):\n  \
        Claude Code:  claude mcp add agentfs -- agentfs serve mcp SESSION\n  \
        Codex:        in ~/.codex/config.toml:\n                  \
        [mcp_servers.agentfs]\n                  \
        command = \"agentfs\"\n                  \
        args = [\"serve\", \"mcp\", \"SESSION\"]\n  \
        Gemini CLI:   in ~/.gemini/settings.json:\n                  \
        {\"mcpServers\": {\"agentfs\": {\"command\": \"agentfs\", \"args\": [\"serve\", \"mcp\", \"SESSION\"]}}}\n\n\
        Tools: read_file, write_file, edit_file, list_dir, mkdir, remove, rename, stat, search, \
        kv_get, kv_set, kv_delete, kv_list, changes, diff, sql.\n\
        See what the agent did: agentfs sql SESSION 'SELECT * FROM tool_calls'"
    )]
    Mcp(McpArgs),
}

/// Arguments of `agentfs serve mcp`.
#[derive(clap::Args, Debug)]
struct McpArgs {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Offer only these tools (comma-separated names).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    tools: Option<Vec<String>>,
    /// Refuse every tool that would change the session (they answer with a tool error).
    #[arg(long)]
    read_only: bool,
}

/// Serves until the client closes stdin.
pub fn run(args: Args) -> Result<ExitCode> {
    let What::Mcp(mcp) = args.what;
    let r = SessionRef::parse(&mcp.session)?;
    r.require_exists()?;
    let tools = agentfs::tools::Tools::open(&r.path, mcp.read_only, mcp.tools.as_deref())?;
    agentfs::mcp::serve_stdio(tools)?;
    Ok(ExitCode::SUCCESS)
}
