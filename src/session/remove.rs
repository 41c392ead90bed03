//! Deleting sessions: which ones may go (`agentfs rm`, `agentfs gc`) and removing their files.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{SessionError, SessionRef};
use crate::store::OpenMode;
use crate::vfs::{Vfs, VfsError};

/// Why a session was not (or not completely) removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// No such session.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A mount serves it: deleting the database under it would lose what it writes.
    #[error(
        "session {id} is mounted at {}; unmount it first with `agentfs umount {}`",
        point.display(),
        point.display()
    )]
    Mounted { id: String, point: PathBuf },
    /// The file does not open as a session database, so it is not ours to delete.
    #[error("refusing to remove {}", path.display())]
    NotASession { path: PathBuf, source: VfsError },
    /// Its database could not be asked for its runners.
    #[error(transparent)]
    Open(#[from] VfsError),
    /// The same, from SQLite.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// Commands still run in it.
    #[error(
        "session {id} has {count} live runner(s) (pid {pid}: {command}); let them finish first (see `agentfs ps`)"
    )]
    LiveRunners {
        id: String,
        count: usize,
        /// The first runner's pid and command line.
        pid: u32,
        command: String,
    },
    /// A file or the run directory could not be deleted.
    #[error("cannot remove {}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Deletes the existing session `r`, unless it is mounted, is not a session database, or
/// has live runners.
pub fn remove(r: &SessionRef) -> Result<(), RemoveError> {
    r.require_exists()?;
    if let Some(point) = crate::mount::mounts_of(&r.path).first() {
        return Err(RemoveError::Mounted {
            id: r.id.clone(),
            point: point.clone(),
        });
    }
    // Refuse to delete something that is not a session.
    let vfs = Vfs::open_session(&r.path, OpenMode::Existing).map_err(|source| {
        RemoveError::NotASession {
            path: r.path.clone(),
            source,
        }
    })?;
    let live = crate::runners::live(&vfs.store()?.conn)?;
    if let Some(runner) = live.first() {
        return Err(RemoveError::LiveRunners {
            id: r.id.clone(),
            count: live.len(),
            pid: runner.pid,
            command: runner.command_line(),
        });
    }
    drop(vfs);
    remove_files(r)
}

/// Deletes a session: its run directory (private /tmp, mount point), database and WAL
/// files. Checks nothing: see [`remove`] and [`gc_verdict`] for when that is safe.
pub fn remove_files(r: &SessionRef) -> Result<(), RemoveError> {
    let run_dir = super::run_dir(&r.path);
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).map_err(|source| RemoveError::Io {
            path: run_dir.clone(),
            source,
        })?;
    }
    for f in r.files() {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(RemoveError::Io { path: f, source }),
        }
    }
    Ok(())
}

/// What `agentfs gc` does with a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcVerdict {
    /// Changed at or after the cutoff: kept, silently.
    Recent,
    /// Older, but mounted here: kept.
    Mounted(PathBuf),
    /// Older, but with this many live runners (a runner can sit long without changing
    /// anything, like an agent waiting for input): kept.
    LiveRunners(usize),
    /// Older and unused: may be removed.
    Stale,
}

/// Decides whether session `r` is old enough (last changed before `cutoff`) and unused, so
/// that garbage collection may remove it.
pub fn gc_verdict(r: &SessionRef, cutoff: SystemTime) -> GcVerdict {
    if last_modified(r).is_none_or(|t| t >= cutoff) {
        return GcVerdict::Recent;
    }
    if let Some(point) = crate::mount::mounts_of(&r.path).first() {
        return GcVerdict::Mounted(point.clone());
    }
    let live = crate::store::Store::open(&r.path, OpenMode::Existing)
        .ok()
        .and_then(|s| crate::runners::live(&s.conn).ok())
        .map_or(0, |l| l.len());
    if live > 0 {
        return GcVerdict::LiveRunners(live);
    }
    GcVerdict::Stale
}

/// The newest of the database and WAL modification times: the session's last change.
fn last_modified(r: &SessionRef) -> Option<SystemTime> {
    r.files()
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_old_unused_session_is_stale_and_its_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let r = SessionRef::parse(dir.path().join("s.db").to_str().unwrap()).unwrap();
        super::super::create(&r, None).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            gc_verdict(&r, now - Duration::from_secs(3600)),
            GcVerdict::Recent
        );
        assert_eq!(
            gc_verdict(&r, now + Duration::from_secs(3600)),
            GcVerdict::Stale
        );

        let run_dir = super::super::run_dir(&r.path);
        std::fs::create_dir_all(run_dir.join("tmp")).unwrap();
        remove(&r).unwrap();
        assert!(!run_dir.exists());
        assert!(r.files().iter().all(|f| !f.exists()));
        assert!(matches!(remove(&r), Err(RemoveError::Session(_))));
    }

    #[test]
    fn a_file_that_is_not_a_session_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let r = SessionRef::parse(dir.path().join("junk.db").to_str().unwrap()).unwrap();
        std::fs::write(&r.path, b"not sqlite").unwrap();
        let err = remove(&r).unwrap_err();
        assert!(matches!(err, RemoveError::NotASession { .. }), "{err}");
        assert!(r.path.exists());
    }
}
