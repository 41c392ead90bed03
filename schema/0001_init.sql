-- agentfs format version 1.
-- The first block is the AgentFS SPEC 0.4 layout, unchanged; `IF NOT EXISTS` lets the same
-- script upgrade a database written by another SPEC 0.4 implementation (user_version 0).
-- The second block holds tables of our own, described in SPEC.md.

CREATE TABLE IF NOT EXISTS fs_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS fs_inode (
  ino INTEGER PRIMARY KEY AUTOINCREMENT,
  mode INTEGER NOT NULL,
  nlink INTEGER NOT NULL DEFAULT 0,
  uid INTEGER NOT NULL DEFAULT 0,
  gid INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL DEFAULT 0,
  atime INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  rdev INTEGER NOT NULL DEFAULT 0,
  atime_nsec INTEGER NOT NULL DEFAULT 0,
  mtime_nsec INTEGER NOT NULL DEFAULT 0,
  ctime_nsec INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS fs_dentry (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  parent_ino INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  UNIQUE(parent_ino, name)
);
CREATE INDEX IF NOT EXISTS idx_fs_dentry_parent ON fs_dentry(parent_ino, name);

CREATE TABLE IF NOT EXISTS fs_data (
  ino INTEGER NOT NULL,
  chunk_index INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (ino, chunk_index)
);

CREATE TABLE IF NOT EXISTS fs_symlink (ino INTEGER PRIMARY KEY, target TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS fs_whiteout (
  path TEXT PRIMARY KEY,
  parent_path TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_fs_whiteout_parent ON fs_whiteout(parent_path);

CREATE TABLE IF NOT EXISTS fs_origin (delta_ino INTEGER PRIMARY KEY, base_ino INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS fs_overlay_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS kv_store (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  created_at INTEGER DEFAULT (unixepoch()),
  updated_at INTEGER DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS idx_kv_store_created_at ON kv_store(created_at);

CREATE TABLE IF NOT EXISTS tool_calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  parameters TEXT,
  result TEXT,
  error TEXT,
  started_at INTEGER NOT NULL,
  completed_at INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_tool_calls_name ON tool_calls(name);
CREATE INDEX IF NOT EXISTS idx_tool_calls_started_at ON tool_calls(started_at);

-- ---------------------------------------------------------------------------------------------
-- agentfs additions

INSERT OR IGNORE INTO fs_config (key, value) VALUES ('chunk_size', '4096');
INSERT OR IGNORE INTO fs_config (key, value)
  VALUES ('agentfs_created_at', CAST(unixepoch() AS TEXT));

-- The root directory, if this is a new database.
INSERT OR IGNORE INTO fs_inode (ino, mode, nlink, atime, mtime, ctime)
  VALUES (1, 16877, 2, unixepoch(), unixepoch(), unixepoch());

-- Reverse lookup (inode -> its names) for paths in the journal and for link counts, and
-- readdir in creation order so that directory offsets stay stable.
CREATE INDEX IF NOT EXISTS fs_dentry_by_ino ON fs_dentry(ino);
CREATE INDEX IF NOT EXISTS fs_dentry_by_parent_id ON fs_dentry(parent_ino, id);

CREATE TABLE IF NOT EXISTS fs_xattr (
  ino INTEGER NOT NULL,
  name TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (ino, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS fs_runner (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  pid INTEGER NOT NULL,
  argv TEXT NOT NULL,
  cwd TEXT NOT NULL,
  started_at_ns INTEGER NOT NULL,
  ended_at_ns INTEGER,
  exit_status INTEGER
);

CREATE TABLE IF NOT EXISTS fs_change (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ns INTEGER NOT NULL,
  runner_id INTEGER,
  op TEXT NOT NULL,
  ino INTEGER,
  path TEXT,
  old_path TEXT,
  pid INTEGER
);

CREATE TABLE IF NOT EXISTS fs_content_hash (
  ino INTEGER PRIMARY KEY,
  blake3 BLOB NOT NULL,
  size INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS fs_orphan (
  ino INTEGER PRIMARY KEY,
  pid INTEGER NOT NULL,
  since_ns INTEGER NOT NULL
);

-- Overlay: find the delta copy of a base inode; directories that hide the base directory
-- at their path (a base directory was deleted and one of the same name created).
CREATE INDEX IF NOT EXISTS fs_origin_by_base ON fs_origin(base_ino);
CREATE TABLE IF NOT EXISTS fs_opaque (ino INTEGER PRIMARY KEY);

-- What a copied-up entry looked like in the base at copy-up time: to report a file as
-- modified only if it really differs, and to detect that the host changed it since.
CREATE TABLE IF NOT EXISTS fs_base_identity (
  ino INTEGER PRIMARY KEY,
  base_path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  blake3 BLOB
);
