-- Base paths the session deleted, with when.
SELECT path, type, time
FROM fs_changes
WHERE status = 'D'
ORDER BY path;
