//! The tool-call timeline of a session: its `tool_calls` in order, each with the paths its
//! journal rows changed (`agentfs timeline`).

use rusqlite::{Connection, params};

/// Which calls to show.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only calls of this tool.
    pub name: Option<String>,
    /// Only calls with this status (`pending`, `success`, `error`).
    pub status: Option<String>,
    /// Only the newest this many.
    pub limit: Option<u64>,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Call {
    pub id: i64,
    pub name: String,
    pub status: String,
    /// Unix seconds.
    pub started_at: i64,
    /// None while the call runs.
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// The paths the call changed, sorted.
    pub paths: Vec<String>,
}

/// The calls `filter` keeps, oldest first.
pub fn calls(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<Call>> {
    let mut stmt = conn.prepare(include_str!("../queries/timeline.sql"))?;
    let rows = stmt.query_map(
        params![filter.name, filter.status, filter.limit.map(|n| n as i64)],
        |r| {
            let paths: Option<String> = r.get(6)?;
            Ok(Call {
                id: r.get(0)?,
                name: r.get(1)?,
                status: r.get(2)?,
                started_at: r.get(3)?,
                duration_ms: r.get(4)?,
                error: r.get(5)?,
                paths: paths
                    .map(|p| p.lines().map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        },
    )?;
    rows.collect()
}
