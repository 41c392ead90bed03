//! `agentfs vacuum`: give a session's free space back to the disk now.

use std::process::ExitCode;

use anyhow::Result;

use agentfs::session;

use super::format::human_size;
use super::open::open_existing;

/// Arguments of `agentfs vacuum`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Draw no progress on stderr (it is drawn only when stderr is a terminal anyway).
    #[arg(short, long)]
    quiet: bool,
}

/// Compacts the session and reports its size before and after.
pub fn run(args: Args) -> Result<ExitCode> {
    let (r, vfs) = open_existing(&args.session)?;
    let before = session::size_on_disk(&r.path);
    let bar = super::progress::Bar::new(args.quiet);
    vfs.compact_with_progress(&bar)?;
    drop(bar);
    let after = session::size_on_disk(&r.path);
    eprintln!(
        "session {}: {} -> {}",
        r.id,
        human_size(before),
        human_size(after)
    );
    Ok(ExitCode::SUCCESS)
}
