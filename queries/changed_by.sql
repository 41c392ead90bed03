-- Which tool calls changed a path (and what they did to it). Argument: the path, e.g. '/src/main.rs'.
SELECT t.id AS call, t.name, t.status,
       strftime('%Y-%m-%d %H:%M:%S', t.started_at, 'unixepoch') AS started,
       c.op, c.old_path
FROM fs_change c JOIN tool_calls t ON t.id = c.tool_call_id
WHERE c.path = ?1 OR c.old_path = ?1
ORDER BY c.seq;
