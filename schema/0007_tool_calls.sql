-- Version 6 -> 7: tool calls as the AgentFS SDKs record them, and which call made a change.
-- tool_calls: a call is recorded when it starts ('pending') and completed with 'success' or
--   'error'; completed_at and duration_ms stay NULL until then. SQLite cannot drop a NOT NULL
--   constraint, so the table is rebuilt, keeping its rows (each of which had completed).
-- fs_change.tool_call_id: the tool call (`agentfs serve mcp`) a change was made for, if any.
CREATE TABLE tool_calls_v7 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  parameters TEXT,
  result TEXT,
  error TEXT,
  status TEXT NOT NULL DEFAULT 'pending',
  started_at INTEGER NOT NULL,
  completed_at INTEGER,
  duration_ms INTEGER
);
INSERT INTO tool_calls_v7
    (id, name, parameters, result, error, status, started_at, completed_at, duration_ms)
  SELECT id, name, parameters, result, error,
         CASE WHEN error IS NULL THEN 'success' ELSE 'error' END,
         started_at, completed_at, duration_ms
  FROM tool_calls;
DROP TABLE tool_calls;
ALTER TABLE tool_calls_v7 RENAME TO tool_calls;
CREATE INDEX IF NOT EXISTS idx_tool_calls_name ON tool_calls(name);
CREATE INDEX IF NOT EXISTS idx_tool_calls_started_at ON tool_calls(started_at);
ALTER TABLE fs_change ADD COLUMN tool_call_id INTEGER;
