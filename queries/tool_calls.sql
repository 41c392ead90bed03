-- The recorded tool calls, newest first. Argument: how many (default 20).
SELECT id, name,
       strftime('%Y-%m-%d %H:%M:%S', started_at, 'unixepoch') AS started,
       duration_ms,
       status || coalesce(': ' || error, '') AS outcome,
       parameters
FROM tool_calls
ORDER BY id DESC
LIMIT coalesce(?1, 20);
