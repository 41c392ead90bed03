//! `agentfs gc`: delete the sessions nobody has changed or used for a while.

use std::process::ExitCode;

use anyhow::{Result, anyhow};

use agentfs::progress::Progress;
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
    /// Draw no progress on stderr (it is drawn only when stderr is a terminal anyway).
    #[arg(short, long)]
    quiet: bool,
}

/// Prints the id of each session removed (or that would be), and on stderr why others
/// were kept.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        older_than,
        dry_run,
        quiet,
    } = args;
    let age = humantime::parse_duration(&older_than).map_err(|e| {
        anyhow!("--older-than {older_than:?} is not a duration ({e}); write e.g. 30m, 12h or 7d")
    })?;
    let home = session::home()?;
    let cutoff = std::time::SystemTime::now()
        .checked_sub(age)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    let ids = session::list_ids(&home);
    // Items: the sessions looked at; bytes: those of the sessions removed.
    let bar = super::progress::Bar::new(quiet);
    bar.start("collecting", Some(ids.len() as u64), None);
    for id in ids {
        let r = SessionRef::parse(&id)?;
        let kept = match remove::gc_verdict(&r, cutoff) {
            GcVerdict::Recent => {
                bar.advance(1, 0);
                continue;
            }
            GcVerdict::Mounted(point) => Some(format!("mounted at {}", point.display())),
            GcVerdict::LiveRunners(live) => Some(format!("{live} live runner(s)")),
            GcVerdict::Stale => None,
        };
        if let Some(why) = kept {
            bar.suspend(|| eprintln!("keeping {id}: {why}"));
            bar.advance(1, 0);
            continue;
        }
        if dry_run {
            bar.suspend(|| println!("{id}"));
            bar.advance(1, 0);
            continue;
        }
        let size = session::size_on_disk(&r.path);
        remove::remove_files(&r)?;
        bar.suspend(|| println!("{id}"));
        bar.advance(1, size);
        removed += 1;
    }
    bar.finish();
    if !dry_run {
        eprintln!("removed {removed} session(s) older than {older_than}");
    }
    Ok(ExitCode::SUCCESS)
}
