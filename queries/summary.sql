-- The session at a glance: base, size of the delta, changes by status, journal, runners.
SELECT 'base' AS item, coalesce((SELECT value FROM fs_overlay_config WHERE key = 'base_path'), '(none)') AS value
UNION ALL SELECT 'created', strftime('%Y-%m-%d %H:%M:%S', (SELECT value FROM fs_config WHERE key = 'agentfs_created_at'), 'unixepoch')
UNION ALL SELECT 'entries in the delta', (SELECT count(*) FROM fs_paths)
UNION ALL SELECT 'bytes in the delta', human_size((SELECT coalesce(sum(length(data)), 0) FROM fs_data))
UNION ALL SELECT 'changes (' || status || ')', count(*) FROM (SELECT status FROM fs_changes) GROUP BY status
UNION ALL SELECT 'journal rows', (SELECT count(*) FROM fs_change)
UNION ALL SELECT 'last change', (SELECT strftime('%Y-%m-%d %H:%M:%S', max(time_ns) / 1e9, 'unixepoch') FROM fs_change)
UNION ALL SELECT 'runners', (SELECT count(*) FROM fs_runner)
UNION ALL SELECT 'tool calls', (SELECT count(*) FROM tool_calls)
UNION ALL SELECT 'kv keys', (SELECT count(*) FROM kv_store);
