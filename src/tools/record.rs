//! The `tool_calls` rows: a call is recorded as pending when it starts and completed with its
//! result or error, status and duration, as the AgentFS SDKs record theirs.

use rusqlite::{Connection, params};

/// Seconds since the epoch, the unit of `tool_calls.started_at` and `completed_at`.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Records the start of call `name` with its JSON `parameters`; returns its id.
pub fn start(conn: &Connection, name: &str, parameters: &str) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO tool_calls (name, parameters, status, started_at) \
         VALUES (?1, ?2, 'pending', ?3)",
        params![name, parameters, now_secs()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records how call `id` ended: its result, or its error.
pub fn finish(
    conn: &Connection,
    id: i64,
    outcome: Result<&str, &str>,
    duration: std::time::Duration,
) -> rusqlite::Result<()> {
    let (status, result, error) = match outcome {
        Ok(r) => ("success", Some(r), None),
        Err(e) => ("error", None, Some(e)),
    };
    conn.execute(
        "UPDATE tool_calls SET status = ?2, result = ?3, error = ?4, completed_at = ?5, \
         duration_ms = ?6 WHERE id = ?1",
        params![
            id,
            status,
            result,
            error,
            now_secs(),
            duration.as_millis() as i64
        ],
    )?;
    Ok(())
}
