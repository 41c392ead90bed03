//! `agentfs init`: create a session database.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use agentfs::session::{self, SessionRef};

/// Arguments of `agentfs init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id (letters, digits, '.', '_', '-'); a random one if left out.
    id: Option<String>,
    /// Directory the session overlays (recorded for `agentfs run`).
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
}

/// Creates the session and prints its id on stdout.
pub fn run(args: Args) -> Result<ExitCode> {
    let id = args.id.unwrap_or_else(session::new_id);
    let r = SessionRef::parse_new(&id)?;
    let base = match args.base {
        Some(b) => Some(session::usable_base(&b)?),
        None => None,
    };
    session::create(&r, base.as_deref())?;
    println!("{}", r.id);
    eprintln!("created session {} at {}", r.id, r.path.display());
    Ok(ExitCode::SUCCESS)
}
