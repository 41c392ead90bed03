-- Changed files whose old or new bytes are binary (not UTF-8 text), with both sizes.
SELECT status, path, human_size(size_before) AS before, human_size(size_after) AS after
FROM fs_changes
WHERE type = 'file' AND status != 'D'
  AND (is_text(content(ino)) = 0
       OR (status IN ('M', 'R') AND is_text(base_content(coalesce(old_path, path))) = 0))
UNION ALL
SELECT status, path, NULL, NULL
FROM fs_changes
WHERE status = 'D' AND is_text(base_content(path)) = 0
ORDER BY path;
