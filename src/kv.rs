//! The SPEC 0.4 key-value store (`kv_store`): JSON values under text keys.

use rusqlite::{Connection, OptionalExtension, params};

/// One stored pair with its timestamps (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM kv_store WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Upserts `key`; `value` must already be JSON text (the caller checks).
pub fn set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv_store (key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = unixepoch()",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// Removes `key`; true if it existed.
pub fn delete(conn: &Connection, key: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM kv_store WHERE key = ?1")?
        .execute([key])?
        > 0)
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<KvEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, coalesce(created_at, 0), coalesce(updated_at, 0) FROM kv_store ORDER BY key",
    )?;
    stmt.query_map([], |r| {
        Ok(KvEntry {
            key: r.get(0)?,
            value: r.get(1)?,
            created_at: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?
    .collect()
}
