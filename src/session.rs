//! Where sessions live: `$AGENTFS_HOME/<id>.db`, id validation, and naming a session by id or path.

use std::path::{Path, PathBuf};

/// Errors naming or finding a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "invalid session id {0:?}: use 1 to 64 letters, digits, '.', '_' or '-', \
         not starting with '.' or '-' (or pass a path ending in .db)"
    )]
    InvalidId(String),
    #[error("no session {id:?} (looked for {path}); create it with `agentfs init {id}`")]
    Missing { id: String, path: PathBuf },
    #[error(
        "no session database at {0}; pass an existing .db file or a session id \
         (list them with `agentfs sessions`)"
    )]
    MissingPath(PathBuf),
    #[error(
        "session {id:?} already exists at {path}; use it, or remove it first with `agentfs rm {id}`"
    )]
    Exists { id: String, path: PathBuf },
    #[error("cannot find the agentfs home: set AGENTFS_HOME or HOME")]
    NoHome,
}

/// The directory holding session databases.
pub fn home() -> Result<PathBuf, SessionError> {
    if let Some(h) = std::env::var_os("AGENTFS_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".agentfs"))
        .ok_or(SessionError::NoHome)
}

/// Checks a session id: safe as a file name, no path tricks.
pub fn validate_id(id: &str) -> Result<(), SessionError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SessionError::InvalidId(id.to_string()))
    }
}

/// A session named on the command line: by id (in the home) or by a `.db` path.
#[derive(Debug, Clone)]
pub struct SessionRef {
    /// The id, or the file stem for a path.
    pub id: String,
    pub path: PathBuf,
    pub by_path: bool,
}

impl SessionRef {
    /// Parses `arg`: a path if it contains `/` or ends in `.db`, else an id.
    pub fn parse(arg: &str) -> Result<SessionRef, SessionError> {
        if arg.contains('/') || arg.ends_with(".db") {
            let path = PathBuf::from(arg);
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| arg.to_string());
            return Ok(SessionRef {
                id,
                path,
                by_path: true,
            });
        }
        validate_id(arg)?;
        Ok(SessionRef {
            id: arg.to_string(),
            path: home()?.join(format!("{arg}.db")),
            by_path: false,
        })
    }

    /// Fails with a hint to `agentfs init` if the database file does not exist.
    pub fn require_exists(&self) -> Result<(), SessionError> {
        if self.path.exists() {
            return Ok(());
        }
        Err(if self.by_path {
            SessionError::MissingPath(self.path.clone())
        } else {
            SessionError::Missing {
                id: self.id.clone(),
                path: self.path.clone(),
            }
        })
    }

    /// The session database and its WAL and shared-memory files.
    pub fn files(&self) -> Vec<PathBuf> {
        companion_files(&self.path)
    }
}

/// `x.db`, `x.db-wal`, `x.db-shm`.
pub fn companion_files(db: &Path) -> Vec<PathBuf> {
    let mut out = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        out.push(PathBuf::from(p));
    }
    out
}

/// Bytes on disk of a session: the database plus its WAL and shared-memory files.
pub fn size_on_disk(db: &Path) -> u64 {
    companion_files(db)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A fresh id for `agentfs init` without one.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_path_tricks_are_rejected() {
        for bad in [
            "",
            "..",
            "../x",
            ".hidden",
            "-rf",
            "a b",
            "a\\b",
            &"x".repeat(65),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["demo", "my-session", "s_1.2", "A9"] {
            assert!(validate_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn db_paths_are_taken_as_paths() {
        let r = SessionRef::parse("some/dir/x.db").unwrap();
        assert!(r.by_path);
        assert_eq!(r.id, "x");
        assert_eq!(r.path, PathBuf::from("some/dir/x.db"));
    }
}
