//! The filesystem core: POSIX semantics over a session database, with no kernel types.
//!
//! Every operation runs in one SQLite transaction (`BEGIN IMMEDIATE` for writes) and records
//! one row in the change journal (`fs_change`). Adapters (FUSE, CLI) translate to and from
//! these calls; `VfsError::errno` gives the errno for a failure.

pub(crate) mod data;
pub mod error;
pub mod journal;
pub mod names;
pub mod paths;
pub mod pool;
pub(crate) mod rows;
pub mod types;

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{OptionalExtension, params};

use crate::store::{OpenMode, Store};
pub use error::{VfsError, VfsResult};
pub use journal::JournalOp;
use rows::Change;
pub use types::*;

/// Quiet time after which background maintenance gives space back.
const MAINTENANCE_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How many symlinks path resolution follows before ELOOP (as Linux's MAXSYMLINKS).
const MAX_SYMLINKS: u32 = 40;

/// What `make_node` creates.
struct NewNode<'a> {
    kind: FileKind,
    perm: u32,
    rdev: u32,
    creds: Creds,
    symlink_target: Option<&'a [u8]>,
}

/// What an open handle refers to.
struct Handle {
    ino: Ino,
    /// Whether a `write` row for this handle is already in the journal: a handle's writes are
    /// journaled once, not once per request.
    journaled_write: bool,
}

/// Open handles of this process.
#[derive(Default)]
struct OpenFiles {
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Open handles per inode, so an unlinked file keeps its data until the last release.
    open_count: HashMap<Ino, u32>,
    /// Open inodes that may have lost their last link (their `fs_orphan` row is checked on
    /// the last release).
    orphaned: std::collections::HashSet<Ino>,
    /// Set by a kernel frontend that opens files without telling us (FUSE with no OPEN):
    /// every inode the kernel knows may be open, so a file that loses its last link waits in
    /// `fs_orphan` until the kernel forgets it.
    kernel_holds: bool,
    /// Orphans the kernel forgot while handles of ours were still open: freed at the last
    /// release.
    forgotten: std::collections::HashSet<Ino>,
    /// Orphans the kernel forgot, to be freed by the next round of maintenance.
    to_free: Vec<Ino>,
    /// When each inode last got a `write` journal row from writes made without a handle, so
    /// a burst of such writes is journaled once.
    unopened_writes: HashMap<Ino, std::time::Instant>,
}

/// Writes made without a handle within this long of the last journaled one are one change.
const UNOPENED_WRITE_BURST: std::time::Duration = std::time::Duration::from_secs(1);

thread_local! {
    /// The runner of the request this thread is serving (a frontend serves one request per
    /// thread at a time, and the runner differs from request to request).
    static REQUEST_RUNNER: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// While alive, changes made on this thread are recorded in the journal as made by a runner
/// (a row of `fs_runner`), whatever the instance-wide runner is.
pub struct RunnerScope {
    previous: Option<i64>,
}

impl RunnerScope {
    pub fn enter(runner: Option<i64>) -> RunnerScope {
        RunnerScope {
            previous: REQUEST_RUNNER.replace(runner),
        }
    }
}

impl Drop for RunnerScope {
    fn drop(&mut self) {
        REQUEST_RUNNER.set(self.previous);
    }
}

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
    pub fn atomically<T>(&self, f: impl FnOnce() -> VfsResult<T>) -> VfsResult<T> {
        self.touch_activity();
        let scope = self.pool.scope()?;
        let value = f()?;
        scope.commit()?;
        Ok(value)
    }

    fn files(&self) -> std::sync::MutexGuard<'_, OpenFiles> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this process has `ino` open; if so, marks it as becoming an orphan should it
    /// lose its last link in the current operation.
    fn is_open(&self, ino: Ino) -> bool {
        let mut files = self.files();
        let open = files.kernel_holds || files.open_count.contains_key(&ino);
        if open {
            files.orphaned.insert(ino);
        }
        open
    }

    /// The runner the current change is made for: the one of the request being served on
    /// this thread (see [`RunnerScope`]).
    fn runner(&self) -> Option<i64> {
        REQUEST_RUNNER.get()
    }

    /// Deletes inodes that lost their last name while open in a process that no longer runs.
    fn clean_orphans(&self) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let orphans: Vec<(i64, i64)> = {
            let mut stmt = tx.prepare("SELECT ino, pid FROM fs_orphan")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (ino, pid) in orphans {
            if !process_alive(pid) {
                rows::purge_inode(&tx, Ino(ino as u64))?;
            }
        }
        // Inodes with no links that nobody claims (a foreign writer's leftovers).
        let unclaimed: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT ino FROM fs_inode WHERE nlink = 0 AND ino <> 1 \
                 AND ino NOT IN (SELECT ino FROM fs_orphan) \
                 AND ino NOT IN (SELECT ino FROM fs_dentry)",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for ino in unclaimed {
            rows::purge_inode(&tx, Ino(ino as u64))?;
        }
        tx.commit()?;
        Ok(())
    }

    // ----- lookups ------------------------------------------------------------------------

    /// Finds `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        // One statement, so no explicit transaction: the hot path of every path walk.
        let store = self.store()?;
        match rows::child_attr(&store.conn, parent, name)? {
            Some(attr) => Ok(attr),
            None => {
                rows::dir_attr(&store.conn, parent)?;
                Err(VfsError::NotFound)
            }
        }
    }

    pub fn getattr(&self, ino: Ino) -> VfsResult<Attr> {
        rows::attr(&self.store()?.conn, ino)
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let store = self.store()?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT target FROM fs_symlink WHERE ino = ?1")?;
        let target = stmt
            .query_row([ino.0 as i64], |r| names::from_sql(r.get_ref(0)?))
            .optional()?;
        match target {
            Some(t) => Ok(t),
            None => {
                rows::attr(&store.conn, ino)?;
                Err(VfsError::NotSymlink)
            }
        }
    }

    /// Entries of directory `dir` after cursor `after` (0 = from the start), at most `limit`.
    pub fn readdir(&self, dir: Ino, after: u64, limit: usize) -> VfsResult<Vec<DirEntry>> {
        // One statement, no explicit transaction; only directories have entries, so the
        // directory itself is checked only when the batch comes back empty.
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(
            "SELECT d.id, d.name, d.ino, i.mode FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino \
             WHERE d.parent_ino = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
        )?;
        let entries = stmt
            .query_map(
                params![
                    dir.0 as i64,
                    after as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    let mode: i64 = r.get(3)?;
                    Ok(DirEntry {
                        offset: r.get::<_, i64>(0)? as u64,
                        name: names::from_sql(r.get_ref(1)?)?,
                        ino: Ino(r.get::<_, i64>(2)? as u64),
                        kind: FileKind::from_mode(mode as u32).unwrap_or(FileKind::File),
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            rows::dir_attr(&store.conn, dir)?;
        }
        Ok(entries)
    }

    /// Like [`Vfs::readdir`], with each entry's attributes (one query for the whole batch).
    pub fn readdir_plus(
        &self,
        dir: Ino,
        after: u64,
        limit: usize,
    ) -> VfsResult<Vec<(DirEntry, Attr)>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(&format!(
            "SELECT d.id, d.name, d.ino, {} FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino \
             WHERE d.parent_ino = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
            rows::ATTR_COLUMNS
        ))?;
        let entries = stmt
            .query_map(
                params![
                    dir.0 as i64,
                    after as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    let ino = Ino(r.get::<_, i64>(2)? as u64);
                    let attr = rows::attr_from_row(r, 3, ino)?;
                    let entry = DirEntry {
                        offset: r.get::<_, i64>(0)? as u64,
                        name: names::from_sql(r.get_ref(1)?)?,
                        ino,
                        kind: attr.kind,
                    };
                    Ok((entry, attr))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            rows::dir_attr(&store.conn, dir)?;
        }
        Ok(entries)
    }

    /// The newest journal sequence number (0 for an empty journal).
    pub fn last_change_seq(&self) -> VfsResult<i64> {
        Ok(self.store()?.conn.query_row(
            "SELECT coalesce(max(seq), 0) FROM fs_change",
            [],
            |r| r.get(0),
        )?)
    }

    /// Journal rows after `seq` written by other processes, oldest first, at most `limit`:
    /// what a mount must invalidate in the kernel's caches.
    pub fn foreign_changes_since(&self, seq: i64, limit: usize) -> VfsResult<Vec<JournalRow>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(
            "SELECT seq, ino, path, old_path FROM fs_change \
             WHERE seq > ?1 AND pid IS NOT ?2 ORDER BY seq LIMIT ?3",
        )?;
        let opt_name = |v: rusqlite::types::ValueRef<'_>| match v {
            rusqlite::types::ValueRef::Null => Ok(None),
            other => names::from_sql(other).map(Some),
        };
        let rows = stmt
            .query_map(
                params![
                    seq,
                    std::process::id() as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    Ok(JournalRow {
                        seq: r.get(0)?,
                        ino: r.get::<_, Option<i64>>(1)?.map(|i| Ino(i as u64)),
                        path: opt_name(r.get_ref(2)?)?,
                        old_path: opt_name(r.get_ref(3)?)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The directory that holds directory `dir` (the root for the root).
    pub fn parent_of(&self, dir: Ino) -> VfsResult<Ino> {
        rows::parent_of_dir(&self.store()?.conn, dir)
    }

    /// Resolves an absolute path (relative paths start at the root too). Symlinks in the
    /// middle are followed; the last component is followed only with `follow`.
    pub fn resolve(&self, path: &[u8], follow: bool) -> VfsResult<Ino> {
        let mut hops = 0;
        self.resolve_from(Ino::ROOT, path, follow, &mut hops)
    }

    fn resolve_from(
        &self,
        start: Ino,
        path: &[u8],
        follow: bool,
        hops: &mut u32,
    ) -> VfsResult<Ino> {
        let mut cur = if path.starts_with(b"/") {
            Ino::ROOT
        } else {
            start
        };
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let dir = self.getattr(cur)?;
            if dir.kind != FileKind::Dir {
                return Err(VfsError::NotDir);
            }
            if *part == b".." {
                cur = rows::parent_of_dir(&self.store()?.conn, cur)?;
                continue;
            }
            let attr = self.lookup(cur, part)?;
            if attr.kind == FileKind::Symlink && (!last || follow) {
                *hops += 1;
                if *hops > MAX_SYMLINKS {
                    return Err(VfsError::Loop);
                }
                let target = self.readlink(attr.ino)?;
                cur = self.resolve_from(cur, &target, true, hops)?;
            } else {
                cur = attr.ino;
            }
        }
        Ok(cur)
    }

    // ----- creating -----------------------------------------------------------------------

    /// Creates an inode under `parent`. Shared by create/mknod/mkdir/symlink.
    fn make_node(&self, parent: Ino, name: &[u8], node: NewNode<'_>) -> VfsResult<Attr> {
        let NewNode {
            kind,
            perm,
            rdev,
            creds,
            symlink_target,
        } = node;
        names::check_name(name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let parent_attr = rows::dir_attr(&tx, parent)?;
        if rows::child(&tx, parent, name)?.is_some() {
            return Err(VfsError::Exists);
        }
        let is_dir = kind == FileKind::Dir;
        // A set-group-ID directory hands its group to new entries, and its bit to new
        // subdirectories (inode_init_owner() in Linux).
        let mut perm = perm & 0o7777;
        let mut gid = creds.gid;
        if parent_attr.perm & libc::S_ISGID != 0 {
            gid = parent_attr.gid;
            if is_dir {
                perm |= libc::S_ISGID;
            }
        }
        let new = rows::NewInode {
            mode: kind.type_bits() | perm,
            nlink: if is_dir { 2 } else { 1 },
            uid: creds.uid,
            gid,
            rdev,
            size: symlink_target.map_or(0, |t| t.len() as u64),
        };
        let ino = rows::insert_inode(&tx, &new, now)?;
        rows::insert_dentry(&tx, parent, name, ino)?;
        if let Some(target) = symlink_target {
            tx.prepare_cached("INSERT INTO fs_symlink (ino, target) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, names::to_sql(target)])?;
        }
        if is_dir {
            rows::add_nlink(&tx, parent, 1, None)?;
        }
        rows::touch_dir(&tx, parent, now)?;
        let path = rows::child_path(&tx, parent, name)?;
        let op = match kind {
            FileKind::File => JournalOp::Create,
            FileKind::Dir => JournalOp::Mkdir,
            FileKind::Symlink => JournalOp::Symlink,
            _ => JournalOp::Mknod,
        };
        rows::journal_at(&tx, runner, now, op, ino, path.as_deref())?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        Ok(attr)
    }

    /// Copies a base entry into the delta as entry `name` of `parent`, in one transaction:
    /// its metadata, its bytes (read from `c.data`) and its origin (`fs_origin`), so a crash
    /// never leaves half a copy shadowing the base. Not journaled: the merged view does not
    /// change; the change that needed the copy is journaled by its own operation.
    ///
    /// `chain` is a path of base entries below `parent`, each copied into the one before:
    /// the directories a change needs first, then the entry it changes, all committed at once.
    pub fn copy_up(&self, parent: Ino, chain: Vec<(&[u8], CopyUp<'_>)>) -> VfsResult<Attr> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let mut dir = parent;
        for (name, c) in chain {
            dir = self.copy_up_in(&tx, dir, name, c)?;
        }
        let attr = rows::attr(&tx, dir)?;
        tx.commit()?;
        Ok(attr)
    }

    /// One entry of [`Vfs::copy_up`], inside its transaction, with its write if any.
    fn copy_up_in(
        &self,
        tx: &rusqlite::Connection,
        parent: Ino,
        name: &[u8],
        c: CopyUp<'_>,
    ) -> VfsResult<Ino> {
        names::check_name(name)?;
        rows::dir_attr(tx, parent)?;
        let then_write = c.then_write;
        let ino = match rows::child(tx, parent, name)? {
            // Another thread copied it up first.
            Some(existing) => existing,
            None => {
                let (ino, written_at) = self.insert_copy(tx, parent, name, c)?;
                if let Some(at) = written_at {
                    if self.starts_write_burst(ino) {
                        rows::journal_ino(tx, self.runner(), at, JournalOp::Write, ino)?;
                    }
                    return Ok(ino);
                }
                ino
            }
        };
        if let Some((offset, buf)) = then_write {
            let journal_it = self.starts_write_burst(ino);
            self.write_in(tx, ino, offset, buf, journal_it, false)?;
        }
        Ok(ino)
    }

    /// The new delta inode of a copy-up: metadata, bytes, origin and identity. A write that
    /// lands within the copied bytes or right after them is made on the bytes in memory, so
    /// they are stored once; the time it was made at comes back with the inode then.
    fn insert_copy(
        &self,
        tx: &rusqlite::Connection,
        parent: Ino,
        name: &[u8],
        c: CopyUp<'_>,
    ) -> VfsResult<(Ino, Option<Timestamp>)> {
        let chunk_size = self.chunk_size;
        let now = Timestamp::now();
        let is_dir = c.kind == FileKind::Dir;
        let new = rows::NewInode {
            mode: c.kind.type_bits() | (c.perm & 0o7777),
            nlink: if is_dir { 2 } else { 1 },
            uid: c.uid,
            gid: c.gid,
            rdev: c.rdev,
            size: c.symlink_target.map_or(0, |t| t.len() as u64),
        };
        let ino = rows::insert_inode(tx, &new, now)?;
        rows::insert_dentry(tx, parent, name, ino)?;
        if let Some(target) = c.symlink_target {
            tx.prepare_cached("INSERT INTO fs_symlink (ino, target) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, names::to_sql(target)])?;
        }
        if is_dir {
            rows::add_nlink(tx, parent, 1, None)?;
        }
        let mut hash = c.base_hash;
        let mut mtime = c.mtime;
        let mut written_at = None;
        if let Some(reader) = c.data {
            // Whole: files this small are copied (larger ones stay in the base until changed).
            let mut bytes = Vec::with_capacity(c.size as usize);
            reader.read_to_end(&mut bytes).map_err(|e| {
                VfsError::Store(crate::store::StoreError::Io {
                    path: std::path::PathBuf::from(String::from_utf8_lossy(name).into_owned()),
                    source: e,
                })
            })?;
            hash = Some(*blake3::hash(&bytes).as_bytes());
            if let Some((offset, buf)) = c.then_write.filter(|(o, _)| *o <= bytes.len() as u64) {
                let (offset, end) = (offset as usize, offset as usize + buf.len());
                if end > bytes.len() {
                    bytes.resize(end, 0);
                }
                bytes[offset..end].copy_from_slice(buf);
                mtime = now;
                written_at = Some(now);
            }
            let size = data::write(tx, chunk_size, ino, 0, 0, &bytes, None)?;
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, size as i64])?;
        } else if c.backed_by_base {
            // Partial copy-up: no bytes now; they stay in the base until they change.
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, c.size as i64])?;
            tx.prepare_cached("INSERT INTO fs_base_backing (ino, valid_len) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, c.size as i64])?;
        }
        tx.prepare_cached(
            "UPDATE fs_inode SET atime = ?2, atime_nsec = ?3, mtime = ?4, mtime_nsec = ?5 WHERE ino = ?1",
        )?
        .execute(params![
            ino.0 as i64,
            c.atime.sec,
            c.atime.nsec as i64,
            mtime.sec,
            mtime.nsec as i64
        ])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_origin (delta_ino, base_ino) VALUES (?1, ?2)",
        )?
        .execute(params![ino.0 as i64, c.base_ino as i64])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_base_identity (ino, base_path, size, mtime_ns, blake3, mode) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            ino.0 as i64,
            names::to_sql(c.base_path),
            c.size as i64,
            c.mtime.as_nanos(),
            hash.as_ref().map(|h| &h[..]),
            new.mode as i64
        ])?;
        Ok((ino, written_at))
    }

    /// Every base inode number some delta entry was copied up from.
    pub fn origin_base_inos(&self) -> VfsResult<HashSet<u64>> {
        let store = self.store()?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT base_ino FROM fs_origin")?;
        let inos = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|i| i as u64))
            .collect::<Result<HashSet<u64>, _>>()?;
        Ok(inos)
    }

    /// The delta inode copied up from base inode `base_ino`, if any.
    pub fn delta_of_base(&self, base_ino: u64) -> VfsResult<Option<Ino>> {
        let store = self.store()?;
        let d: Option<i64> = store
            .conn
            .prepare_cached("SELECT delta_ino FROM fs_origin WHERE base_ino = ?1")?
            .query_row([base_ino as i64], |r| r.get(0))
            .optional()?;
        Ok(d.map(|d| Ino(d as u64)))
    }

    /// The base inode a delta inode was copied up from, if any.
    pub fn origin_of(&self, ino: Ino) -> VfsResult<Option<u64>> {
        let store = self.store()?;
        let b: Option<i64> = store
            .conn
            .prepare_cached("SELECT base_ino FROM fs_origin WHERE delta_ino = ?1")?
            .query_row([ino.0 as i64], |r| r.get(0))
            .optional()?;
        Ok(b.map(|b| b as u64))
    }

    /// Every whited-out base path.
    pub fn all_whiteouts(&self) -> VfsResult<Vec<Vec<u8>>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached("SELECT path FROM fs_whiteout")?;
        let paths = stmt
            .query_map([], |r| names::from_sql(r.get_ref(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paths)
    }

    /// Marks `path` as deleted from the base (`whiteout`) or not (`!whiteout`).
    pub fn set_whiteout(&self, path: &[u8], whiteout: bool) -> VfsResult<()> {
        self.whiteout_change(path, whiteout, None)
    }

    /// Whites out a base path whose deletion no delta entry journals, journaling it as `op`
    /// (`unlink` or `rmdir`) in the same transaction.
    /// `journal_path` is where the user saw it (it differs from `path` inside a directory
    /// moved within the session).
    pub fn delete_base_path(
        &self,
        path: &[u8],
        journal_path: &[u8],
        op: JournalOp,
    ) -> VfsResult<()> {
        self.whiteout_change(path, true, Some((op, journal_path)))
    }

    fn whiteout_change(
        &self,
        path: &[u8],
        whiteout: bool,
        op: Option<(JournalOp, &[u8])>,
    ) -> VfsResult<()> {
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        if whiteout {
            let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let parent: &[u8] = if cut == 0 { b"/" } else { &path[..cut] };
            let tx = store.write_tx()?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO fs_whiteout (path, parent_path, created_at) VALUES (?1, ?2, unixepoch())",
            )?
            .execute(params![names::to_sql(path), names::to_sql(parent)])?;
            if let Some((op, journal_path)) = op {
                let change = rows::Change {
                    op,
                    ino: None,
                    path: Some(journal_path),
                    old_path: None,
                };
                rows::journal(&tx, runner, now, change)?;
            }
            tx.commit()?;
        } else {
            store
                .conn
                .prepare_cached("DELETE FROM fs_whiteout WHERE path = ?1")?
                .execute([names::to_sql(path)])?;
        }
        Ok(())
    }

    /// Whether delta directory `dir` hides the base directory at its path (it replaced a
    /// deleted one).
    pub fn is_opaque(&self, dir: Ino) -> VfsResult<bool> {
        let store = self.store()?;
        Ok(store
            .conn
            .prepare_cached("SELECT 1 FROM fs_opaque WHERE ino = ?1")?
            .query_row([dir.0 as i64], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn set_opaque(&self, dir: Ino) -> VfsResult<()> {
        self.writer()?
            .conn
            .prepare_cached("INSERT OR IGNORE INTO fs_opaque (ino) VALUES (?1)")?
            .execute([dir.0 as i64])?;
        Ok(())
    }

    /// The path of `ino` in the delta (the merged view's path), if it has a name.
    pub fn path_of(&self, ino: Ino) -> VfsResult<Option<Vec<u8>>> {
        rows::path_of(&self.store()?.conn, ino)
    }

    /// The base directory a delta directory shows, as a path from the base root: the one it
    /// was copied up from (it keeps showing it wherever it is moved), else its parent's base
    /// directory plus its name; `None` if it shows none (opaque, or not reachable).
    pub fn base_path_of(&self, dir: Ino) -> VfsResult<Option<Vec<u8>>> {
        let store = self.store()?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = dir;
        let start: Vec<u8> = loop {
            if cur == Ino::ROOT {
                break b"/".to_vec();
            }
            let row = store
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM fs_opaque WHERE ino = ?1), \
                     (SELECT base_path FROM fs_base_identity WHERE ino = ?1), \
                     d.parent_ino, d.name FROM fs_dentry d WHERE d.ino = ?1 LIMIT 1",
                )?
                .query_row([cur.0 as i64], |r| {
                    let base = match r.get_ref(1)? {
                        rusqlite::types::ValueRef::Null => None,
                        v => Some(names::from_sql(v)?),
                    };
                    Ok((
                        r.get::<_, bool>(0)?,
                        base,
                        r.get::<_, i64>(2)?,
                        names::from_sql(r.get_ref(3)?)?,
                    ))
                })
                .optional()?;
            let Some((opaque, base, parent, name)) = row else {
                return Ok(None);
            };
            if opaque {
                return Ok(None);
            }
            if let Some(b) = base {
                break b;
            }
            names.push(name);
            cur = Ino(parent as u64);
        };
        let mut path = start;
        for name in names.iter().rev() {
            if path.last() != Some(&b'/') {
                path.push(b'/');
            }
            path.extend_from_slice(name);
        }
        Ok(Some(path))
    }

    /// Creates and opens a regular file; `Exists` if the name is taken.
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        perm: u32,
        creds: Creds,
    ) -> VfsResult<(Attr, Fh)> {
        let attr = self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::File,
                perm,
                rdev: 0,
                creds,
                symlink_target: None,
            },
        )?;
        let fh = self.add_handle(attr.ino);
        Ok((attr, fh))
    }

    /// Creates a regular file, FIFO, socket or device node.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        perm: u32,
        rdev: u32,
        creds: Creds,
    ) -> VfsResult<Attr> {
        if matches!(kind, FileKind::Dir | FileKind::Symlink) {
            return Err(VfsError::Invalid);
        }
        let rdev = if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
            rdev
        } else {
            0
        };
        self.make_node(
            parent,
            name,
            NewNode {
                kind,
                perm,
                rdev,
                creds,
                symlink_target: None,
            },
        )
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], perm: u32, creds: Creds) -> VfsResult<Attr> {
        // mkdir(2): only the permission and sticky bits of `mode` are used.
        self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::Dir,
                perm: perm & 0o1777,
                rdev: 0,
                creds,
                symlink_target: None,
            },
        )
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        creds: Creds,
    ) -> VfsResult<Attr> {
        // symlink(2): the target may be anything but empty, up to PATH_MAX.
        if target.is_empty() || target.contains(&0) {
            return Err(if target.is_empty() {
                VfsError::NotFound
            } else {
                VfsError::Invalid
            });
        }
        if target.len() >= libc::PATH_MAX as usize {
            return Err(VfsError::NameTooLong);
        }
        let node = NewNode {
            kind: FileKind::Symlink,
            perm: 0o777,
            rdev: 0,
            creds,
            symlink_target: Some(target),
        };
        self.make_node(parent, name, node)
    }

    /// Adds the name `new_name` in `new_parent` for `ino`.
    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> VfsResult<Attr> {
        names::check_name(new_name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        rows::dir_attr(&tx, new_parent)?;
        // linkat(2) looks up the new name before vfs_link() refuses directories.
        if rows::child(&tx, new_parent, new_name)?.is_some() {
            return Err(VfsError::Exists);
        }
        if attr.kind == FileKind::Dir {
            return Err(VfsError::NotPermitted);
        }
        rows::insert_dentry(&tx, new_parent, new_name, ino)?;
        rows::add_nlink(&tx, ino, 1, Some(now))?;
        rows::touch_dir(&tx, new_parent, now)?;
        // An orphan that is linked again is no longer an orphan.
        tx.prepare_cached("DELETE FROM fs_orphan WHERE ino = ?1")?
            .execute([ino.0 as i64])?;
        let path = rows::child_path(&tx, new_parent, new_name)?;
        rows::journal_at(&tx, runner, now, JournalOp::Link, ino, path.as_deref())?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        Ok(attr)
    }

    // ----- removing -----------------------------------------------------------------------

    /// Drops one link of non-directory `ino`; at zero links the inode goes, unless it is open
    /// here, in which case it waits in `fs_orphan` for the last release.
    fn drop_link(
        conn: &rusqlite::Connection,
        is_open: bool,
        ino: Ino,
        now: Timestamp,
    ) -> VfsResult<()> {
        rows::add_nlink(conn, ino, -1, Some(now))?;
        if rows::attr(conn, ino)?.nlink == 0 {
            if is_open {
                rows::insert_orphan(conn, ino, now)?;
            } else {
                rows::purge_inode(conn, ino)?;
            }
        }
        Ok(())
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        let ino = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        // unlink(2): Linux reports EISDIR for a directory.
        if rows::attr(&tx, ino)?.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        let path = rows::child_path(&tx, parent, name)?;
        rows::delete_dentry(&tx, parent, name)?;
        Self::drop_link(&tx, self.is_open(ino), ino, now)?;
        rows::touch_dir(&tx, parent, now)?;
        rows::journal_at(&tx, runner, now, JournalOp::Unlink, ino, path.as_deref())?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }

    fn dir_is_empty(conn: &rusqlite::Connection, dir: Ino) -> VfsResult<bool> {
        let mut stmt =
            conn.prepare_cached("SELECT 1 FROM fs_dentry WHERE parent_ino = ?1 LIMIT 1")?;
        Ok(stmt
            .query_row([dir.0 as i64], |_| Ok(()))
            .optional()?
            .is_none())
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        let ino = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        if rows::attr(&tx, ino)?.kind != FileKind::Dir {
            return Err(VfsError::NotDir);
        }
        if !Self::dir_is_empty(&tx, ino)? {
            return Err(VfsError::NotEmpty);
        }
        let path = rows::child_path(&tx, parent, name)?;
        rows::delete_dentry(&tx, parent, name)?;
        rows::purge_inode(&tx, ino)?;
        rows::add_nlink(&tx, parent, -1, None)?;
        rows::touch_dir(&tx, parent, now)?;
        rows::journal_at(&tx, runner, now, JournalOp::Rmdir, ino, path.as_deref())?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, as renameat2(2).
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        if flags.noreplace && flags.exchange {
            return Err(VfsError::Invalid);
        }
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        names::check_name(new_name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        rows::dir_attr(&tx, new_parent)?;
        let src = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        let src_attr = rows::attr(&tx, src)?;
        let dst = rows::child(&tx, new_parent, new_name)?;
        // The order of checks follows do_renameat2() in Linux, so errno matches the kernel's.
        if flags.noreplace && dst.is_some() {
            return Err(VfsError::Exists);
        }
        if flags.exchange && dst.is_none() {
            return Err(VfsError::NotFound);
        }
        let src_is_dir = src_attr.kind == FileKind::Dir;
        if src_is_dir && src != dst.unwrap_or(Ino(0)) && rows::is_ancestor(&tx, src, new_parent)? {
            return Err(VfsError::Invalid);
        }
        let dst_attr = match dst {
            Some(d) => Some(rows::attr(&tx, d)?),
            None => None,
        };
        if let Some(d) = &dst_attr
            && d.kind == FileKind::Dir
            && d.ino != src
            && rows::is_ancestor(&tx, d.ino, parent)?
        {
            return Err(if flags.exchange {
                VfsError::Invalid
            } else {
                VfsError::NotEmpty
            });
        }
        if dst == Some(src) {
            return Ok(());
        }
        let old_path = rows::child_path(&tx, parent, name)?;
        let new_path = rows::child_path(&tx, new_parent, new_name)?;
        let set_entry = |ino: Ino, p: Ino, n: &[u8]| -> VfsResult<()> {
            tx.prepare_cached("UPDATE fs_dentry SET ino = ?1 WHERE parent_ino = ?2 AND name = ?3")?
                .execute(params![ino.0 as i64, p.0 as i64, names::to_sql(n)])?;
            Ok(())
        };
        if flags.exchange {
            let dst_attr = dst_attr.expect("exchange target checked above");
            set_entry(dst_attr.ino, parent, name)?;
            set_entry(src, new_parent, new_name)?;
            if parent != new_parent {
                let dst_is_dir = dst_attr.kind == FileKind::Dir;
                let moved = src_is_dir as i64 - dst_is_dir as i64;
                if moved != 0 {
                    rows::add_nlink(&tx, parent, -moved, None)?;
                    rows::add_nlink(&tx, new_parent, moved, None)?;
                }
            }
            rows::touch_ctime(&tx, dst_attr.ino, now)?;
        } else {
            if let Some(d) = &dst_attr {
                match (src_is_dir, d.kind == FileKind::Dir) {
                    (true, false) => return Err(VfsError::NotDir),
                    (false, true) => return Err(VfsError::IsDir),
                    (true, true) if !Self::dir_is_empty(&tx, d.ino)? => {
                        return Err(VfsError::NotEmpty);
                    }
                    _ => {}
                }
                rows::delete_dentry(&tx, new_parent, new_name)?;
                if d.kind == FileKind::Dir {
                    rows::purge_inode(&tx, d.ino)?;
                    rows::add_nlink(&tx, new_parent, -1, None)?;
                } else {
                    Self::drop_link(&tx, self.is_open(d.ino), d.ino, now)?;
                }
            }
            tx.prepare_cached(
                "UPDATE fs_dentry SET parent_ino = ?1, name = ?2 WHERE parent_ino = ?3 AND name = ?4",
            )?
            .execute(params![
                new_parent.0 as i64,
                names::to_sql(new_name),
                parent.0 as i64,
                names::to_sql(name)
            ])?;
            if src_is_dir && parent != new_parent {
                rows::add_nlink(&tx, parent, -1, None)?;
                rows::add_nlink(&tx, new_parent, 1, None)?;
            }
        }
        rows::touch_ctime(&tx, src, now)?;
        rows::touch_dir(&tx, parent, now)?;
        if new_parent != parent {
            rows::touch_dir(&tx, new_parent, now)?;
        }
        let op = if flags.exchange {
            JournalOp::Exchange
        } else {
            JournalOp::Rename
        };
        rows::journal(
            &tx,
            runner,
            now,
            Change {
                op,
                ino: Some(src),
                path: new_path.as_deref(),
                old_path: old_path.as_deref(),
            },
        )?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }

    // ----- attributes ---------------------------------------------------------------------

    /// Changes the attributes named in `set`, as chmod/chown/truncate/utimensat do.
    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> VfsResult<Attr> {
        let now = Timestamp::now();
        let runner = self.runner();
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        let mut mtime = set.mtime;
        if let Some(size) = set.size {
            match attr.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(VfsError::IsDir),
                _ => return Err(VfsError::Invalid),
            }
            let base = self.base_bytes(&tx, ino)?;
            data::truncate(&tx, chunk_size, ino, attr.size, size, base.as_ref())?;
            lower_valid_len(&tx, ino, size)?;
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, size as i64])?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
            // truncate(2) updates mtime (and ctime) unless the caller sets mtime itself.
            mtime.get_or_insert(TimeSet::Now);
        }
        if let Some(mode) = set.mode {
            tx.prepare_cached("UPDATE fs_inode SET mode = (mode & ?2) | ?3 WHERE ino = ?1")?
                .execute(params![
                    ino.0 as i64,
                    libc::S_IFMT as i64,
                    (mode & 0o7777) as i64
                ])?;
        }
        if set.kill_suidgid && attr.kind != FileKind::Dir {
            // Only when there is a bit to clear: chown and truncate ask this every time.
            let perm = set.mode.map_or(attr.perm, |m| m & 0o7777);
            let mut kept = perm & !libc::S_ISUID;
            if perm & libc::S_IXGRP != 0 {
                kept &= !libc::S_ISGID;
            }
            if kept != perm {
                tx.prepare_cached("UPDATE fs_inode SET mode = (mode & ?2) | ?3 WHERE ino = ?1")?
                    .execute(params![ino.0 as i64, libc::S_IFMT as i64, kept as i64])?;
            }
        }
        if let Some(uid) = set.uid {
            tx.prepare_cached("UPDATE fs_inode SET uid = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, uid as i64])?;
        }
        if let Some(gid) = set.gid {
            tx.prepare_cached("UPDATE fs_inode SET gid = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, gid as i64])?;
        }
        let resolve = |t: TimeSet| match t {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        };
        if let Some(t) = set.atime.map(resolve) {
            tx.prepare_cached("UPDATE fs_inode SET atime = ?2, atime_nsec = ?3 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, t.sec, t.nsec as i64])?;
        }
        if let Some(t) = mtime.map(resolve) {
            tx.prepare_cached("UPDATE fs_inode SET mtime = ?2, mtime_nsec = ?3 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, t.sec, t.nsec as i64])?;
        }
        rows::touch_ctime(&tx, ino, now)?;
        let op = if set.size.is_some() {
            JournalOp::Truncate
        } else if set.mode.is_some() {
            JournalOp::Chmod
        } else if set.uid.is_some() || set.gid.is_some() {
            JournalOp::Chown
        } else if set.kill_suidgid {
            JournalOp::Chmod
        } else {
            JournalOp::Utimens
        };
        rows::journal_ino(&tx, runner, now, op, ino)?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        if set.size.is_some() {
            self.after_free(&mut store)?;
        }
        Ok(attr)
    }

    pub fn statfs(&self) -> VfsResult<StatFs> {
        let store = self.store()?;
        let files: i64 = store
            .conn
            .query_row("SELECT count(*) FROM fs_inode", [], |r| r.get(0))?;
        let dir = store
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let host = host_statvfs(dir);
        let block_size = 4096u32;
        let (blocks, free, avail, ffree) = match host {
            Some(s) => {
                let scale = |n: u64| n.saturating_mul(s.0) / block_size as u64;
                (scale(s.1), scale(s.2), scale(s.3), s.4)
            }
            None => (0, 0, 0, 0),
        };
        Ok(StatFs {
            block_size,
            blocks,
            blocks_free: free,
            blocks_available: avail,
            files: files as u64 + ffree,
            files_free: ffree,
            name_max: names::NAME_MAX as u32,
        })
    }

    // ----- file data ----------------------------------------------------------------------

    fn add_handle(&self, ino: Ino) -> Fh {
        let mut files = self.files();
        let fh = files.next_fh;
        files.next_fh += 1;
        files.handles.insert(
            fh,
            Handle {
                ino,
                journaled_write: false,
            },
        );
        *files.open_count.entry(ino).or_insert(0) += 1;
        Fh(fh)
    }

    fn handle_ino(&self, fh: Fh) -> VfsResult<Ino> {
        self.files()
            .handles
            .get(&fh.0)
            .map(|h| h.ino)
            .ok_or(VfsError::BadHandle)
    }

    /// Opens an existing inode for reading and writing; directories are opened with `readdir`.
    pub fn open(&self, ino: Ino) -> VfsResult<Fh> {
        let attr = rows::attr(&self.store()?.conn, ino)?;
        if attr.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        Ok(self.add_handle(ino))
    }

    /// Closes a handle; the last close of an unlinked file frees it.
    pub fn release(&self, fh: Fh) -> VfsResult<()> {
        let orphaned = {
            let mut files = self.files();
            let handle = files.handles.remove(&fh.0).ok_or(VfsError::BadHandle)?;
            let count = files.open_count.entry(handle.ino).or_insert(1);
            *count -= 1;
            if *count > 0 {
                return Ok(());
            }
            files.open_count.remove(&handle.ino);
            // With a kernel frontend the kernel may still have the file open without a
            // handle of ours; it says so by not having forgotten the inode yet.
            if files.kernel_holds && !files.forgotten.remove(&handle.ino) {
                return Ok(());
            }
            files.orphaned.remove(&handle.ino).then_some(handle.ino)
        };
        if let Some(ino) = orphaned {
            self.free_orphans(&[ino])?;
        }
        Ok(())
    }

    /// Makes files that lose their last link wait for [`Vfs::forget`] before their data goes
    /// (for a kernel frontend that opens files without a handle from us).
    pub fn free_on_forget(&self) {
        self.files().kernel_holds = true;
    }

    /// The kernel dropped these inodes: none is open any more, so orphans among them go
    /// (in one transaction).
    pub fn forget(&self, inos: &[Ino]) -> VfsResult<()> {
        let free: Vec<Ino> = {
            let mut files = self.files();
            if files.orphaned.is_empty() {
                return Ok(());
            }
            let mut free = Vec::new();
            for ino in inos {
                if !files.orphaned.contains(ino) {
                    continue;
                }
                if files.open_count.contains_key(ino) {
                    files.forgotten.insert(*ino);
                } else {
                    files.orphaned.remove(ino);
                    free.push(*ino);
                }
            }
            free
        };
        if free.is_empty() {
            return Ok(());
        }
        // With a maintenance thread, frees are batched: many files deleted at once (rm -rf)
        // then cost one transaction instead of one each.
        if self.background_maintenance.load(Ordering::Relaxed) {
            self.files().to_free.extend(free);
            return Ok(());
        }
        self.free_orphans(&free)
    }

    /// Frees the forgotten orphans that [`Vfs::forget`] left for maintenance.
    pub fn free_forgotten(&self) -> VfsResult<()> {
        let free = std::mem::take(&mut self.files().to_free);
        if free.is_empty() {
            return Ok(());
        }
        self.free_orphans(&free)
    }

    /// Whether some file that lost its last link is still waiting for its last close.
    pub fn has_orphans(&self) -> bool {
        !self.files().orphaned.is_empty()
    }

    /// Frees inodes that were waiting in `fs_orphan`. Orphan rows are written only by this
    /// process for its own open files, so the in-memory set said there is something to free;
    /// the row is checked because a link may have brought the inode back.
    fn free_orphans(&self, inos: &[Ino]) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        for ino in inos {
            let still_orphan = tx
                .prepare_cached("SELECT 1 FROM fs_orphan WHERE ino = ?1")?
                .query_row([ino.0 as i64], |_| Ok(()))
                .optional()?
                .is_some();
            if still_orphan {
                rows::purge_inode(&tx, *ino)?;
            }
        }
        tx.commit()?;
        self.after_free(&mut store)
    }

    pub fn read(&self, fh: Fh, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        let ino = self.handle_ino(fh)?;
        self.read_ino(ino, offset, len)
    }

    /// Reads without a handle (for tools that inspect a session).
    pub fn read_ino(&self, ino: Ino, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        let chunk_size = self.chunk_size;
        let mut store = self.store()?;
        let tx = store.read_tx()?;
        let attr = rows::attr(&tx, ino)?;
        if attr.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        let base = self.base_bytes(&tx, ino)?;
        data::read(&tx, chunk_size, ino, attr.size, offset, len, base.as_ref())
    }

    /// For a partially copied-up file: the base file holding the bytes not stored yet.
    fn base_bytes(
        &self,
        conn: &rusqlite::Connection,
        ino: Ino,
    ) -> VfsResult<Option<data::BaseBytes>> {
        base_bytes_of(conn, self.base_root.as_deref(), ino)
    }

    /// Writes `buf` at `offset`; returns the number of bytes written (all of them).
    pub fn write(&self, fh: Fh, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        let (ino, journaled) = {
            let files = self.files();
            let h = files.handles.get(&fh.0).ok_or(VfsError::BadHandle)?;
            (h.ino, h.journaled_write)
        };
        self.write_ino(ino, offset, buf, !journaled, false)?;
        if !journaled && let Some(h) = self.files().handles.get_mut(&fh.0) {
            h.journaled_write = true;
        }
        Ok(buf.len() as u32)
    }

    /// Writes `buf` at `offset` (after emptying the file, with `replace`) in one transaction.
    fn write_ino(
        &self,
        ino: Ino,
        offset: u64,
        buf: &[u8],
        journal_it: bool,
        replace: bool,
    ) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        self.write_in(&tx, ino, offset, buf, journal_it, replace)?;
        tx.commit()?;
        Ok(())
    }

    /// The body of [`Vfs::write_ino`], inside the caller's transaction.
    fn write_in(
        &self,
        tx: &rusqlite::Connection,
        ino: Ino,
        offset: u64,
        buf: &[u8],
        journal_it: bool,
        replace: bool,
    ) -> VfsResult<()> {
        let now = Timestamp::now();
        let chunk_size = self.chunk_size;
        let attr = rows::attr(tx, ino)?;
        if attr.kind != FileKind::File {
            return Err(if attr.kind == FileKind::Dir {
                VfsError::IsDir
            } else {
                VfsError::Invalid
            });
        }
        let mut base = self.base_bytes(tx, ino)?;
        let old_size = if replace {
            data::truncate(tx, chunk_size, ino, attr.size, 0, base.as_ref())?;
            lower_valid_len(tx, ino, 0)?;
            base = None;
            0
        } else {
            attr.size
        };
        let new_size = data::write(tx, chunk_size, ino, old_size, offset, buf, base.as_ref())?;
        if !buf.is_empty() || replace {
            tx.prepare_cached(
                "UPDATE fs_inode SET size = ?2, mtime = ?3, mtime_nsec = ?4, ctime = ?3, ctime_nsec = ?4 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, new_size as i64, now.sec, now.nsec as i64])?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
        }
        if journal_it {
            rows::journal_ino(tx, self.runner(), now, JournalOp::Write, ino)?;
        }
        Ok(())
    }

    /// Writes `buf` at `offset` of `ino` without a handle (a kernel that opens files without
    /// asking us). A burst of writes to one file is journaled once.
    pub fn write_unopened(&self, ino: Ino, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        let journal_it = self.starts_write_burst(ino);
        self.write_ino(ino, offset, buf, journal_it, false)?;
        Ok(buf.len() as u32)
    }

    /// Whether a write without a handle to `ino` now starts a new burst of writes (and so
    /// gets a journal row).
    fn starts_write_burst(&self, ino: Ino) -> bool {
        let now = std::time::Instant::now();
        let mut files = self.files();
        let last = files.unopened_writes.insert(ino, now);
        if files.unopened_writes.len() > 4096 {
            files
                .unopened_writes
                .retain(|_, t| now.duration_since(*t) < UNOPENED_WRITE_BURST);
        }
        last.is_none_or(|t| now.duration_since(t) >= UNOPENED_WRITE_BURST)
    }

    /// Replaces the whole contents of a file in one transaction (for tools).
    pub fn write_all_ino(&self, ino: Ino, contents: &[u8]) -> VfsResult<()> {
        self.write_ino(ino, 0, contents, true, true)?;
        self.store()?
            .reclaim_space(Some(crate::store::RECLAIM_BUDGET_PAGES))?;
        Ok(())
    }

    /// fallocate(2): mode 0 (allocate, growing the size), KEEP_SIZE, and PUNCH_HOLE|KEEP_SIZE.
    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: i32) -> VfsResult<()> {
        if len == 0 {
            return Err(VfsError::Invalid);
        }
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= data::MAX_FILE_SIZE)
            .ok_or(VfsError::TooBig)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        match attr.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(VfsError::IsDir),
            _ => return Err(VfsError::NotSupported),
        }
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        if mode & !(libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE) != 0
            || (punch && !keep_size)
        {
            return Err(VfsError::NotSupported);
        }
        let base = self.base_bytes(&tx, ino)?;
        if punch {
            data::punch_hole(&tx, chunk_size, ino, attr.size, offset, len, base.as_ref())?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
            tx.prepare_cached(
                "UPDATE fs_inode SET mtime = ?2, mtime_nsec = ?3, ctime = ?2, ctime_nsec = ?3 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, now.sec, now.nsec as i64])?;
        } else if !keep_size && end > attr.size {
            // Space is not reserved in SQLite; the new range is a hole that reads as zeros.
            data::truncate(&tx, chunk_size, ino, attr.size, end, base.as_ref())?;
            tx.prepare_cached(
                "UPDATE fs_inode SET size = ?2, ctime = ?3, ctime_nsec = ?4 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, end as i64, now.sec, now.nsec as i64])?;
        } else {
            return Ok(());
        }
        rows::journal_ino(&tx, runner, now, JournalOp::Fallocate, ino)?;
        tx.commit()?;
        Ok(())
    }

    /// After an operation that freed pages: give some back now, unless a background
    /// maintenance thread does it (mounts).
    fn after_free(&self, store: &mut Store) -> VfsResult<()> {
        if !self.background_maintenance.load(Ordering::Relaxed) {
            store.reclaim_space(Some(crate::store::RECLAIM_BUDGET_PAGES))?;
        }
        Ok(())
    }

    /// Hands space reclamation and WAL checkpoints to a thread that calls [`Vfs::maintain`]
    /// (so that deletes and writes return without that work), instead of doing them inline.
    pub fn use_background_maintenance(&self) -> VfsResult<()> {
        self.background_maintenance.store(true, Ordering::Relaxed);
        self.pool
            .set_autocheckpoint(crate::store::BACKGROUND_AUTOCHECKPOINT_PAGES)?;
        Ok(())
    }

    /// One round of maintenance: checkpoints the WAL once it has grown, and gives a batch of
    /// free pages back to the disk when the filesystem has been idle for a moment (giving
    /// space back rewrites pages, which would slow a running `rm -rf`) or when very much is
    /// free. Returns whether more reclaiming is waiting.
    pub fn maintain(&self) -> VfsResult<bool> {
        self.free_forgotten()?;
        // Checkpoint on a reader connection: it does not block writers.
        self.store()?.checkpoint_if_large()?;
        // Not `writer()`: maintenance is not activity.
        let mut store = self.pool.writer()?;
        store.restart_wal_if_huge()?;
        let idle = self.idle_for() >= MAINTENANCE_IDLE;
        if !idle && !store.free_pages_exceed(crate::store::RECLAIM_URGENT_PAGES)? {
            return Ok(false);
        }
        if store.reclaim_space(Some(crate::store::MAINTENANCE_BUDGET_PAGES))? {
            return Ok(true);
        }
        // Idle and nothing left to reclaim: shrink the WAL too, once.
        if idle && store.wal_size() > crate::store::IDLE_WAL_BYTES {
            store.truncate_wal()?;
        }
        Ok(false)
    }

    /// Time since the last change through this instance.
    fn idle_for(&self) -> std::time::Duration {
        let last = self.last_change_ms.load(Ordering::Relaxed);
        let now = self.started.elapsed().as_millis() as u64;
        std::time::Duration::from_millis(now.saturating_sub(last))
    }

    /// Notes that a change happened now (for [`Vfs::maintain`]'s idle test).
    fn touch_activity(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_change_ms.store(now, Ordering::Relaxed);
    }

    /// Gives all free space back to the disk now (deletes only do it a little at a time).
    pub fn compact(&self) -> VfsResult<()> {
        self.writer()?.reclaim_space(None)?;
        Ok(())
    }

    /// fsync(2): returns once every committed change, this file's included, is on disk.
    pub fn fsync(&self) -> VfsResult<()> {
        self.writer()?.sync()?;
        Ok(())
    }

    /// The blake3 hash of a file's contents, computed once and kept until the file changes.
    pub fn content_hash(&self, ino: Ino) -> VfsResult<[u8; 32]> {
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        if attr.kind != FileKind::File {
            return Err(VfsError::Invalid);
        }
        let cached: Option<Vec<u8>> = tx
            .prepare_cached("SELECT blake3 FROM fs_content_hash WHERE ino = ?1 AND size = ?2")?
            .query_row(params![ino.0 as i64, attr.size as i64], |r| r.get(0))
            .optional()?;
        if let Some(h) = cached.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
            return Ok(h);
        }
        let base = self.base_bytes(&tx, ino)?;
        let mut hasher = blake3::Hasher::new();
        let mut offset = 0;
        while offset < attr.size {
            let step = (1u64 << 20).min(attr.size - offset);
            let part = data::read(
                &tx,
                chunk_size,
                ino,
                attr.size,
                offset,
                step as u32,
                base.as_ref(),
            )?;
            hasher.update(&part);
            offset += step;
        }
        let hash = *hasher.finalize().as_bytes();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_content_hash (ino, blake3, size) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![ino.0 as i64, &hash[..], attr.size as i64])?;
        tx.commit()?;
        Ok(hash)
    }

    // ----- extended attributes ------------------------------------------------------------

    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> VfsResult<()> {
        check_xattr_name(name)?;
        // POSIX ACLs would have to be enforced and kept in step with the mode bits; stored as
        // plain attributes they would not be, and tools that copy permissions as ACLs (cp -a,
        // mv, sed -i) would leave wrong modes. Refusing makes them fall back to chmod.
        if name.starts_with(b"system.posix_acl_") {
            return Err(VfsError::NotSupported);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(VfsError::TooBig);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::attr(&tx, ino)?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM fs_xattr WHERE ino = ?1 AND name = ?2")?
            .query_row(params![ino.0 as i64, names::to_sql(name)], |_| Ok(()))
            .optional()?
            .is_some();
        match (mode, exists) {
            (XattrMode::Create, true) => return Err(VfsError::Exists),
            (XattrMode::Replace, false) => return Err(VfsError::NoAttr),
            _ => {}
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_xattr (ino, name, value) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![ino.0 as i64, names::to_sql(name), value])?;
        rows::touch_ctime(&tx, ino, now)?;
        rows::journal_ino(&tx, runner, now, JournalOp::Setxattr, ino)?;
        tx.commit()?;
        Ok(())
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VfsResult<Vec<u8>> {
        check_xattr_name(name)?;
        let store = self.store()?;
        // One query tells a missing attribute (asked before every first write) from a
        // missing inode.
        let value: Option<Option<Vec<u8>>> = store
            .conn
            .prepare_cached(
                "SELECT (SELECT value FROM fs_xattr WHERE ino = ?1 AND name = ?2) \
                 FROM fs_inode WHERE ino = ?1",
            )?
            .query_row(params![ino.0 as i64, names::to_sql(name)], |r| r.get(0))
            .optional()?;
        match value {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(VfsError::NoAttr),
            None => Err(VfsError::NotFound),
        }
    }

    /// Attribute names of `ino`, sorted.
    pub fn listxattr(&self, ino: Ino) -> VfsResult<Vec<Vec<u8>>> {
        let store = self.store()?;
        rows::attr(&store.conn, ino)?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT name FROM fs_xattr WHERE ino = ?1 ORDER BY name")?;
        let names = stmt
            .query_map([ino.0 as i64], |r| names::from_sql(r.get_ref(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> VfsResult<()> {
        check_xattr_name(name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::attr(&tx, ino)?;
        let removed = tx
            .prepare_cached("DELETE FROM fs_xattr WHERE ino = ?1 AND name = ?2")?
            .execute(params![ino.0 as i64, names::to_sql(name)])?;
        if removed == 0 {
            return Err(VfsError::NoAttr);
        }
        rows::touch_ctime(&tx, ino, now)?;
        rows::journal_ino(&tx, runner, now, JournalOp::Removexattr, ino)?;
        tx.commit()?;
        Ok(())
    }
}

/// Largest xattr value, as XATTR_SIZE_MAX on Linux.
const XATTR_SIZE_MAX: usize = 65536;

fn check_xattr_name(name: &[u8]) -> VfsResult<()> {
    // XATTR_NAME_MAX is 255; the kernel answers ERANGE for longer names.
    if name.is_empty() || name.contains(&0) {
        return Err(VfsError::Invalid);
    }
    if name.len() > 255 {
        return Err(VfsError::NameTooLong);
    }
    Ok(())
}

fn process_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// (fragment size, blocks, free, available, free inodes) of the filesystem holding `dir`.
fn host_statvfs(dir: &Path) -> Option<(u64, u64, u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((
        s.f_frsize as u64,
        s.f_blocks as u64,
        s.f_bfree as u64,
        s.f_bavail as u64,
        s.f_ffree as u64,
    ))
}

/// For a partially copied-up file `ino`: its base file (under `base_root`) and how much of it
/// is valid; `None` for every other inode. Fails if the host changed the base file since the
/// copy-up (its size or mtime differ from the recorded identity): its bytes would no longer be
/// the ones the session started from.
pub fn base_bytes_of(
    conn: &rusqlite::Connection,
    base_root: Option<&Path>,
    ino: Ino,
) -> VfsResult<Option<data::BaseBytes>> {
    use std::os::unix::fs::MetadataExt;
    let row = conn
        .prepare_cached(
            "SELECT b.valid_len, i.base_path, i.size, i.mtime_ns FROM fs_base_backing b \
             JOIN fs_base_identity i ON i.ino = b.ino WHERE b.ino = ?1",
        )?
        .query_row([ino.0 as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                names::from_sql(r.get_ref(1)?)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((valid_len, path, size, mtime_ns)) = row else {
        return Ok(None);
    };
    let root = base_root.ok_or_else(|| {
        VfsError::BaseRead("is unknown: the session has no base directory".into())
    })?;
    let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(&path));
    let host = root.join(rel);
    let file = std::fs::File::open(&host)
        .map_err(|e| VfsError::BaseRead(format!("{} cannot be read: {e}", host.display())))?;
    let md = file
        .metadata()
        .map_err(|e| VfsError::BaseRead(format!("{} cannot be read: {e}", host.display())))?;
    let md_mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    if md.len() != size as u64 || md_mtime_ns != mtime_ns {
        return Err(VfsError::BaseRead(format!(
            "{} changed on the host since the session copied it",
            host.display()
        )));
    }
    Ok(Some(data::BaseBytes {
        file,
        valid_len: valid_len as u64,
    }))
}

/// After a truncation to `size`: bytes of the base past it never show through again.
fn lower_valid_len(conn: &rusqlite::Connection, ino: Ino, size: u64) -> VfsResult<()> {
    conn.prepare_cached(
        "UPDATE fs_base_backing SET valid_len = min(valid_len, ?2) WHERE ino = ?1",
    )?
    .execute(params![ino.0 as i64, size as i64])?;
    conn.prepare_cached("DELETE FROM fs_base_backing WHERE ino = ?1 AND valid_len = 0")?
        .execute([ino.0 as i64])?;
    Ok(())
}
