-- The largest regular files with one of their paths. Argument: how many (default 20).
WITH RECURSIVE paths(ino, path) AS (
  SELECT 1, ''
  UNION ALL
  SELECT d.ino, paths.path || '/' || d.name
  FROM fs_dentry d JOIN paths ON d.parent_ino = paths.ino
)
SELECT p.path, i.size, i.nlink
FROM paths p JOIN fs_inode i ON i.ino = p.ino
WHERE (i.mode & 61440) = 32768
ORDER BY i.size DESC, p.path
LIMIT coalesce(?1, 20);
