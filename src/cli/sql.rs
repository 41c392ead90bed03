//! `agentfs sql`: query a session with SQL, from arguments, stdin or an interactive shell.

use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};

use agentfs::repl::{Shell, render::Mode};
use agentfs::session::{self, SessionRef};

/// Arguments of `agentfs sql`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  agentfs sql demo 'SELECT status, path FROM fs_changes'
  agentfs sql demo --json '.q changes'
  agentfs sql demo --query diff /src/main.rs
  echo '.q recent_changes 5' | agentfs sql demo
  agentfs sql demo            (interactive; history in $AGENTFS_HOME/.sql_history)

The session is opened read-only (pass --write to change it). Each statement runs on its own,
so the shell never holds the session's WAL while it waits and never blocks a running mount.
Views: fs_paths, fs_changes. Functions: path_of, content, content_hash, base_content, blake3,
unified_diff, is_text, human_size (see SPEC.md).")]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// SQL to run (several statements separated by ';', or a dot-command); with --query,
    /// the query's arguments. Without it: stdin, or a prompt on a terminal.
    sql: Vec<String>,
    /// Output format: table, csv, json, line or list.
    #[arg(long, default_value = "table")]
    mode: String,
    /// Print results as JSON (same as --mode json).
    #[arg(long, conflicts_with_all = ["csv", "mode"])]
    json: bool,
    /// Print results as CSV (same as --mode csv).
    #[arg(long, conflicts_with = "mode")]
    csv: bool,
    /// Run the named query NAME (`.queries` lists them).
    #[arg(long, value_name = "NAME", add = super::completions::named_query())]
    query: Option<String>,
    /// Open the session writable (statements may change it).
    #[arg(long)]
    write: bool,
}

/// Runs the named query, the statements given, the script on stdin, or the interactive
/// shell when stdin is a terminal.
pub fn run(args: Args) -> Result<ExitCode> {
    let mode = match (args.json, args.csv) {
        (true, _) => "json".to_string(),
        (_, true) => "csv".to_string(),
        _ => args.mode,
    };
    let Args {
        session: arg,
        sql,
        query,
        write,
        ..
    } = args;
    let mode = Mode::parse(&mode)
        .ok_or_else(|| anyhow!("unknown --mode {mode:?}; use table, csv, json, line or list"))?;
    let r = SessionRef::parse(&arg)?;
    r.require_exists()?;
    let opened = agentfs::repl::connect::open(&r.path, write)?;
    let mut shell = Shell::new(opened);
    shell.mode = mode;
    let mut out = io::stdout().lock();
    if let Some(name) = query {
        shell.bail = true;
        shell.run_named(&name, &sql, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !sql.is_empty() {
        // Like the sqlite3 shell, the argument may also be a dot-command (`.q files`).
        shell.bail = true;
        shell.run_script(&sql.join(" "), &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !io::stdin().is_terminal() {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        shell.run_script(&text, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    shell.width = terminal_width();
    let history = session::home().ok().map(|h| h.join(".sql_history"));
    agentfs::repl::interactive::run(&mut shell, history)?;
    Ok(ExitCode::SUCCESS)
}

/// Columns of the terminal on stdout, for fitting tables.
fn terminal_width() -> Option<u16> {
    // SAFETY: winsize is plain old data, for which all zero bytes are a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then_some(ws.ws_col)
}
