-- Version 8 -> 9: tool calls an agent's own hooks report (`agentfs hook`), while they run.
-- fs_hook_call: for each such call, the runner whose agent made it, the agent's id for the
--   call (or NULL when it gives none), when it started (ns, for its duration) and the last
--   journal row before it started: when the call ends, the journal rows the runner made
--   since are linked to it (fs_change.tool_call_id).
CREATE TABLE IF NOT EXISTS fs_hook_call (
  call_id INTEGER PRIMARY KEY,
  runner_id INTEGER,
  call_key TEXT,
  start_seq INTEGER NOT NULL,
  started_ns INTEGER NOT NULL,
  ended INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS fs_hook_call_open ON fs_hook_call(runner_id, ended);
