-- The key-value store: every key with its JSON value and when it was last set.
SELECT key, value, strftime('%Y-%m-%d %H:%M:%S', updated_at, 'unixepoch') AS updated
FROM kv_store
ORDER BY key;
