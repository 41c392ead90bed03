//! Agents' own hooks (Claude Code, Codex, Gemini CLI): each tool call an agent reports is a
//! `tool_calls` row, pending from its start and completed at its end, and the journal rows
//! its runner made in between are linked to it. The mount daemon records them (inside the
//! sandbox the database is read-only); this module parses and checks what it is sent.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// The most a hook message may hold (an agent's tool input can be a whole file).
pub const MAX_MESSAGE: usize = 1 << 20;

/// The longest tool name accepted.
const MAX_TOOL_NAME: usize = 200;

/// Where the mount daemon of `agentfs run` listens for hook messages, inside the sandbox's
/// private /tmp (the run directory's `tmp/`).
pub const SOCKET_NAME: &str = ".agentfs-hooks.sock";

/// The agents whose hook input is understood.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Agent {
    ClaudeCode,
    Codex,
    Gemini,
}

/// What a hook message says.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub tool: String,
    /// The tool's input, as JSON text.
    pub input: String,
    /// The agent's id for the call, when it gives one.
    pub key: Option<String>,
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Start,
    /// The call ended: its result (JSON text) or its error.
    End(Result<String, String>),
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("the hook input is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the hook input has no {0}")]
    Missing(&'static str),
    #[error("the hook event {0:?} is not a tool call's start or end")]
    OtherEvent(String),
    #[error("the tool name {0:?} is not a tool name (letters, digits, _ . : -, at most 200)")]
    BadToolName(String),
    #[error("the hook message is larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("the session database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Reads the hook input `json` an agent of kind `agent` gave.
pub fn parse(agent: Agent, json: &str) -> Result<HookEvent, HookError> {
    if json.len() > MAX_MESSAGE {
        return Err(HookError::TooLarge);
    }
    let v: Value = serde_json::from_str(json).map_err(HookError::NotJson)?;
    let event = v
        .get("hook_event_name")
        .and_then(Value::as_str)
        .ok_or(HookError::Missing("hook_event_name"))?;
    let (start, failed) = match (agent, event) {
        (Agent::ClaudeCode | Agent::Codex, "PreToolUse") | (Agent::Gemini, "BeforeTool") => {
            (true, false)
        }
        (Agent::ClaudeCode | Agent::Codex, "PostToolUse") | (Agent::Gemini, "AfterTool") => {
            (false, false)
        }
        (Agent::ClaudeCode | Agent::Codex, "PostToolUseFailure") => (false, true),
        (_, other) => return Err(HookError::OtherEvent(other.to_string())),
    };
    let tool = v
        .get("tool_name")
        .and_then(Value::as_str)
        .ok_or(HookError::Missing("tool_name"))?;
    let tool_ok = !tool.is_empty()
        && tool.len() <= MAX_TOOL_NAME
        && tool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if !tool_ok {
        return Err(HookError::BadToolName(tool.chars().take(80).collect()));
    }
    let input = v
        .get("tool_input")
        .cloned()
        .unwrap_or(Value::Null)
        .to_string();
    let key = ["tool_use_id", "tool_call_id"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_string);
    let phase = if start {
        Phase::Start
    } else {
        let response = v.get("tool_response").cloned().unwrap_or(Value::Null);
        let error = v.get("error").and_then(Value::as_str).map(str::to_string);
        let said_failed = response.get("is_error").and_then(Value::as_bool) == Some(true)
            || response.get("success").and_then(Value::as_bool) == Some(false);
        if failed || said_failed || error.is_some() {
            Phase::End(Err(error.unwrap_or_else(|| response.to_string())))
        } else {
            Phase::End(Ok(response.to_string()))
        }
    };
    Ok(HookEvent {
        tool: tool.to_string(),
        input,
        key,
        phase,
    })
}

/// Nanoseconds since the epoch.
fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Records `ev`, reported by an agent of `runner`, in one transaction; the call's id.
pub fn record(conn: &Connection, runner: Option<i64>, ev: &HookEvent) -> Result<i64, HookError> {
    let tx = crate::store::Tx::begin(conn, crate::store::Begin::Immediate)?;
    let now_ns = now_ns();
    let now = now_ns / 1_000_000_000;
    let id = match &ev.phase {
        Phase::Start => {
            conn.execute(
                "INSERT INTO tool_calls (name, parameters, status, started_at) \
                 VALUES (?1, ?2, 'pending', ?3)",
                params![ev.tool, ev.input, now],
            )?;
            let id = conn.last_insert_rowid();
            conn.execute(
                "INSERT INTO fs_hook_call (call_id, runner_id, call_key, start_seq, started_ns) \
                 VALUES (?1, ?2, ?3, (SELECT coalesce(max(seq), 0) FROM fs_change), ?4)",
                params![id, runner, ev.key, now_ns],
            )?;
            id
        }
        Phase::End(outcome) => {
            // The open call of this runner with the agent's id, else its newest open call
            // of that tool.
            let open: Option<(i64, i64, i64)> = conn
                .query_row(
                    "SELECT h.call_id, h.start_seq, h.started_ns FROM fs_hook_call h \
                     JOIN tool_calls t ON t.id = h.call_id \
                     WHERE h.ended = 0 AND h.runner_id IS ?1 \
                       AND (h.call_key = ?2 OR (?2 IS NULL OR h.call_key IS NULL) AND t.name = ?3) \
                     ORDER BY h.call_key IS ?2 DESC, h.call_id DESC LIMIT 1",
                    params![runner, ev.key, ev.tool],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let (result, error, status) = match outcome {
                Ok(r) => (Some(r.as_str()), None, "success"),
                Err(e) => (None, Some(e.as_str()), "error"),
            };
            match open {
                Some((id, start_seq, started_ns)) => {
                    conn.execute(
                        "UPDATE tool_calls SET status = ?2, result = ?3, error = ?4, \
                         completed_at = ?5, duration_ms = ?6 WHERE id = ?1",
                        params![
                            id,
                            status,
                            result,
                            error,
                            now,
                            (now_ns - started_ns).max(0) / 1_000_000
                        ],
                    )?;
                    conn.execute("UPDATE fs_hook_call SET ended = 1 WHERE call_id = ?1", [id])?;
                    conn.execute(
                        "UPDATE fs_change SET tool_call_id = ?1 WHERE seq > ?2 \
                         AND runner_id IS ?3 AND tool_call_id IS NULL",
                        params![id, start_seq, runner],
                    )?;
                    id
                }
                None => {
                    // An end whose start was not seen: recorded as it is, linked to nothing.
                    conn.execute(
                        "INSERT INTO tool_calls (name, parameters, result, error, status, \
                         started_at, completed_at, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)",
                        params![ev.tool, ev.input, result, error, status, now],
                    )?;
                    conn.last_insert_rowid()
                }
            }
        }
    };
    tx.commit()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_events_parse_and_others_are_refused() {
        let pre = r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"t1"}"#;
        let ev = parse(Agent::ClaudeCode, pre).unwrap();
        assert_eq!(ev.tool, "Bash");
        assert_eq!(ev.key.as_deref(), Some("t1"));
        assert_eq!(ev.phase, Phase::Start);
        let post = r#"{"hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{},"tool_response":{"stdout":"x"}}"#;
        assert!(matches!(
            parse(Agent::ClaudeCode, post).unwrap().phase,
            Phase::End(Ok(_))
        ));
        let failed = r#"{"hook_event_name":"PostToolUse","tool_name":"Bash","tool_response":{"is_error":true}}"#;
        assert!(matches!(
            parse(Agent::ClaudeCode, failed).unwrap().phase,
            Phase::End(Err(_))
        ));
        let stop = r#"{"hook_event_name":"Stop"}"#;
        assert!(matches!(
            parse(Agent::ClaudeCode, stop),
            Err(HookError::OtherEvent(_))
        ));
        let bad = r#"{"hook_event_name":"PreToolUse","tool_name":"rm -rf /; x"}"#;
        assert!(matches!(
            parse(Agent::ClaudeCode, bad),
            Err(HookError::BadToolName(_))
        ));
        assert!(matches!(
            parse(Agent::Gemini, "{not json"),
            Err(HookError::NotJson(_))
        ));
        let gemini = r#"{"hook_event_name":"BeforeTool","tool_name":"write_file","tool_input":{}}"#;
        assert_eq!(parse(Agent::Gemini, gemini).unwrap().phase, Phase::Start);
    }
}
