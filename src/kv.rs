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

/// Why a pair may not be stored: the store holds JSON values under non-empty keys.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("the key must not be empty")]
    EmptyKey,
    /// The value does not parse as JSON; the message suggests quoting it as a JSON string.
    #[error(
        "value for {key:?} is not JSON ({error}); quote text as a JSON string, e.g. '\"{quoted}\"'"
    )]
    NotJson {
        key: String,
        error: serde_json::Error,
        /// The value with its single quotes dropped, to show inside a shell-quoted example.
        quoted: String,
    },
}

/// Checks a pair before [`set`]: a non-empty key and a value that is JSON text.
pub fn check(key: &str, value: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(_) => Ok(()),
        Err(error) => Err(KvError::NotJson {
            key: key.to_string(),
            error,
            quoted: value.replace('\'', ""),
        }),
    }
}

pub fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM kv_store WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// Upserts `key`; `value` must already be JSON text (the caller checks, see [`check`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_json_values_under_non_empty_keys() {
        assert!(check("k", r#"{"a": [1, "x"]}"#).is_ok());
        assert!(check("k", "42").is_ok());
        assert!(matches!(check("", "1"), Err(KvError::EmptyKey)));
        let err = check("k", "it's").unwrap_err().to_string();
        assert!(err.starts_with(r#"value for "k" is not JSON ("#), "{err}");
        assert!(err.ends_with(r#"e.g. '"its"'"#), "{err}");
    }
}
