-- The tool calls in order, with the paths each changed. Arguments: a name to keep (NULL: all),
-- a status to keep (NULL: all), how many, newest kept (NULL: all).
SELECT * FROM (
  SELECT t.id, t.name, t.status, t.started_at, t.duration_ms, t.error,
         (SELECT group_concat(path, char(10)) FROM (
            SELECT DISTINCT c.path FROM fs_change c
            WHERE c.tool_call_id = t.id AND c.path IS NOT NULL ORDER BY c.path)) AS paths
  FROM tool_calls t
  WHERE (?1 IS NULL OR t.name = ?1) AND (?2 IS NULL OR t.status = ?2)
  ORDER BY t.id DESC
  LIMIT coalesce(?3, -1)
) ORDER BY id;
