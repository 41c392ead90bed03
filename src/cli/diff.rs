//! `agentfs diff`: what a session changed against its base, as a patch, list, stat or JSON.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::diff::{self, render};
use agentfs::session::SessionRef;

/// Arguments of `agentfs diff`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "A added, M modified (bytes or mode differ), D deleted, R renamed, \
T type changed. Untouched files are never listed, even if read or copied up. Binary files \
are reported as such. Safe while the session is mounted. The rows come from the fs_changes \
view (SPEC.md), so `agentfs sql SESSION 'SELECT * FROM fs_changes'` agrees.

Examples:
  agentfs diff demo
  agentfs diff demo --name-status src/
  agentfs diff demo --stat
  agentfs diff demo --json
  agentfs diff demo --stat --json"
)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Only changes at or below these paths (of the session, `/`-separated).
    paths: Vec<String>,
    /// One line per change: status letter and path.
    #[arg(long, conflicts_with_all = ["stat", "json"])]
    name_status: bool,
    /// Lines added and removed per file, and totals (with --json: the JSON objects of the
    /// files only, as the diffstat lists them).
    #[arg(long)]
    stat: bool,
    /// The changes as a JSON array (fields: path, status, old_path, type, size_before,
    /// size_after, time, runner, binary, insertions, deletions).
    #[arg(long)]
    json: bool,
    /// Colour the patch: auto (when stdout is a terminal), always or never.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    color: ColorWhen,
}

/// When `agentfs diff` colours its patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Prints the session's changes in the format asked for (a patch by default).
pub fn run(args: Args) -> Result<ExitCode> {
    let r = SessionRef::parse(&args.session)?;
    r.require_exists()?;
    let opened = agentfs::repl::connect::open(&r.path, false)?;
    let conn = &opened.conn;
    let base = diff::base_dir(conn)?;
    let changes = diff::changes(conn, &args.paths)?;
    let text = if args.name_status {
        render::name_status(&changes)
    } else if args.stat && args.json {
        // The rows of the diffstat (directories have none), in the JSON of `--json`, which
        // already carries each file's insertions and deletions.
        let files: Vec<_> = changes.into_iter().filter(|c| !c.is_dir()).collect();
        render::json(conn, base.as_deref(), &files)?
    } else if args.stat {
        render::stat(conn, base.as_deref(), &changes)?
    } else if args.json {
        render::json(conn, base.as_deref(), &changes)?
    } else {
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => io::stdout().is_terminal(),
        };
        render::patches(conn, base.as_deref(), &changes, color)?
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
