//! `agentfs rm`: delete a session.

use std::process::ExitCode;

use anyhow::Result;

use agentfs::session::SessionRef;

/// Arguments of `agentfs rm`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
}

/// Deletes the session, unless it is mounted or in use.
pub fn run(args: Args) -> Result<ExitCode> {
    let r = SessionRef::parse(&args.session)?;
    agentfs::session::remove::remove(&r)?;
    eprintln!("removed session {}", r.id);
    Ok(ExitCode::SUCCESS)
}
