//! `agentfs kv`: read and write a session's key-value store.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::open::open_existing;

/// Arguments of `agentfs kv`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    #[command(subcommand)]
    op: Op,
}

/// The operations of `agentfs kv`.
#[derive(Subcommand, Debug)]
enum Op {
    /// Print the JSON value stored under KEY.
    Get { key: String },
    /// Store VALUE (JSON text, e.g. '"text"', 42, '{"a":1}') under KEY.
    Set { key: String, value: String },
    /// List all keys with their values.
    List,
    /// Remove KEY.
    Delete { key: String },
}

/// Runs one key-value operation; a missing key is an error.
pub fn run(args: Args) -> Result<ExitCode> {
    let arg = &args.session;
    let (_r, vfs) = open_existing(arg)?;
    let store = vfs.store()?;
    let conn = &store.conn;
    let mut out = io::stdout().lock();
    match args.op {
        Op::Get { key } => match agentfs::kv::get(conn, &key)? {
            Some(v) => writeln!(out, "{v}")?,
            None => bail!("no key {key:?} in this session; list keys with `agentfs kv {arg} list`"),
        },
        Op::Set { key, value } => {
            agentfs::kv::check(&key, &value)?;
            agentfs::kv::set(conn, &key, &value)?;
        }
        Op::List => {
            for e in agentfs::kv::list(conn)? {
                writeln!(out, "{}\t{}", e.key, e.value)?;
            }
        }
        Op::Delete { key } => {
            if !agentfs::kv::delete(conn, &key)? {
                bail!("no key {key:?} in this session; nothing deleted");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
