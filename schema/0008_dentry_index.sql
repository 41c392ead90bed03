-- Version 7 -> 8: readdir's index names only its column, parent_ino. An SQLite index holds
-- the rowid after its columns, so (parent_ino) serves `parent_ino = ? AND id > ? ORDER BY id`
-- as (parent_ino, id) did; but the engine of the AgentFS SDKs (Turso) does not keep an
-- index that names the rowid column up to date when it writes fs_dentry, which left
-- sessions they wrote failing SQLite's integrity check. Dropping the index also drops any
-- such damage.
DROP INDEX IF EXISTS fs_dentry_by_parent_id;
CREATE INDEX IF NOT EXISTS fs_dentry_by_parent ON fs_dentry(parent_ino);
