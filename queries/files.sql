-- Every regular file: one of its paths, its size, links and the blake3 hash of its bytes.
SELECT path_of(ino) AS path, size, nlink, content_hash(ino) AS blake3
FROM fs_inode
WHERE (mode & 61440) = 32768 AND nlink > 0
ORDER BY path;
