//! `agentfs run`, `agentfs exec` and the internal `sandbox-exec`: run a command on a session.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};

use agentfs::run::RunOptions;

/// Arguments of `agentfs run`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The session's base is the current directory when the session is \
created; without --session a new session with a random id is made. Everything outside the \
base is read-only except /tmp (private to the session, shared by its runners) and the \
allowed paths: by default those of ~/.claude, ~/.claude.json, ~/.codex, ~/.gemini, ~/.amp, \
~/.local, ~/.npm and ~/.cache that exist.
Secrets are hidden: ~/.ssh, ~/.aws, ~/.gnupg, ~/.netrc, ~/.git-credentials, ~/.config/gh, ~/.docker/config.json, ~/.kube, the session databases, and what --deny names. With --hide-home nothing under $HOME shows but the base, the writable paths and --read paths.
The command sees only its own processes and keeps Docker's default capabilities; see SECURITY.md for what the sandbox promises and what it does not.
Another terminal joins the same live session with the same --session id; all runners share \
one mount, which lives while any of them runs.
Exit status: the command's; 128+N if a signal N killed it; 125 if the sandbox could not be \
set up, 126 if the command cannot run, 127 if it is not found.

Examples:
  agentfs run --session fix-tests claude
  agentfs run --session fix-tests bash          (join it from another terminal)
  agentfs run --allow ~/.config/git -- make test
  agentfs run --deny ~/work/other-client -- claude
  agentfs run --hide-home --read ~/.cargo --read ~/.rustup -- cargo build
  agentfs run --network=allow --allow-domain github.com --allow-domain '*.crates.io' -- claude
  agentfs run --network=none -- make test"
)]
pub struct Args {
    /// Session id to create or join (a random one if left out).
    #[arg(long, add = super::completions::session())]
    session: Option<String>,
    /// Also keep PATH writable, directly (not copy-on-write). Repeatable.
    #[arg(long, value_name = "PATH")]
    allow: Vec<PathBuf>,
    /// Do not make the agent directories under $HOME writable.
    #[arg(long)]
    no_default_allows: bool,
    /// Also hide PATH (a directory shows empty, a file reads as empty); wins over
    /// --allow and --read. Repeatable. ~/.ssh, ~/.aws, ~/.gnupg, ~/.netrc,
    /// ~/.git-credentials, ~/.config/gh, ~/.docker/config.json and ~/.kube are hidden
    /// always.
    #[arg(long, value_name = "PATH")]
    deny: Vec<PathBuf>,
    /// Show nothing under $HOME but the base directory, the writable paths and the
    /// --read paths (toolchains need theirs: see README).
    #[arg(long)]
    hide_home: bool,
    /// With --hide-home: also show PATH, read-only. Repeatable.
    #[arg(long, value_name = "PATH")]
    read: Vec<PathBuf>,
    /// host: the host's network (the default); none: loopback only; allow: loopback,
    /// and the --allow-domain names through a proxy agentfs serves, which records every
    /// request in the session (fs_net_request). Kept as the session's default.
    #[arg(long, value_name = "POLICY")]
    network: Option<agentfs::run::network::Network>,
    /// With --network=allow (implied): let NAME through (*.NAME: its subdomains).
    /// Repeatable.
    #[arg(long, value_name = "NAME")]
    allow_domain: Vec<String>,
    /// Do not print the welcome banner.
    #[arg(long, short)]
    quiet: bool,
    /// Serve extended attributes on the session's mount (off by default, to save a round
    /// trip per `ls -l` entry and per write; see `agentfs mount --help`). Taken when the
    /// session's shared mount starts: runners that join later share it as it is.
    #[arg(long)]
    xattrs: bool,
    /// The command and its arguments (default: $SHELL). Options of `run` come first: a
    /// mistyped one is an error, not a command; `--` or the first word that is not an
    /// option starts the command, whose own options pass through untouched.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Arguments of `agentfs exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

/// Arguments of the internal `agentfs sandbox-exec`.
#[derive(clap::Args, Debug)]
pub struct SandboxExecArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

/// Runs the command in the sandbox; exits with its status.
pub fn run(args: Args) -> Result<ExitCode> {
    run_command(&RunOptions {
        session: args.session,
        allow: args.allow,
        default_allows: !args.no_default_allows,
        deny: args.deny,
        read: args.read,
        hide_home: args.hide_home,
        network: args.network,
        allow_domains: args.allow_domain,
        quiet: args.quiet,
        xattrs: args.xattrs,
        command: args.command,
        exec: false,
    })
}

/// Runs the command in the session's mount, unsandboxed; exits with its status.
pub fn exec(args: ExecArgs) -> Result<ExitCode> {
    run_command(&RunOptions {
        session: Some(args.session),
        allow: Vec::new(),
        default_allows: false,
        deny: Vec::new(),
        read: Vec::new(),
        hide_home: false,
        network: None,
        allow_domains: Vec::new(),
        quiet: true,
        xattrs: false,
        command: args.command,
        exec: true,
    })
}

fn run_command(opts: &RunOptions) -> Result<ExitCode> {
    Ok(ExitCode::from(agentfs::run::run(opts)?))
}

/// Enters the sandbox that `agentfs run` planned (passed in the environment) and becomes
/// the command.
pub fn sandbox_exec(args: SandboxExecArgs) -> Result<ExitCode> {
    use agentfs::run::sandbox;
    let plan = std::env::var(sandbox::PLAN_ENV).map_err(|_| {
        anyhow!("sandbox-exec is started by `agentfs run`; it is not meant to be run by hand")
    })?;
    let plan: sandbox::Plan =
        serde_json::from_str(&plan).context("the sandbox plan from `agentfs run` is invalid")?;
    Ok(ExitCode::from(sandbox::enter(&plan, &args.command)))
}
