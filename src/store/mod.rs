//! Opens a session database: file checks, per-connection pragmas and schema migrations.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

mod tx;
mod wal_batch;

pub use tx::{Begin, Tx};

/// Format version this binary writes, kept in `PRAGMA user_version`.
pub const FORMAT_VERSION: i64 = 9;

/// Migrations, in order; entry `i` takes a database from version `i` to `i + 1`.
/// Version 0 is a database written by another AgentFS SPEC 0.4 implementation (or a new file).
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema/0001_init.sql"),
    include_str!("../../schema/0002_runners.sql"),
    include_str!("../../schema/0003_views.sql"),
    include_str!("../../schema/0004_partial_copy_up.sql"),
    include_str!("../../schema/0005_changes_view.sql"),
    include_str!("../../schema/0006_network.sql"),
    include_str!("../../schema/0007_tool_calls.sql"),
    include_str!("../../schema/0008_dentry_index.sql"),
    include_str!("../../schema/0009_hook_calls.sql"),
];

/// How long a connection waits for another process's write lock before giving up.
/// Writers hold the lock for one filesystem operation, so this is only reached on a hung peer.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors from opening or using the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no such session database")]
    Missing(PathBuf),
    #[error("{0} is not a SQLite database (it does not start with the SQLite header)")]
    NotSqlite(PathBuf),
    #[error(
        "{0} is a SQLite database but not an agentfs session (it has no fs_inode table); \
         pass the path of a session .db or create one with `agentfs init`"
    )]
    NotSession(PathBuf),
    #[error(
        "{path} has format version {found}; this agentfs knows up to version {known}. \
         Upgrade agentfs to open it"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "could not switch the database to WAL mode (it stays in {0} mode); \
         put the session on a local filesystem"
    )]
    NoWal(String),
    #[error(
        "{0} is damaged (SQLite reports a malformed database); check it with \
         `agentfs fsck {0}` and restore it from a copy if that cannot repair it"
    )]
    Corrupt(PathBuf),
    #[error(
        "{0} is read-only (file permissions or a read-only filesystem); agentfs needs to write \
         to a session: make it writable or copy it somewhere writable"
    )]
    ReadOnly(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the session database is damaged ({0}); check it with `agentfs fsck SESSION` and \
         restore it from a copy if that cannot repair it"
    )]
    CorruptData(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// An operation asked for the writer connection while this thread's scope had lent it to
    /// another operation (a bug in agentfs, reported instead of waiting on itself forever).
    #[error("internal error: the session's writer connection was asked for twice by one operation")]
    WriterInUse,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::CorruptData(e),
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The database must already exist.
    Existing,
    /// Create a new database (or upgrade an existing one).
    Create,
}

/// One connection to a session database, configured for concurrent use by several processes.
pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
    /// Bytes per `fs_data` row, from `fs_config.chunk_size`.
    pub chunk_size: u64,
}

impl Store {
    /// Opens (or creates) the database at `path`, migrating it to [`FORMAT_VERSION`].
    pub fn open(path: &Path, mode: OpenMode) -> Result<Store, StoreError> {
        check_file(path, mode)?;
        let flags = match mode {
            OpenMode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
            OpenMode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let classify = |e: StoreError| classify_open_error(path, e);
        let vfs = wal_batch::register()?;
        let mut conn = Connection::open_with_flags_and_vfs(path, flags, vfs)
            .map_err(|e| classify(e.into()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Look before touching: a file that is not a session must be left exactly as it was.
        check_kind(&conn, path, mode).map_err(classify)?;
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(StoreError::ReadOnly(path.to_path_buf()));
        }
        if is_empty(&conn)? {
            // Must precede the first table: lets deletes give space back to the disk.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
        }
        configure(&conn).map_err(classify)?;
        migrate(&mut conn, path, mode).map_err(classify)?;
        let chunk_size: String = conn
            .query_row(
                "SELECT value FROM fs_config WHERE key = 'chunk_size'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| classify(e.into()))?;
        let chunk_size = chunk_size
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| StoreError::NotSession(path.to_path_buf()))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            chunk_size,
        })
    }

    /// The host directory this session overlays (`fs_overlay_config.base_path`), if any.
    pub fn base_path(&self) -> rusqlite::Result<Option<PathBuf>> {
        use rusqlite::OptionalExtension;
        let base: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM fs_overlay_config WHERE key = 'base_path'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(base.map(PathBuf::from))
    }

    /// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// read-then-write operation never fails half-way with SQLITE_BUSY.
    pub fn write_tx(&mut self) -> rusqlite::Result<Tx<'_>> {
        Tx::begin(&self.conn, Begin::Immediate)
    }

    /// Starts a read transaction: one consistent snapshot for a multi-statement read.
    pub fn read_tx(&mut self) -> rusqlite::Result<Tx<'_>> {
        Tx::begin(&self.conn, Begin::Deferred)
    }

    /// Gives free pages back to the filesystem, so a session shrinks when its files go.
    ///
    /// SQLite writes every page it gives back through the WAL, so this costs about as much as
    /// writing the freed data once. With `Some(budget)` it does at most `budget` pages and
    /// only once [`RECLAIM_THRESHOLD_PAGES`] are free: deletes call it so the cost is spread
    /// over them. With `None` it reclaims everything and shrinks the file at once (for
    /// unmount and tools). Databases created without incremental auto-vacuum (foreign ones)
    /// are left alone.
    /// Returns whether it gave anything back.
    pub fn reclaim_space(&mut self, budget: Option<u32>) -> rusqlite::Result<bool> {
        self.reclaim_space_with_progress(budget, &crate::progress::NoProgress)
    }

    /// [`reclaim_space`](Store::reclaim_space), telling `progress` of each page given back
    /// (items: pages, bytes: their size); it hears nothing when there is nothing to do.
    pub fn reclaim_space_with_progress(
        &mut self,
        budget: Option<u32>,
        progress: &dyn crate::progress::Progress,
    ) -> rusqlite::Result<bool> {
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free == 0 || budget.is_some() && free < RECLAIM_THRESHOLD_PAGES {
            return Ok(false);
        }
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let page_size = page_size.max(0) as u64;
        let total = match budget {
            Some(b) => (free as u64).min(u64::from(b)),
            None => free as u64,
        };
        progress.start("vacuuming", Some(total), Some(total * page_size));
        let tx = self.write_tx()?;
        {
            // The pragma frees one page per result row: step it to the end.
            // Pragmas take no bound parameters; the budget is a plain integer.
            let sql = format!("PRAGMA incremental_vacuum({})", budget.unwrap_or(0));
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query([])?;
            // Reported in batches, so a no-op progress costs next to nothing per page.
            let (mut done, mut pending) = (0u64, 0u64);
            while rows.next()?.is_some() {
                pending += 1;
                if pending == 64 {
                    progress.advance(pending, pending * page_size);
                    done += pending;
                    pending = 0;
                }
            }
            // The rest, also if SQLite freed fewer pages than it counted.
            let rest = total.saturating_sub(done);
            progress.advance(rest, rest * page_size);
        }
        tx.commit()?;
        if budget.is_none() {
            // Copy the WAL back now so the database file itself shrinks.
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        progress.finish();
        Ok(true)
    }

    /// Whether more than `pages` pages are free.
    pub fn free_pages_exceed(&self, pages: i64) -> rusqlite::Result<bool> {
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(free > pages)
    }

    /// Bytes in the WAL file now.
    pub fn wal_size(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0)
    }

    /// Copies the WAL back into the database once it holds more than
    /// [`CHECKPOINT_WAL_BYTES`], without waiting for readers or writers (PASSIVE).
    pub fn checkpoint_if_large(&mut self) -> rusqlite::Result<()> {
        if self.wal_size() >= CHECKPOINT_WAL_BYTES {
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Copies the whole WAL back and cuts the file to zero (for idle times, so an idle
    /// session takes only the space of its data). Waits at most [`RESTART_WAIT`] for
    /// readers; returns whether it finished.
    pub fn truncate_wal(&mut self) -> rusqlite::Result<bool> {
        self.conn.busy_timeout(RESTART_WAIT)?;
        let result = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(result? == 0)
    }

    /// Under a steady write load a passive checkpoint never catches up, so the WAL would
    /// grow. Past [`WAL_HIGH_WATER_BYTES`] this checkpoints completely and starts the WAL
    /// over (RESTART), waiting at most [`RESTART_WAIT`] for readers; called on the writer
    /// connection, so this process's writers queue meanwhile. Returns whether it restarted.
    pub fn restart_wal_if_huge(&mut self) -> rusqlite::Result<bool> {
        if self.wal_size() < WAL_HIGH_WATER_BYTES {
            return Ok(false);
        }
        self.conn.busy_timeout(RESTART_WAIT)?;
        let result = self
            .conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // The first column is 1 when a reader or writer kept it from finishing.
        Ok(result? == 0)
    }

    /// Makes every committed operation durable: commits one tiny transaction with
    /// `synchronous = FULL`, which fsyncs the WAL (and with it every earlier frame).
    pub fn sync(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        let result = (|| {
            let tx = self.write_tx()?;
            tx.execute(
                "INSERT INTO fs_config (key, value) VALUES ('agentfs_last_sync', CAST(unixepoch() AS TEXT))
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [],
            )?;
            tx.commit()
        })();
        self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        result
    }
}

/// Checks what can be checked of `path` without opening it. A process's POSIX record locks
/// on a file go with the first `close` of any descriptor of it, so opening the database here
/// to read its header would drop the locks this process's open connections hold. With their
/// shared lock gone, another process closing its last connection takes the database for
/// unused: it checkpoints and deletes the WAL, and this process's later commits land in the
/// deleted file, unseen by readers and lost in a crash. SQLite checks the header itself at
/// the first read (a file that is not a database fails with SQLITE_NOTADB).
fn check_file(path: &Path, mode: OpenMode) -> Result<(), StoreError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match mode {
                OpenMode::Existing => Err(StoreError::Missing(path.to_path_buf())),
                OpenMode::Create => Ok(()),
            };
        }
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    if metadata.is_dir() || (metadata.len() == 0 && mode == OpenMode::Existing) {
        return Err(StoreError::NotSqlite(path.to_path_buf()));
    }
    Ok(())
}

/// Free pages (of 4 KiB) that make deletes start giving space back: 16 MiB.
pub const RECLAIM_THRESHOLD_PAGES: i64 = 4096;

/// Pages each delete gives back once over the threshold (2 MiB): bounded extra work per call.
pub const RECLAIM_BUDGET_PAGES: u32 = 512;

/// Pages one round of background maintenance gives back (8 MiB), so it holds the write lock
/// only briefly.
pub const MAINTENANCE_BUDGET_PAGES: u32 = 2048;

/// Free pages (1 GiB) from which background maintenance reclaims even while busy.
pub const RECLAIM_URGENT_PAGES: i64 = 262_144;

/// WAL size from which background maintenance checkpoints. High, so a burst of writes runs
/// without one: a checkpoint's fsyncs stall the commits made beside them (they wait on the
/// filesystem's journal), which cost a burst of small copy-ups about a fifth of its time at
/// 8 MiB. An idle mount cuts the WAL back anyway ([`IDLE_WAL_BYTES`]).
pub const CHECKPOINT_WAL_BYTES: u64 = 64 << 20;

/// WAL size above which an idle mount cuts the WAL back to nothing.
pub const IDLE_WAL_BYTES: u64 = 1 << 20;

/// WAL size from which background maintenance forces a complete checkpoint.
pub const WAL_HIGH_WATER_BYTES: u64 = 128 << 20;

/// How long a forced checkpoint waits for readers before trying again later.
const RESTART_WAIT: Duration = Duration::from_millis(200);

/// With background maintenance, connections checkpoint by themselves only when the WAL gets
/// this large (256 MiB): a safety net should the maintenance thread fall behind.
pub const BACKGROUND_AUTOCHECKPOINT_PAGES: i64 = 65536;

fn is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master)", [], |r| {
        r.get(0)
    })
}

/// Per-connection settings. WAL lets readers (the SQL shell) run beside the writer;
/// `synchronous = NORMAL` in WAL mode never loses a committed transaction when a process
/// crashes (only on power loss), and `Store::sync` upgrades that for an explicit fsync.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    // Query planner stability: without it SQLite marks statements whose plan could depend on
    // a bound value and re-prepares them whenever a cached statement is reused, which tripled
    // the cost of a lookup.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal(mode));
    }
    // journal_size_limit: after a checkpoint, cut the WAL back instead of keeping its peak size.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; \
         PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384;",
    )?;
    Ok(())
}

/// Turns SQLite's codes for unusable files into errors that say what is wrong.
fn classify_open_error(path: &Path, e: StoreError) -> StoreError {
    let code = match &e {
        StoreError::Sqlite(s) | StoreError::CorruptData(s) => s.sqlite_error_code(),
        _ => None,
    };
    match code {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotSqlite(path.to_path_buf()),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(path.to_path_buf()),
        Some(rusqlite::ErrorCode::ReadOnly) | Some(rusqlite::ErrorCode::CannotOpen)
            if is_read_only(path) =>
        {
            StoreError::ReadOnly(path.to_path_buf())
        }
        _ => e,
    }
}

/// Whether this process cannot write `path` (or, for a new file, its directory).
fn is_read_only(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let target = if path.exists() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let Ok(c) = std::ffi::CString::new(target.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) with a valid C string.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) != 0 }
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Refuses databases that are newer than us or are not agentfs/SPEC 0.4 sessions.
fn check_kind(conn: &Connection, path: &Path, mode: OpenMode) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > FORMAT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: FORMAT_VERSION,
        });
    }
    let any_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')",
        [],
        |r| r.get(0),
    )?;
    let is_spec = table_exists(conn, "fs_inode")? && table_exists(conn, "fs_dentry")?;
    if (any_table && !is_spec) || (!any_table && mode == OpenMode::Existing) {
        return Err(StoreError::NotSession(path.to_path_buf()));
    }
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path, mode: OpenMode) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == FORMAT_VERSION {
        return Ok(());
    }
    if current > FORMAT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: current,
            known: FORMAT_VERSION,
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current != 0 || mode == OpenMode::Existing {
        check_kind(&tx, path, mode)?;
    }
    for step in &MIGRATIONS[current as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", FORMAT_VERSION)?;
    tx.commit()?;
    Ok(())
}
