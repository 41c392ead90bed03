//! What `agentfs sessions` reports about each session: base, size, dates, runners, mounts.

use std::io;
use std::path::{Path, PathBuf};

use crate::store::OpenMode;
use crate::vfs::{Vfs, VfsError};

/// Why the session directory could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// No home directory to look in.
    #[error(transparent)]
    Home(#[from] super::SessionError),
    /// The home exists but cannot be read.
    #[error("cannot list {}", path.display())]
    ReadDir { path: PathBuf, source: io::Error },
    /// Reading one of its entries failed.
    #[error(transparent)]
    Entry(io::Error),
}

/// Why one session's details could not be read (the session is then shown as unreadable).
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// Not a session database (or not one this version opens).
    #[error(transparent)]
    Open(#[from] VfsError),
    /// A query on it failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// One session database found in the home directory.
#[derive(Debug)]
pub struct SessionInfo {
    /// The file stem of the database.
    pub id: String,
    /// The database file.
    pub path: PathBuf,
    /// Bytes on disk, with the WAL and shared-memory files.
    pub size: u64,
    /// What the database says, or why it could not be read.
    pub details: Result<SessionDetails, InfoError>,
}

/// What a readable session database says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDetails {
    /// The directory it overlays, as recorded.
    pub base: Option<String>,
    /// Whether that directory still exists on the host.
    pub base_exists: bool,
    /// Unix seconds of its creation, if recorded.
    pub created_at: Option<i64>,
    /// Unix seconds of its last journaled change, if any.
    pub last_change: Option<i64>,
    /// How many `agentfs run` / `exec` processes use it now.
    pub live_runners: usize,
    /// Where it is mounted now.
    pub mounted_at: Vec<PathBuf>,
}

/// Every `*.db` file in `home`, in directory order (none if `home` does not exist yet).
pub fn list(home: &Path) -> Result<Vec<SessionInfo>, ListError> {
    let entries = match std::fs::read_dir(home) {
        Ok(e) => e.collect::<Result<Vec<_>, _>>().map_err(ListError::Entry)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(ListError::ReadDir {
                path: home.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "db") {
            continue;
        }
        let id = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let size = super::size_on_disk(&path);
        let details = details(&path);
        out.push(SessionInfo {
            id,
            path,
            size,
            details,
        });
    }
    Ok(out)
}

/// Reads what the session database at `path` says about itself, and where it is mounted.
pub fn details(path: &Path) -> Result<SessionDetails, InfoError> {
    let mut details = read_database(path)?;
    // Looked up with the database closed again.
    details.mounted_at = crate::mount::mounts_of(path);
    Ok(details)
}

/// What the database itself records (all but the mounts).
fn read_database(path: &Path) -> Result<SessionDetails, InfoError> {
    let vfs = Vfs::open_session(path, OpenMode::Existing)?;
    let store = vfs.store()?;
    let conn = &store.conn;
    let one = |sql: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
    };
    let base: Option<String> = conn
        .query_row(
            "SELECT value FROM fs_overlay_config WHERE key = 'base_path'",
            [],
            |r| r.get(0),
        )
        .ok();
    let created_at =
        one("SELECT CAST(value AS INTEGER) FROM fs_config WHERE key = 'agentfs_created_at'")
            .ok()
            .flatten();
    let last_change = one("SELECT max(time_ns) / 1000000000 FROM fs_change")?;
    let base_exists = base.as_deref().is_some_and(|b| Path::new(b).is_dir());
    let live_runners = crate::runners::live(conn)?.len();
    Ok(SessionDetails {
        base,
        base_exists,
        created_at,
        last_change,
        live_runners,
        mounted_at: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_database_and_says_which_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(&dir.path().join("absent")).unwrap().is_empty());
        let r =
            super::super::SessionRef::parse(dir.path().join("ok.db").to_str().unwrap()).unwrap();
        let base = tempfile::tempdir().unwrap();
        super::super::create(&r, Some(base.path())).unwrap();
        std::fs::write(dir.path().join("junk.db"), b"not sqlite").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();

        let mut found = list(dir.path()).unwrap();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = found.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["junk", "ok"]);
        assert!(found[0].details.is_err());
        let ok = found[1].details.as_ref().unwrap();
        assert_eq!(ok.base.as_deref(), base.path().to_str());
        assert!(ok.base_exists);
        assert!(ok.created_at.is_some());
        assert_eq!((ok.last_change, ok.live_runners), (None, 0));
        assert!(ok.mounted_at.is_empty());
    }
}
