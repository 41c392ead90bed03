//! `agentfs fs`: look at or change files inside a session without mounting it.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;

use agentfs::vfs::paths::{self, Listing, PathError};
use agentfs::vfs::{Attr, Creds, FileKind, Vfs};

use super::open::open_existing;

/// Arguments of `agentfs fs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    #[command(subcommand)]
    op: Op,
}

/// The file operations of `agentfs fs`.
#[derive(Subcommand, Debug)]
enum Op {
    /// List a directory (one entry per line, '/' after directories, '@' after symlinks).
    Ls {
        #[arg(default_value = "/")]
        path: OsString,
    },
    /// Print a file's contents.
    Cat { path: OsString },
    /// Write a file from stdin (or --data), creating it if needed and replacing its contents.
    Write {
        path: OsString,
        /// Contents to write instead of reading stdin.
        #[arg(long)]
        data: Option<OsString>,
    },
    /// Remove a file, symlink or empty directory (-r: a whole tree).
    Rm {
        path: OsString,
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Create a directory.
    Mkdir {
        path: OsString,
        /// Create missing parents too, and accept an existing directory.
        #[arg(short, long)]
        parents: bool,
    },
    /// Show an entry's attributes.
    Stat { path: OsString },
    /// Print the tree below a directory.
    Tree {
        #[arg(default_value = "/")]
        path: OsString,
    },
}

/// Runs one file operation on the session; what it creates belongs to the caller, with
/// the caller's umask.
pub fn run(args: Args) -> Result<ExitCode> {
    let (_r, vfs) = open_existing(&args.session)?;
    let mut out = io::stdout().lock();
    match args.op {
        Op::Ls { path } => {
            let p = path.as_bytes();
            match paths::list(&vfs, p)? {
                Listing::NotDir => {
                    out.write_all(p)?;
                    out.write_all(b"\n")?;
                    return Ok(ExitCode::SUCCESS);
                }
                Listing::Entries(entries) => {
                    for e in entries {
                        out.write_all(&e.name)?;
                        out.write_all(kind_suffix(e.kind).as_bytes())?;
                        out.write_all(b"\n")?;
                    }
                }
            }
        }
        Op::Cat { path } => {
            for part in paths::read_file(&vfs, path.as_bytes())? {
                out.write_all(&part?)?;
            }
        }
        Op::Write { path, data } => {
            let contents = match data {
                Some(d) => d.into_vec(),
                None => {
                    let mut buf = Vec::new();
                    io::stdin()
                        .read_to_end(&mut buf)
                        .context("cannot read stdin")?;
                    buf
                }
            };
            paths::write_file(
                &vfs,
                path.as_bytes(),
                &contents,
                umask_perm(0o666),
                current_creds(),
            )?;
        }
        Op::Rm { path, recursive } => paths::remove(&vfs, path.as_bytes(), recursive)?,
        Op::Mkdir { path, parents } => {
            let (perm, creds) = (umask_perm(0o777), current_creds());
            if parents {
                paths::mkdir_all(&vfs, path.as_bytes(), perm, creds)?;
            } else {
                paths::mkdir(&vfs, path.as_bytes(), perm, creds)?;
            }
        }
        Op::Stat { path } => {
            let p = path.as_bytes();
            let a = paths::stat(&vfs, p)?;
            write_stat(&mut out, &vfs, p, &a)?;
        }
        Op::Tree { path } => {
            let p = path.as_bytes();
            let ino = vfs.resolve(p, true).map_err(|e| PathError::at(p, e))?;
            out.write_all(p)?;
            out.write_all(b"\n")?;
            print_tree(&mut out, &vfs, ino)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The caller's ids, for what the operation creates.
fn current_creds() -> Creds {
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        Creds {
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    }
}

/// `perm` less the process's umask, as a file the caller created would get.
fn umask_perm(perm: u32) -> u32 {
    // SAFETY: umask only swaps the process mask; we restore it at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    perm & !(mask as u32)
}

/// The mark `ls -F` puts after a name of this kind.
fn kind_suffix(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Dir => "/",
        FileKind::Symlink => "@",
        FileKind::Fifo => "|",
        FileKind::Socket => "=",
        _ => "",
    }
}

fn write_stat(out: &mut impl Write, vfs: &Vfs, path: &[u8], a: &Attr) -> Result<()> {
    let kind = match a.kind {
        FileKind::File => "regular file",
        FileKind::Dir => "directory",
        FileKind::Symlink => "symbolic link",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDevice => "character device",
        FileKind::BlockDevice => "block device",
    };
    out.write_all(b"  path: ")?;
    out.write_all(path)?;
    out.write_all(b"\n")?;
    if a.kind == FileKind::Symlink {
        let target = paths::readlink(vfs, path, a.ino)?;
        out.write_all(b"target: ")?;
        out.write_all(&target)?;
        out.write_all(b"\n")?;
    }
    writeln!(out, "  type: {kind}")?;
    writeln!(out, " inode: {}", a.ino.0)?;
    writeln!(out, "  size: {}", a.size)?;
    writeln!(out, "  mode: {:04o}", a.perm)?;
    writeln!(out, " links: {}", a.nlink)?;
    writeln!(out, "   uid: {}  gid: {}", a.uid, a.gid)?;
    let t = |t: agentfs::vfs::Timestamp| format!("{}.{:09}", t.sec, t.nsec);
    writeln!(out, " atime: {}", t(a.atime))?;
    writeln!(out, " mtime: {}", t(a.mtime))?;
    writeln!(out, " ctime: {}", t(a.ctime))?;
    Ok(())
}

/// Draws the tree below `dir` like tree(1), as the walk goes.
fn print_tree(out: &mut impl Write, vfs: &Vfs, dir: agentfs::vfs::Ino) -> Result<()> {
    for item in paths::walk(vfs, dir) {
        let item = item.map_err(|e| anyhow!("{e}"))?;
        let (own, ancestors) = item.last.split_last().expect("an entry has a depth");
        for &ancestor_last in ancestors {
            out.write_all(if ancestor_last {
                "    ".as_bytes()
            } else {
                "│   ".as_bytes()
            })?;
        }
        out.write_all(if *own {
            "└── ".as_bytes()
        } else {
            "├── ".as_bytes()
        })?;
        let e = &item.entry;
        out.write_all(&e.name)?;
        out.write_all(kind_suffix(e.kind).as_bytes())?;
        if e.kind == FileKind::Symlink {
            let target = vfs.readlink(e.ino).map_err(|e| anyhow!("{e}"))?;
            out.write_all(b" -> ")?;
            out.write_all(&target)?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}
