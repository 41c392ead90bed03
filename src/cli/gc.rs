//! `agentfs gc`: delete the sessions nobody has changed or used for a while.

use std::process::ExitCode;

use anyhow::{Result, anyhow};

use agentfs::session::remove::{self, GcVerdict};
use agentfs::session::{self, SessionRef};

/// Arguments of `agentfs gc`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Age, like 30m, 12h, 7d or "2weeks".
    #[arg(long, value_name = "DURATION")]
    older_than: String,
    /// Only list what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

/// Prints the id of each session removed (or that would be), and on stderr why others
/// were kept.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        older_than,
        dry_run,
    } = args;
    let age = humantime::parse_duration(&older_than).map_err(|e| {
        anyhow!("--older-than {older_than:?} is not a duration ({e}); write e.g. 30m, 12h or 7d")
    })?;
    let home = session::home()?;
    let cutoff = std::time::SystemTime::now()
        .checked_sub(age)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    for id in session::list_ids(&home) {
        let r = SessionRef::parse(&id)?;
        match remove::gc_verdict(&r, cutoff) {
            GcVerdict::Recent => continue,
            GcVerdict::Mounted(point) => {
                eprintln!("keeping {id}: mounted at {}", point.display());
                continue;
            }
            GcVerdict::LiveRunners(live) => {
                eprintln!("keeping {id}: {live} live runner(s)");
                continue;
            }
            GcVerdict::Stale => {}
        }
        if dry_run {
            println!("{id}");
            continue;
        }
        remove::remove_files(&r)?;
        println!("{id}");
        removed += 1;
    }
    if !dry_run {
        eprintln!("removed {removed} session(s) older than {older_than}");
    }
    Ok(ExitCode::SUCCESS)
}
