//! `agentfs ps`: list the live runners of every session, or of one.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::runners::Runner;
use agentfs::session::{self, SessionRef};
use agentfs::store::OpenMode;

use super::format::{format_time, table};

/// Arguments of `agentfs ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this session.
    #[arg(add = super::completions::session())]
    session: Option<String>,
    /// Print a JSON array, one object per live runner (fields: session, runner, pid,
    /// started_at, cwd, argv, command).
    #[arg(long)]
    json: bool,
}

/// Prints a table of the live runners of each session (or of the one given).
pub fn run(args: Args) -> Result<ExitCode> {
    let only = args.session.as_deref();
    let sessions: Vec<SessionRef> = match only {
        Some(arg) => {
            let r = SessionRef::parse(arg)?;
            r.require_exists()?;
            vec![r]
        }
        None => session::list_ids(&session::home()?)
            .iter()
            .filter_map(|id| SessionRef::parse(id).ok())
            .collect(),
    };
    let mut table = table(vec![
        "session", "runner", "pid", "started", "cwd", "command",
    ]);
    let mut any = false;
    let mut items = Vec::new();
    for r in &sessions {
        let store = match agentfs::store::Store::open(&r.path, OpenMode::Existing) {
            Ok(s) => s,
            Err(e) if only.is_some() => return Err(e.into()),
            Err(_) => continue,
        };
        for runner in agentfs::runners::live(&store.conn)? {
            any = true;
            if args.json {
                items.push(json_row(&r.id, &runner));
                continue;
            }
            table.add_row(vec![
                r.id.clone(),
                runner.id.to_string(),
                runner.pid.to_string(),
                format_time(Some(runner.started_at_ns / 1_000_000_000)),
                runner.cwd.clone(),
                runner.command_line(),
            ]);
        }
    }
    let mut out = io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::Value::Array(items))?;
    } else if any {
        writeln!(out, "{table}")?;
    } else {
        writeln!(out, "no live runners")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One runner as JSON: its start in Unix seconds, its command as the argument array and as
/// one line.
fn json_row(session: &str, runner: &Runner) -> serde_json::Value {
    let argv: Vec<String> =
        serde_json::from_str(&runner.argv).unwrap_or_else(|_| vec![runner.argv.clone()]);
    serde_json::json!({
        "session": session,
        "runner": runner.id,
        "pid": runner.pid,
        "started_at": runner.started_at_ns.div_euclid(1_000_000_000),
        "cwd": runner.cwd,
        "argv": argv,
        "command": runner.command_line(),
    })
}
