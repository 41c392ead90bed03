-- Every change to one path, oldest first (also renames from or to it). Argument: the path.
SELECT seq,
       strftime('%Y-%m-%d %H:%M:%f', time_ns / 1e9, 'unixepoch') AS time,
       runner_id AS runner,
       op,
       old_path,
       path
FROM fs_change
WHERE path = ?1 OR old_path = ?1
ORDER BY seq;
