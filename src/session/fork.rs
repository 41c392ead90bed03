//! Forking a session: a consistent copy of its database under a new session name.

use std::path::PathBuf;

use super::{SessionError, SessionRef};
use crate::store::OpenMode;
use crate::vfs::{Vfs, VfsError};

/// Why a fork failed; a failed fork leaves no new database behind.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The new session exists already.
    #[error(transparent)]
    Exists(SessionError),
    /// The directory for the new database cannot be made.
    #[error("cannot create the session directory {}", dir.display())]
    SessionDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// No connection to the source session.
    #[error(transparent)]
    Source(VfsError),
    /// Copying, or preparing the copy, failed (the copy is removed again).
    #[error("cannot fork {from} into {}", to.display())]
    Copy {
        from: String,
        to: PathBuf,
        source: CopyError,
    },
}

/// The step of a fork's copy that failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Copying or updating the copy failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The copy does not open as a session.
    #[error(transparent)]
    Open(#[from] VfsError),
}

/// Copies session `from` (open as `vfs`) into the new session `to`, which must not exist.
/// The copy is one snapshot, so it is consistent even while the source is mounted and being
/// written; it gets its own creation time, and the files the source's processes still hold
/// open after deleting them are not carried over as held.
pub fn fork(from: &SessionRef, vfs: &Vfs, to: &SessionRef) -> Result<(), ForkError> {
    if to.path.exists() {
        return Err(ForkError::Exists(SessionError::Exists {
            id: to.id.clone(),
            path: to.path.clone(),
        }));
    }
    if let Some(dir) = to.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ForkError::SessionDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    // VACUUM INTO reads one snapshot, so the copy is consistent even while writers go on.
    let copied = vfs
        .store()
        .map_err(ForkError::Source)?
        .conn
        .execute("VACUUM INTO ?1", [to.path.to_string_lossy()]);
    let result = copied.map_err(CopyError::from).and_then(|_| {
        let conn = rusqlite::Connection::open(&to.path)?;
        // Files the parent's processes hold open after unlinking them are not the fork's:
        // mark them as left by a dead process so that opening the fork frees them.
        conn.execute("UPDATE fs_orphan SET pid = 0", [])?;
        conn.execute(
            "UPDATE fs_config SET value = CAST(unixepoch() AS TEXT) WHERE key = 'agentfs_created_at'",
            [],
        )?;
        drop(conn);
        Vfs::open_session(&to.path, OpenMode::Existing)?;
        Ok(())
    });
    if let Err(source) = result {
        for f in to.files() {
            let _ = std::fs::remove_file(f);
        }
        return Err(ForkError::Copy {
            from: from.id.clone(),
            to: to.path.clone(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_copies_the_files_and_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| SessionRef::parse(dir.path().join(name).to_str().unwrap()).unwrap();
        let (from, to) = (at("a.db"), at("sub/b.db"));
        super::super::create(&from, None).unwrap();
        let vfs = Vfs::open_session(&from.path, OpenMode::Existing).unwrap();
        let me = crate::vfs::Creds { uid: 0, gid: 0 };
        crate::vfs::paths::write_file(&vfs, b"/f", b"kept", 0o644, me).unwrap();

        fork(&from, &vfs, &to).unwrap();
        let copy = Vfs::open_session(&to.path, OpenMode::Existing).unwrap();
        let ino = copy.resolve(b"/f", true).unwrap();
        assert_eq!(copy.read_ino(ino, 0, 100).unwrap(), b"kept");

        let err = fork(&from, &vfs, &to).unwrap_err();
        assert!(matches!(err, ForkError::Exists(_)), "{err}");
    }
}
