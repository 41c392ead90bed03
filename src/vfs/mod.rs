//! The filesystem core: POSIX semantics over a session database, with no kernel types.
//!
//! Every operation runs in one SQLite transaction (`BEGIN IMMEDIATE` for writes) and records
//! one row in the change journal (`fs_change`). Adapters (FUSE, CLI) translate to and from
//! these calls; `VfsError::errno` gives the errno for a failure.

mod attr;
pub(crate) mod data;
mod delta;
pub mod error;
mod handles;
mod io;
pub mod journal;
mod maintenance;
pub mod names;
mod namespace;
pub mod paths;
pub mod pool;
pub(crate) mod rows;
pub mod types;
mod xattr;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use crate::store::{OpenMode, Store};
pub use delta::base_bytes_of;
pub use error::{VfsError, VfsResult};
use handles::OpenFiles;
pub use journal::{JournalOp, RunnerScope, ToolCallScope};
pub use types::*;

/// A session's filesystem. Safe to share between threads: each operation takes its own
/// database connection from a pool.
pub struct Vfs {
    pool: pool::Pool,
    chunk_size: u64,
    /// Whether a maintenance thread reclaims space (else deletes do a bounded part inline).
    background_maintenance: AtomicBool,
    /// When this instance was opened, and its last change (ms after that).
    started: std::time::Instant,
    last_change_ms: std::sync::atomic::AtomicU64,
    files: Mutex<OpenFiles>,
    /// The session's base directory, where partially copied-up files keep their other bytes.
    base_root: Option<std::path::PathBuf>,
}

impl Vfs {
    /// Opens the session database at `path` and cleans leftovers of crashed processes.
    pub fn open_session(path: &Path, mode: OpenMode) -> VfsResult<Vfs> {
        Vfs::from_store(Store::open(path, mode)?)
    }

    pub fn from_store(store: Store) -> VfsResult<Vfs> {
        let base_root = store.base_path()?;
        let vfs = Vfs {
            base_root,
            chunk_size: store.chunk_size,
            pool: pool::Pool::new(store),
            background_maintenance: AtomicBool::new(false),
            started: std::time::Instant::now(),
            last_change_ms: std::sync::atomic::AtomicU64::new(0),
            files: Mutex::new(OpenFiles {
                next_fh: 1,
                ..OpenFiles::default()
            }),
        };
        vfs.clean_orphans()?;
        Ok(vfs)
    }

    /// A database connection for direct SQL (tools, tests); returned to the pool on drop.
    pub fn store(&self) -> VfsResult<pool::Pooled<'_>> {
        Ok(self.pool.get()?)
    }

    /// The connection that makes changes. One writer per process keeps its page cache warm
    /// (in WAL mode a connection drops its cache whenever another one has committed) and
    /// makes threads queue on a mutex instead of SQLite's sleeping busy handler. Taking it
    /// counts as activity, so background maintenance (whose checkpoints fsync) waits for a
    /// pause rather than stall changes.
    fn writer(&self) -> VfsResult<pool::Pooled<'_>> {
        self.touch_activity();
        Ok(self.pool.writer()?)
    }

    /// Runs `f`, whose operations on this thread then commit together or not at all: for a
    /// change made of several operations (the overlay's copy-ups, rename and whiteouts), so
    /// that a crash or another process never sees half of it.
    pub fn atomically<T, E: From<VfsError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.touch_activity();
        let scope = self.pool.scope().map_err(VfsError::from)?;
        let value = f()?;
        scope.commit().map_err(VfsError::from)?;
        Ok(value)
    }
}
