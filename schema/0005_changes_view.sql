-- Version 4 -> 5: fs_changes judges mode and type by the base mode that copy-up records
-- (fs_base_identity.mode, version 4), not by the journal, wherever that mode is known: a
-- chmod and back is no change, and an entry whose type differs from the base's is T.
-- Identities without a mode (copied up before version 4) keep the journal rule.
-- SPEC.md ("Views") defines every column and rule; fs_paths is unchanged.
DROP VIEW IF EXISTS fs_changes;

-- What the session changed against its base, one row per changed path:
-- A added, M modified, D deleted, R renamed (old_path: where it was in the base),
-- T type changed (a base entry was replaced by one of another type).
CREATE VIEW fs_changes AS
WITH
  entry AS MATERIALIZED (
    SELECT p.path, p.ino, p.type, p.size, i.mode
    FROM fs_paths p JOIN fs_inode i ON i.ino = p.ino
  ),
  -- Per inode: its last journal row, and whether its bytes, its mode or owner, or its owner
  -- alone were changed.
  journal AS MATERIALIZED (
    SELECT ino,
           max(seq) AS last_seq,
           max(op IN ('write', 'truncate', 'fallocate')) AS wrote,
           max(op IN ('chmod', 'chown')) AS meta,
           max(op = 'chown') AS owner
    FROM fs_change WHERE ino IS NOT NULL GROUP BY ino
  ),
  -- Base paths deleted without a copy-up: the journal row has a path and no inode.
  removed AS MATERIALIZED (
    SELECT path, max(seq) AS last_seq, max(op = 'rmdir') AS was_dir
    FROM fs_change WHERE ino IS NULL AND op IN ('unlink', 'rmdir') GROUP BY path
  ),
  -- Entries copied up from the base, with what the base had at copy-up. base_type is the
  -- S_IFMT bits of the base entry (a copy keeps its type, so the copy's own type where the
  -- identity predates the mode column). meta: the mode differs from the base's, or the
  -- owner was changed (the base owner is not recorded); by the journal alone without a mode.
  copied AS MATERIALIZED (
    SELECT e.path, e.ino, e.type, e.size,
           b.base_path, b.size AS base_size, b.blake3 AS base_hash,
           coalesce(b.mode, e.mode) & 61440 AS base_type,
           b.mode IS NOT NULL AND (e.mode & 61440) != (b.mode & 61440) AS retyped,
           h.blake3 AS hash,
           j.last_seq, coalesce(j.wrote, 0) AS wrote,
           CASE WHEN b.mode IS NULL THEN coalesce(j.meta, 0)
                ELSE (e.mode & 4095) != (b.mode & 4095) OR coalesce(j.owner, 0)
           END AS meta,
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
    -- A base entry in place of another type than the base's.
    SELECT path, 'T', NULL, type, base_size, size, last_seq, NULL, ino
    FROM copied WHERE path = base_path AND retyped
    UNION ALL
    -- A base entry in place whose bytes or mode/owner differ.
    SELECT path, 'M', NULL, type, base_size, size, last_seq, NULL, ino
    FROM copied
    WHERE path = base_path AND NOT retyped
      AND (meta
           OR type = 'file' AND (size != base_size
                                 OR CASE WHEN hash IS NOT NULL THEN hash IS NOT base_hash
                                         ELSE wrote END))
    UNION ALL
    -- An entry created in the session: new, or standing where a base entry was removed.
    -- Where that base entry was copied up and renamed away, its type is known exactly (M if
    -- the same, else T); where it was deleted without copy-up, the journal only tells a
    -- directory from the rest (M if both are directories or both are not, else T).
    SELECT e.path,
           CASE
             WHEN r.path IS NULL AND moved.ino IS NULL THEN 'A'
             WHEN moved.ino IS NOT NULL
               THEN CASE WHEN (e.mode & 61440) = moved.base_type THEN 'M' ELSE 'T' END
             WHEN (e.type = 'dir') = r.was_dir THEN 'M'
             ELSE 'T'
           END,
           NULL, e.type, moved.size, e.size, j.last_seq, NULL, e.ino
    FROM entry e
    LEFT JOIN journal j ON j.ino = e.ino
    LEFT JOIN removed r ON r.path = e.path
    LEFT JOIN (
      SELECT c.base_path, c.ino, c.base_size AS size, c.base_type
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
