-- Journal rows per runner (the command that made them; NULL: agentfs tools), by kind of change.
SELECT f.runner_id AS runner,
       coalesce(json_extract(r.argv, '$[0]'), '(tools)') AS command,
       f.op,
       count(*) AS changes,
       count(DISTINCT f.path) AS paths
FROM fs_change f
LEFT JOIN fs_runner r ON r.id = f.runner_id
GROUP BY f.runner_id, f.op
ORDER BY f.runner_id, changes DESC;
