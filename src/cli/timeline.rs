//! `agentfs timeline`: a session's tool calls in order, with the paths each changed.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::timeline::{self, Filter};

use super::format::{format_time, table};
use super::open::open_existing;

/// Arguments of `agentfs timeline`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Only the newest N calls.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Only calls of this tool (e.g. write_file).
    #[arg(long, value_name = "NAME")]
    filter: Option<String>,
    /// Only calls with this status.
    #[arg(long, value_parser = ["pending", "success", "error"])]
    status: Option<String>,
    /// Print a JSON array (fields: id, name, status, started_at, duration_ms, error, paths).
    #[arg(long)]
    json: bool,
}

/// Prints the calls, oldest first.
pub fn run(args: Args) -> Result<ExitCode> {
    let (_r, vfs) = open_existing(&args.session)?;
    let filter = Filter {
        name: args.filter,
        status: args.status,
        limit: args.limit,
    };
    let calls = timeline::calls(&vfs.store()?.conn, &filter)?;
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&calls)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if calls.is_empty() {
        writeln!(out, "no tool calls")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(vec!["call", "tool", "status", "started", "ms", "changed"]);
    for c in &calls {
        let status = match &c.error {
            Some(e) => format!("{}: {e}", c.status),
            None => c.status.clone(),
        };
        t.add_row(vec![
            c.id.to_string(),
            c.name.clone(),
            status,
            format_time(Some(c.started_at)),
            c.duration_ms.map_or_else(|| "-".into(), |d| d.to_string()),
            c.paths.join("\n"),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(ExitCode::SUCCESS)
}
