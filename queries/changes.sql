-- What the session changed against its base (A/M/D/R/T), with sizes, time and runner.
SELECT status, path, old_path, type,
       human_size(size_before) AS before, human_size(size_after) AS after,
       time, runner
FROM fs_changes
ORDER BY path;
