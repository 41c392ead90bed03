//! `agentfs man`: the manual pages (roff) of agentfs and its commands, made by clap_mangen.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_mangen::Man;

/// Arguments of `agentfs man`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  agentfs man | man -l -
  agentfs man diff | man -l -
  agentfs man fs write | man -l -
  agentfs man --dir ~/.local/share/man/man1     (then: man agentfs, man agentfs-diff)")]
pub struct Args {
    /// The command whose page to print (`fs write` for a command of a command); agentfs's
    /// own page if left out.
    #[arg(conflicts_with = "dir")]
    command: Vec<String>,
    /// Write agentfs.1 and agentfs-<command>.1 for every command into DIR (made if missing)
    /// instead of printing a page; prints the paths written.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    dir: Option<PathBuf>,
}

/// Prints one page, or writes them all.
pub fn run(args: Args) -> Result<ExitCode> {
    let root = built();
    if let Some(dir) = args.dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut out = io::stdout().lock();
        write_all(&root, &dir, &mut out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = &root;
    for name in &args.command {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub,
            None => bail!(
                "no command {:?}; `{} --help` lists them",
                args.command.join(" "),
                cmd.get_bin_name().unwrap_or("agentfs")
            ),
        }
    }
    let mut page = Vec::new();
    man(cmd).render(&mut page)?;
    io::stdout().lock().write_all(&page)?;
    Ok(ExitCode::SUCCESS)
}

/// The whole command tree, built (so each command knows its full name, `agentfs-fs-write`),
/// without the `help` commands clap adds, which need no page.
fn built() -> clap::Command {
    fn no_help(cmd: clap::Command) -> clap::Command {
        cmd.disable_help_subcommand(true).mut_subcommands(no_help)
    }
    let mut root = no_help(super::Cli::command());
    root.build();
    root
}

/// The page of one command; every page names the package as its source (`agentfs 0.1.0`,
/// where clap_mangen would put the command's own name).
fn man(cmd: &clap::Command) -> Man {
    Man::new(cmd.clone()).source(format!("agentfs {}", env!("CARGO_PKG_VERSION")))
}

/// Writes the page of `cmd` and of each of its visible commands, depth first.
fn write_all(cmd: &clap::Command, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let path = man(cmd)
        .generate_to(dir)
        .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    writeln!(out, "{}", path.display())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_all(sub, dir, out)?;
    }
    Ok(())
}
