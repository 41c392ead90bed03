//! Opens the connections `agentfs sql` and `agentfs diff` query through: read-only unless
//! asked, WAL readers that never block a running mount, with the SQL functions registered.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{OpenMode, Store, StoreError};

/// How long the cache refresh may wait for a mount's write lock before it gives up.
const REFRESH_WAIT: Duration = Duration::from_millis(500);

/// A session opened for queries.
pub struct Session {
    /// The connection statements run on: read-only unless opened writable.
    pub conn: Connection,
    /// Keeps the session open read-write (checked, migrated, its WAL files in place) while
    /// `conn` is a read-only reader; it holds no transaction.
    pub writer: Option<Store>,
}

/// Opens `path` (an existing session): checks and migrates it like every agentfs command,
/// refreshes the `fs_content_hash` cache `fs_changes` relies on (best effort: skipped if a
/// mount holds the write lock for long), then returns a connection for queries.
pub fn open(path: &Path, writable: bool) -> Result<Session, StoreError> {
    let store = Store::open(path, OpenMode::Existing)?;
    let base = crate::diff::base_dir(&store.conn)?;
    store.conn.busy_timeout(REFRESH_WAIT)?;
    if let Err(e) = crate::diff::refresh_hashes(&store.conn) {
        eprintln!(
            "agentfs: note: content hashes not refreshed ({e}); fs_changes may list rewritten files as modified"
        );
    }
    store.conn.busy_timeout(Duration::from_secs(60))?;
    let session = if writable {
        Session {
            conn: store.conn,
            writer: None,
        }
    } else {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        Session {
            conn,
            writer: Some(store),
        }
    };
    super::functions::register(&session.conn, base)?;
    Ok(session)
}
