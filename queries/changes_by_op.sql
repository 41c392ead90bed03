-- How many changes of each kind, with the first and last time each happened.
SELECT op,
       count(*) AS changes,
       strftime('%Y-%m-%d %H:%M:%S', min(time_ns) / 1e9, 'unixepoch') AS first,
       strftime('%Y-%m-%d %H:%M:%S', max(time_ns) / 1e9, 'unixepoch') AS last
FROM fs_change
GROUP BY op
ORDER BY changes DESC;
