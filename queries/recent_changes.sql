-- The last changes, newest first: when, which runner, what, where. Argument: how many (default 20).
SELECT seq,
       strftime('%Y-%m-%d %H:%M:%f', time_ns / 1e9, 'unixepoch') AS time,
       runner_id AS runner,
       op,
       coalesce(old_path || ' -> ', '') || coalesce(path, '') AS path
FROM fs_change
ORDER BY seq DESC
LIMIT coalesce(?1, 20);
