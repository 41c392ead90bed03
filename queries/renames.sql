-- Base entries the session moved: where they were and where they are now.
SELECT old_path, path, type, time
FROM fs_changes
WHERE status = 'R'
ORDER BY old_path;
