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
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
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
