-- The unified diff of one changed path against the base. Argument: the path (e.g. /src/main.rs).
SELECT status, path,
       CASE WHEN status = 'D' THEN unified_diff(base_content(path), NULL, path)
            WHEN status = 'A' THEN unified_diff(NULL, content(ino), path)
            ELSE unified_diff(base_content(coalesce(old_path, path)), content(ino), path)
       END AS diff
FROM fs_changes
WHERE path = ?1 OR old_path = ?1;
