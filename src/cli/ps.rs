//! `agentfs ps`: list the live runners of every session, or of one.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::session::{self, SessionRef};
use agentfs::store::OpenMode;

use super::format::{format_time, table};

/// Arguments of `agentfs ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only this session.
    #[arg(add = super::completions::session())]
    session: Option<String>,
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
    for r in &sessions {
        let store = match agentfs::store::Store::open(&r.path, OpenMode::Existing) {
            Ok(s) => s,
            Err(e) if only.is_some() => return Err(e.into()),
            Err(_) => continue,
        };
        for runner in agentfs::runners::live(&store.conn)? {
            any = true;
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
    if any {
        writeln!(out, "{table}")?;
    } else {
        writeln!(out, "no live runners")?;
    }
    Ok(ExitCode::SUCCESS)
}
