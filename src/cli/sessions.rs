//! `agentfs sessions`: a table of the sessions in the home directory.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use agentfs::session::{self, info::SessionDetails};

use super::format::{format_time, human_size, table};

/// Arguments of `agentfs sessions`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array, one object per session (fields: id, path, size, base, base_exists,
    /// created_at, last_change, live_runners, mounted_at, error).
    #[arg(long)]
    json: bool,
}

/// Prints one row per session, sorted by id; an unreadable session says why.
pub fn run(args: Args) -> Result<ExitCode> {
    let home = session::home()?;
    if args.json {
        return print_json(&home);
    }
    let mut rows: Vec<Vec<String>> = session::info::list(&home)?
        .into_iter()
        .map(|s| {
            let size = human_size(s.size);
            match s.details {
                Ok(d) => row(s.id, size, d),
                Err(e) => vec![
                    s.id,
                    format!("(unreadable: {:#})", anyhow::Error::from(e)),
                    size,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ],
            }
        })
        .collect();
    rows.sort();
    let mut out = io::stdout().lock();
    if rows.is_empty() {
        writeln!(
            out,
            "no sessions in {}; create one with `agentfs init ID`",
            home.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = table(vec![
        "id",
        "base",
        "size",
        "created",
        "last change",
        "live runners",
        "mounted at",
    ]);
    for r in rows {
        table.add_row(r);
    }
    writeln!(out, "{table}")?;
    Ok(ExitCode::SUCCESS)
}

/// The sessions as one JSON array sorted by id; sizes in bytes, times in Unix seconds.
/// An unreadable session has `error` set and nulls for what could not be read.
fn print_json(home: &Path) -> Result<ExitCode> {
    let mut sessions = session::info::list(home)?;
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    let items: Vec<Value> = sessions
        .into_iter()
        .map(|s| {
            let path = s.path.to_string_lossy().into_owned();
            match s.details {
                Ok(d) => json!({
                    "id": s.id,
                    "path": path,
                    "size": s.size,
                    "base": d.base,
                    "base_exists": d.base_exists,
                    "created_at": d.created_at,
                    "last_change": d.last_change,
                    "live_runners": d.live_runners,
                    "mounted_at": d
                        .mounted_at
                        .iter()
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect::<Vec<_>>(),
                    "error": Value::Null,
                }),
                Err(e) => json!({
                    "id": s.id,
                    "path": path,
                    "size": s.size,
                    "base": Value::Null,
                    "base_exists": Value::Null,
                    "created_at": Value::Null,
                    "last_change": Value::Null,
                    "live_runners": Value::Null,
                    "mounted_at": Value::Null,
                    "error": format!("{:#}", anyhow::Error::from(e)),
                }),
            }
        })
        .collect();
    writeln!(io::stdout().lock(), "{}", Value::Array(items))?;
    Ok(ExitCode::SUCCESS)
}

/// The table row of a readable session.
fn row(id: String, size: String, d: SessionDetails) -> Vec<String> {
    let base = match d.base {
        None => "-".to_string(),
        Some(b) if d.base_exists => b,
        Some(b) => format!("{b} (missing)"),
    };
    let runners = if d.live_runners == 0 {
        "-".to_string()
    } else {
        d.live_runners.to_string()
    };
    let mounted = if d.mounted_at.is_empty() {
        "-".to_string()
    } else {
        let points: Vec<String> = d
            .mounted_at
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        points.join(", ")
    };
    vec![
        id,
        base,
        size,
        format_time(d.created_at),
        format_time(d.last_change),
        runners,
        mounted,
    ]
}
