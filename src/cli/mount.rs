//! `agentfs mount` and `agentfs umount`: serve a session on a directory, and take it off.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use agentfs::mount::DaemonArgs;
use agentfs::session::{self, SessionRef};
use agentfs::store::OpenMode;
use agentfs::vfs::Vfs;

/// Arguments of `agentfs mount`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The mount serves until `agentfs umount DIR`, or until the daemon gets \
SIGINT/SIGTERM (which unmount cleanly). Its log is <session>.db.mount.log next to the database.
If the daemon was killed, `ls DIR` fails with \"Transport endpoint is not connected\"; \
`agentfs umount DIR` removes the dead mount."
)]
pub struct Args {
    /// Session id or path to a .db file.
    #[arg(add = super::completions::session())]
    session: String,
    /// Directory to mount on.
    dir: PathBuf,
    /// Stay attached: serve in this process until unmounted or interrupted.
    #[arg(long)]
    foreground: bool,
    /// How to serve: the options the background daemon is started with.
    #[command(flatten)]
    daemon: DaemonArgs,
}

/// Arguments of `agentfs umount`.
#[derive(clap::Args, Debug)]
pub struct UmountArgs {
    dir: PathBuf,
    /// Detach now even if files there are still in use.
    #[arg(long)]
    lazy: bool,
}

/// Mounts the session: in the background (starting a daemon that runs this command with
/// --foreground, and waiting until its mount is ready), or serving in this process.
pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        session: arg,
        dir,
        foreground,
        daemon,
    } = args;
    let r = SessionRef::parse(&arg)?;
    let cache_ttl = daemon.cache_ttl;
    if !(0.0..=3600.0).contains(&cache_ttl) {
        bail!("--cache-ttl {cache_ttl} is out of range; give seconds from 0 to 3600");
    }
    if !foreground {
        r.require_exists()?;
        // Check here too, so that a bad session fails in the foreground with a clear message.
        let vfs = Vfs::open_session(&r.path, OpenMode::Existing)?;
        session::require_base(&vfs, &r)?;
        drop(vfs);
        let mut log = r.path.clone().into_os_string();
        log.push(".mount.log");
        // The internal options are not passed on: the daemon gets --notify-ready from
        // spawn_daemon, and a runners lock only from `agentfs run`.
        let serving = DaemonArgs {
            notify_ready: false,
            runners_lock: None,
            ..daemon
        };
        let pid = agentfs::mount::spawn_daemon(&arg, &dir, &serving, Path::new(&log))?;
        eprintln!(
            "mounted session {} on {} (daemon pid {pid})",
            r.id,
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = |result: Result<(), String>| {
        if daemon.notify_ready {
            agentfs::mount::notify_parent(result);
        }
    };
    let vfs = match r
        .require_exists()
        .map_err(anyhow::Error::from)
        .and_then(|_| Vfs::open_session(&r.path, OpenMode::Existing).map_err(anyhow::Error::from))
    {
        Ok(v) => v,
        Err(e) => {
            report(Err(format!("{e:#}")));
            return Err(e);
        }
    };
    if let Err(e) = session::require_base(&vfs, &r) {
        let e = anyhow::Error::from(e);
        report(Err(format!("{e:#}")));
        return Err(e);
    }
    let config = daemon.mount_config(format!("agentfs:{}:{}", r.id, std::process::id()));
    agentfs::mount::serve(vfs, &dir, &config, report)?;
    Ok(ExitCode::SUCCESS)
}

/// Unmounts the directory.
pub fn umount(args: UmountArgs) -> Result<ExitCode> {
    agentfs::mount::unmount(&args.dir, args.lazy)?;
    Ok(ExitCode::SUCCESS)
}
