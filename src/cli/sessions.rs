//! `agentfs sessions`: a table of the sessions in the home directory.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;

use agentfs::session::{self, info::SessionDetails};

use super::format::{format_time, human_size, table};

/// Arguments of `agentfs sessions` (none).
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Prints one row per session, sorted by id; an unreadable session says why.
pub fn run(_args: Args) -> Result<ExitCode> {
    let home = session::home()?;
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
