//! `agentfs fork`: copy a session to a new one.

use std::process::ExitCode;

use anyhow::Result;

use agentfs::session::SessionRef;

use super::open::open_existing;

/// Arguments of `agentfs fork`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Id (or .db path) of the new session.
    new: String,
    /// Draw no progress on stderr (it is drawn only when stderr is a terminal anyway).
    #[arg(short, long)]
    quiet: bool,
}

/// Forks the session and prints the new id on stdout.
pub fn run(args: Args) -> Result<ExitCode> {
    let (from, vfs) = open_existing(&args.session)?;
    let to = SessionRef::parse_new(&args.new)?;
    let bar = super::progress::Bar::new(args.quiet);
    agentfs::session::fork::fork_with_progress(&from, &vfs, &to, &bar)?;
    drop(bar);
    println!("{}", to.id);
    eprintln!(
        "forked session {} into {} at {}",
        from.id,
        to.id,
        to.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
