//! The command line: the top-level clap definition, and dispatch to one module per command.

mod apply;
mod completions;
mod diff;
mod export;
mod fork;
mod format;
mod fs;
mod fsck;
mod gc;
mod hook;
mod init;
mod kv;
mod man;
mod mount;
mod open;
mod progress;
mod ps;
mod rm;
mod run;
mod serve;
mod sessions;
mod sql;
mod timeline;
mod vacuum;

use std::io;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Run commands on a copy-on-write view of a directory; every change is kept in one SQLite
/// database per session.
#[derive(Parser, Debug)]
#[command(name = "agentfs", version, propagate_version = true)]
#[command(
    after_help = "Sessions live in $AGENTFS_HOME (default ~/.agentfs) as <ID>.db. \
Every command that takes a SESSION accepts an id or a path to a .db file.

Examples:
  agentfs run --session demo bash
  agentfs diff demo
  agentfs fs demo write /notes.txt --data 'hello'
  agentfs fs demo tree /
  agentfs sessions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every command, in the order `agentfs --help` lists them. The doc comment of a variant is
/// the command's one-line help; its arguments and longer help are in its module.
#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new session database.
    Init(init::Args),
    /// Run a command (your shell if none) in a sandbox whose current directory is a
    /// copy-on-write view of this one: writes go to the session, never to this directory.
    Run(run::Args),
    /// Run a command in a session's mount, without the read-only sandbox (for scripts and
    /// CI): the base directory's path shows the session, the rest of the system is as usual.
    Exec(run::ExecArgs),
    /// List the live runners (`agentfs run` / `agentfs exec`) of every session, or of one.
    Ps(ps::Args),
    /// Internal: set up the sandbox and become the command (started by `agentfs run`).
    #[command(hide = true)]
    SandboxExec(run::SandboxExecArgs),
    /// List sessions: id, base directory, size on disk, created, last change, live runners,
    /// where mounted.
    Sessions(sessions::Args),
    /// Look at or change files inside a session, without mounting it.
    Fs(fs::Args),
    /// Read and write the session's key-value store (JSON values).
    Kv(kv::Args),
    /// Serve a session to agents without a mount: `agentfs serve mcp SESSION` (MCP on stdio).
    Serve(serve::Args),
    /// Show a session's tool calls in order: status, duration and the paths each changed.
    Timeline(timeline::Args),
    /// Record an agent's tool call from its hooks (Claude Code, Codex, Gemini CLI), inside
    /// `agentfs run`.
    Hook(hook::Args),
    /// Mount a session on a directory (returns once the mount is ready; serves in the
    /// background).
    Mount(mount::Args),
    /// Unmount a directory mounted with `agentfs mount`.
    Umount(mount::UmountArgs),
    /// Query a session with SQL: the given statements, a script on stdin, or an interactive
    /// shell (sqlite3-style dot-commands; `.help` lists them, `.queries` the named queries).
    Sql(sql::Args),
    /// Show what a session changed against its base, as a unified diff (like `git diff`).
    Diff(diff::Args),
    /// Write a session's changes into its base directory (A added, M modified, D deleted,
    /// R renamed); applied paths leave the session, so `agentfs diff` shows what is left.
    Apply(apply::Args),
    /// Export a session's changes as a git patch (`git apply` takes it on the base) or as a
    /// tar archive of the created and modified files.
    Export(export::Args),
    /// Copy a session (consistently, also while it is mounted and being written) to a new one.
    Fork(fork::Args),
    /// Check a session database against the SPEC's rules (exit 0: clean, 1: problems).
    Fsck(fsck::Args),
    /// Give the space of deleted data back to the disk now (mounts also do it when idle and
    /// at unmount).
    Vacuum(vacuum::Args),
    /// Delete sessions whose last change is older than a duration (never a live or mounted
    /// one).
    Gc(gc::Args),
    /// Delete a session and its database files.
    Rm(rm::Args),
    /// Print the completion script of a shell (commands, options, session ids, named
    /// queries).
    Completions(completions::Args),
    /// Print the man page of agentfs or of one command, or write them all into a directory.
    Man(man::Args),
}

/// Parses arguments, runs the command and reports errors on stderr.
pub fn main() -> ExitCode {
    completions::complete_if_asked();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentfs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Output cut short by a closed pipe (`agentfs diff demo | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use agentfs::repl::ReplError;
    e.chain()
        .filter_map(|c| {
            // The SQL shell's output errors show the io::Error's text in place of their own.
            c.downcast_ref::<io::Error>()
                .or_else(|| match c.downcast_ref::<ReplError>() {
                    Some(ReplError::Output(io)) => Some(io),
                    _ => None,
                })
        })
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Init(args) => init::run(args),
        Command::Run(args) => run::run(args),
        Command::Exec(args) => run::exec(args),
        Command::Ps(args) => ps::run(args),
        Command::SandboxExec(args) => run::sandbox_exec(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Fs(args) => fs::run(args),
        Command::Kv(args) => kv::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Timeline(args) => timeline::run(args),
        Command::Hook(args) => hook::run(args),
        Command::Mount(args) => mount::run(args),
        Command::Umount(args) => mount::umount(args),
        Command::Sql(args) => sql::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Export(args) => export::run(args),
        Command::Fork(args) => fork::run(args),
        Command::Fsck(args) => fsck::run(args),
        Command::Vacuum(args) => vacuum::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
