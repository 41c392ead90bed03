-- Version 2 -> 3: read-only views over the session, in plain SQL (no agentfs functions), so
-- the stock sqlite3 shell can query them too. SPEC.md ("Views") defines every column and the
-- exact rules of fs_changes, including what the database alone cannot tell.

-- Every entry of the session delta with its full path (one row per name: a file with two
-- hard links has two rows). The root itself is not listed.
CREATE VIEW IF NOT EXISTS fs_paths AS
WITH RECURSIVE tree(ino, path) AS (
  SELECT 1, ''
  UNION ALL
  SELECT d.ino, tree.path || '/' || d.name
  FROM fs_dentry d JOIN tree ON d.parent_ino = tree.ino
  -- A directory cycle breaks rule 4 of SPEC.md; the guard keeps a damaged database finite.
  WHERE length(tree.path) < 65536
)
SELECT t.path AS path,
       t.ino AS ino,
       CASE i.mode & 61440
         WHEN 32768 THEN 'file' WHEN 16384 THEN 'dir' WHEN 40960 THEN 'symlink'
         WHEN 4096 THEN 'fifo' WHEN 8192 THEN 'chardev' WHEN 24576 THEN 'blockdev'
         WHEN 49152 THEN 'socket' ELSE 'unknown'
       END AS type,
       i.size AS size,
       printf('%04o', i.mode & 4095) AS mode,
       i.nlink AS nlink,
       i.uid AS uid,
       i.gid AS gid,
       strftime('%Y-%m-%d %H:%M:%S', i.mtime, 'unixepoch') AS mtime,
       strftime('%Y-%m-%d %H:%M:%S', i.ctime, 'unixepoch') AS ctime,
       i.mtime * 1000000000 + i.mtime_nsec AS mtime_ns,
       s.target AS target
FROM tree t
JOIN fs_inode i ON i.ino = t.ino
LEFT JOIN fs_symlink s ON s.ino = t.ino
WHERE t.ino != 1;

-- What the session changed against its base, one row per changed path:
-- A added, M modified, D deleted, R renamed (old_path: where it was in the base),
-- T type changed (a base entry was replaced by one of another type).
CREATE VIEW IF NOT EXISTS fs_changes AS
WITH
  entry AS MATERIALIZED (SELECT path, ino, type, size FROM fs_paths),
  -- Per inode: its last journal row, and whether its bytes or its mode/owner were changed.
  journal AS MATERIALIZED (
    SELECT ino,
           max(seq) AS last_seq,
           max(op IN ('write', 'truncate', 'fallocate')) AS wrote,
           max(op IN ('chmod', 'chown')) AS meta
    FROM fs_change WHERE ino IS NOT NULL GROUP BY ino
  ),
  -- Base paths deleted without a copy-up: the journal row has a path and no inode.
  removed AS MATERIALIZED (
    SELECT path, max(seq) AS last_seq, max(op = 'rmdir') AS was_dir
    FROM fs_change WHERE ino IS NULL AND op IN ('unlink', 'rmdir') GROUP BY path
  ),
  -- Entries copied up from the base, with what the base had at copy-up.
  copied AS MATERIALIZED (
    SELECT e.path, e.ino, e.type, e.size,
           b.base_path, b.size AS base_size, b.blake3 AS base_hash,
           h.blake3 AS hash,
           j.last_seq, coalesce(j.wrote, 0) AS wrote, coalesce(j.meta, 0) AS meta,
           EXISTS (SELECT 1 FROM entry e2 WHERE e2.ino = e.ino AND e2.path = b.base_path)
             AS at_base_path
    FROM entry e
    JOIN fs_base_identity b ON b.ino = e.ino
    LEFT JOIN fs_content_hash h ON h.ino = e.ino AND h.size = e.size
    LEFT JOIN journal j ON j.ino = e.ino
  ),
  changed AS (
    -- A base entry now under another name only.
    SELECT path, 'R' AS status, base_path AS old_path, type, base_size AS size_before,
           size AS size_after, last_seq, NULL AS deleted_at, ino
    FROM copied WHERE path != base_path AND NOT at_base_path
    UNION ALL
    -- A further name (hard link) of a base entry that keeps its own.
    SELECT path, 'A', NULL, type, NULL, size, last_seq, NULL, ino
    FROM copied WHERE path != base_path AND at_base_path
    UNION ALL
    -- A base entry in place whose bytes or mode/owner differ.
    SELECT path, 'M', NULL, type, base_size, size, last_seq, NULL, ino
    FROM copied
    WHERE path = base_path
      AND (meta
           OR type = 'file' AND (size != base_size
                                 OR CASE WHEN hash IS NOT NULL THEN hash IS NOT base_hash
                                         ELSE wrote END))
    UNION ALL
    -- An entry created in the session: new, or standing where a base entry was removed
    -- (M if both are directories or both are not, else T).
    SELECT e.path,
           CASE
             WHEN r.path IS NULL AND moved.ino IS NULL THEN 'A'
             WHEN (e.type = 'dir') = coalesce(r.was_dir, moved.was_dir) THEN 'M'
             ELSE 'T'
           END,
           NULL, e.type, moved.size, e.size, j.last_seq, NULL, e.ino
    FROM entry e
    LEFT JOIN journal j ON j.ino = e.ino
    LEFT JOIN removed r ON r.path = e.path
    LEFT JOIN (
      SELECT c.base_path, c.ino, c.base_size AS size, c.type = 'dir' AS was_dir
      FROM copied c WHERE NOT c.at_base_path
    ) moved ON moved.base_path = e.path
    WHERE NOT EXISTS (SELECT 1 FROM fs_base_identity b WHERE b.ino = e.ino)
    UNION ALL
    -- A base path deleted in the session (not one renamed away).
    SELECT w.path, 'D', NULL, CASE WHEN r.was_dir THEN 'dir' END, NULL, NULL, r.last_seq,
           w.created_at, NULL
    FROM fs_whiteout w
    LEFT JOIN removed r ON r.path = w.path
    WHERE NOT EXISTS (SELECT 1 FROM copied c WHERE c.base_path = w.path AND NOT c.at_base_path)
  )
SELECT c.path AS path,
       c.status AS status,
       c.old_path AS old_path,
       c.type AS type,
       c.size_before AS size_before,
       c.size_after AS size_after,
       coalesce(strftime('%Y-%m-%d %H:%M:%f', j.time_ns / 1e9, 'unixepoch'),
                strftime('%Y-%m-%d %H:%M:%S', c.deleted_at, 'unixepoch')) AS time,
       j.runner_id AS runner,
       c.ino AS ino,
       j.time_ns AS time_ns
FROM changed c
LEFT JOIN fs_change j ON j.seq = c.last_seq
ORDER BY c.path;
