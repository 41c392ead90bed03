//! `agentfs export`: a session's changes as a git patch or a tar archive.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use agentfs::apply::tree::{BaseTree, SessionTree};

use super::open::open_existing;

/// Arguments of `agentfs export`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  agentfs export demo --patch > demo.patch && git -C BASE apply demo.patch
  agentfs export demo --patch -o demo.patch src/
  agentfs export demo --tar changed.tar

A git patch cannot hold empty directories or directory modes, nor modes other than the \
executable bit; what it cannot express is listed on stderr.")]
#[command(group(clap::ArgGroup::new("format").required(true).args(["patch", "tar"])))]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Only changes at or below these paths (relative to the base).
    paths: Vec<String>,
    /// Write a git patch (to stdout, or -o FILE).
    #[arg(long)]
    patch: bool,
    /// Write the created and modified files as a tar archive to FILE ('-': stdout).
    #[arg(long, value_name = "FILE")]
    tar: Option<PathBuf>,
    /// With --patch: write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE", requires = "patch")]
    output: Option<PathBuf>,
    /// Draw no progress on stderr (it is drawn only when stderr is a terminal anyway).
    #[arg(short, long)]
    quiet: bool,
}

/// Writes the patch (the default) or the archive to its file or stdout.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        session: arg,
        paths,
        patch: _,
        tar,
        output,
        quiet,
    } = args;
    let (r, vfs) = open_existing(&arg)?;
    let base = agentfs::apply::base_of(&vfs)?;
    let vfs = std::sync::Arc::new(vfs);
    let items = agentfs::apply::plan(&vfs, &base, &paths)?;
    let session = SessionTree::new(vfs.clone(), &base);
    let target = tar.as_ref().or(output.as_ref());
    let to_file = target.filter(|p| p.as_os_str() != "-");
    // Output on a terminal is not mixed with a bar on the same screen.
    let bar = super::progress::Bar::new(
        quiet || to_file.is_none() && std::io::IsTerminal::is_terminal(&io::stdout()),
    );
    let mut sink: Box<dyn Write> = match to_file {
        Some(path) => Box::new(io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    if tar.is_some() {
        let n = agentfs::apply::archive::write_tar(&items, &session, &mut sink, &bar)?;
        sink.flush()?;
        drop(bar);
        eprintln!("exported {n} entr(ies) of session {}", r.id);
        return Ok(ExitCode::SUCCESS);
    }
    let warnings = agentfs::apply::patch::write_patch(
        &items,
        &BaseTree::new(base.clone()),
        &session,
        &mut sink,
        &bar,
    )?;
    sink.flush()?;
    drop(bar);
    for w in &warnings {
        eprintln!("agentfs: warning: not in the patch: {w}");
    }
    eprintln!(
        "exported a patch of {} change(s) of session {} against {}",
        items.len(),
        r.id,
        base.display()
    );
    Ok(ExitCode::SUCCESS)
}
