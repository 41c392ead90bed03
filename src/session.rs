//! Where sessions live: `$AGENTFS_HOME/<id>.db`, id validation, and naming a session by id or path.

pub mod fork;
pub mod info;
pub mod remove;

use std::path::{Path, PathBuf};

/// Errors naming or finding a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "invalid session id {0:?}: use 1 to 64 letters, digits, '.', '_' or '-', \
         not starting with '.' or '-' (or pass a path ending in .db)"
    )]
    InvalidId(String),
    #[error("no session {id:?} (looked for {path}){hint}")]
    Missing {
        id: String,
        path: PathBuf,
        /// "; did you mean ...?" or how to create it.
        hint: String,
    },
    #[error(
        "no session database at {0}; pass an existing .db file or a session id \
         (list them with `agentfs sessions`)"
    )]
    MissingPath(PathBuf),
    #[error(
        "session {id:?} already exists at {path}; use it, or remove it first with `agentfs rm {id}`"
    )]
    Exists { id: String, path: PathBuf },
    #[error("{0:?} is a path but does not end in .db; give a session id, or a path like {0}.db")]
    NotDbPath(String),
    #[error("cannot find the agentfs home: set AGENTFS_HOME or HOME")]
    NoHome,
    /// The base directory given for a new session cannot be resolved.
    #[error("base directory {} is not usable", dir.display())]
    BaseUnusable {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// The base given for a new session is not a directory.
    #[error("base {} is not a directory; pass a directory with --base", .0.display())]
    BaseNotDir(PathBuf),
    /// The directory to hold a new session database cannot be made.
    #[error("cannot create the session directory {}", dir.display())]
    SessionDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// Building the new session database failed (nothing is left behind).
    #[error("cannot create session {}", path.display())]
    Create { path: PathBuf, source: CreateError },
}

/// The step of creating a session database that failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The new database does not open as a session.
    #[error(transparent)]
    Open(#[from] crate::vfs::VfsError),
    /// Writing the new session's settings failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// The base directory's owner and mode cannot be read.
    #[error("cannot read the base directory {}", base.display())]
    ReadBase {
        base: PathBuf,
        source: std::io::Error,
    },
    /// The finished database cannot be linked into place.
    #[error("cannot create {}", path.display())]
    Link {
        path: PathBuf,
        source: std::io::Error,
    },
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

    /// Like [`SessionRef::parse`], for a session about to be created: a path must end in
    /// `.db`, so that a typo cannot create a database under an unexpected name.
    pub fn parse_new(arg: &str) -> Result<SessionRef, SessionError> {
        let r = SessionRef::parse(arg)?;
        if r.by_path && r.path.extension().is_none_or(|e| e != "db") {
            return Err(SessionError::NotDbPath(arg.to_string()));
        }
        Ok(r)
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
                hint: missing_hint(&self.id, self.path.parent()),
            }
        })
    }

    /// The session database and its WAL and shared-memory files.
    pub fn files(&self) -> Vec<PathBuf> {
        companion_files(&self.path)
    }
}

/// The ids of the sessions in `dir`, sorted.
pub fn list_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    name.strip_suffix(".db").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// What to tell a user whose session id does not exist: the closest existing ids, else
/// how to create it.
fn missing_hint(id: &str, home: Option<&Path>) -> String {
    let ids = home.map(list_ids).unwrap_or_default();
    let mut close: Vec<(f64, &String)> = ids
        .iter()
        .map(|known| (strsim::jaro_winkler(id, known), known))
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    match close.as_slice() {
        [] => format!("; create it with `agentfs init {id}`"),
        found => {
            let names: Vec<String> = found
                .iter()
                .take(3)
                .map(|(_, n)| format!("{n:?}"))
                .collect();
            format!("; did you mean {}?", names.join(" or "))
        }
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

/// `dir` made absolute and checked to be a directory, to serve as a session's base.
pub fn usable_base(dir: &Path) -> Result<PathBuf, SessionError> {
    let canon = std::fs::canonicalize(dir).map_err(|source| SessionError::BaseUnusable {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !canon.is_dir() {
        return Err(SessionError::BaseNotDir(dir.to_path_buf()));
    }
    Ok(canon)
}

/// Creates the session database of `r`, overlaying `base` if given. Fails if it exists
/// (also when another process creates it at the same moment); leaves nothing behind on error.
pub fn create(r: &SessionRef, base: Option<&Path>) -> Result<(), SessionError> {
    if let Some(dir) = r.path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SessionError::SessionDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let exists = || SessionError::Exists {
        id: r.id.clone(),
        path: r.path.clone(),
    };
    if r.path.exists() {
        return Err(exists());
    }
    // Built complete under a temporary name, then linked into place: the link fails if the
    // name is taken, so two creations of one id cannot both succeed, and nobody ever opens
    // a half-made session (a runner joining while another creates it).
    let mut tmp = r.path.clone().into_os_string();
    tmp.push(format!(".creating.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let cleanup = |p: &Path| {
        for f in companion_files(p) {
            let _ = std::fs::remove_file(f);
        }
    };
    cleanup(&tmp);
    let built = (|| -> Result<(), CreateError> {
        let vfs = crate::vfs::Vfs::open_session(&tmp, crate::store::OpenMode::Create)?;
        let store = vfs.store()?;
        if let Some(base) = base {
            store.conn.execute(
                "INSERT OR REPLACE INTO fs_overlay_config (key, value) VALUES ('base_path', ?1)",
                [base.to_string_lossy()],
            )?;
        }
        // The root directory belongs to the base directory's owner, with its mode (or, with
        // no base, to its creator): a session a user makes is writable to that user.
        let (uid, gid, mode) = match base {
            Some(base) => {
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::metadata(base).map_err(|source| CreateError::ReadBase {
                    base: base.to_path_buf(),
                    source,
                })?;
                (m.uid(), m.gid(), m.mode())
            }
            // SAFETY: geteuid/getegid cannot fail.
            None => unsafe { (libc::geteuid(), libc::getegid(), libc::S_IFDIR | 0o755) },
        };
        store.conn.execute(
            "UPDATE fs_inode SET uid = ?1, gid = ?2, mode = ?3 WHERE ino = 1",
            rusqlite::params![uid, gid, mode],
        )?;
        // Everything into the main file, which is the one linked.
        store
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    })();
    let create_failed = |source| SessionError::Create {
        path: r.path.clone(),
        source,
    };
    let linked =
        built
            .map_err(create_failed)
            .and_then(|()| match std::fs::hard_link(&tmp, &r.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
                Err(source) => Err(create_failed(CreateError::Link {
                    path: r.path.clone(),
                    source,
                })),
            });
    cleanup(&tmp);
    linked
}

/// Why a session cannot be served: the host directory it overlays is gone (or the database
/// cannot say which it is).
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error(
        "the base directory {} of session {id} no longer exists; restore it (or mount it \
         back) and try again",
        base.display()
    )]
    Gone { base: PathBuf, id: String },
    /// No connection to the session database.
    #[error(transparent)]
    Open(#[from] crate::vfs::VfsError),
    /// Reading the recorded base failed.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Fails if session `r` (open as `vfs`) overlays a host directory that no longer exists:
/// mounting it would show an empty tree where the user expects their files.
pub fn require_base(vfs: &crate::vfs::Vfs, r: &SessionRef) -> Result<(), BaseError> {
    if let Some(base) = vfs.store()?.base_path()?
        && !base.is_dir()
    {
        return Err(BaseError::Gone {
            base,
            id: r.id.clone(),
        });
    }
    Ok(())
}

/// The directory of a session's runs, next to its database: the shared mount point, the
/// lock runners take to join, and the session's private /tmp.
pub fn run_dir(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".run");
    PathBuf::from(p)
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
    fn missing_ids_suggest_close_ones() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["refactor-auth", "fix-login", "demo"] {
            std::fs::write(dir.path().join(format!("{id}.db")), b"").unwrap();
        }
        let hint = missing_hint("refactor-aut", Some(dir.path()));
        assert!(hint.contains("did you mean \"refactor-auth\""), "{hint}");
        let hint = missing_hint("zzz", Some(dir.path()));
        assert!(hint.contains("agentfs init zzz"), "{hint}");
    }

    #[test]
    fn db_paths_are_taken_as_paths() {
        let r = SessionRef::parse("some/dir/x.db").unwrap();
        assert!(r.by_path);
        assert_eq!(r.id, "x");
        assert_eq!(r.path, PathBuf::from("some/dir/x.db"));
    }
}
