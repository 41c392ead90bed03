-- Version 3 -> 4: partial copy-up, and the base mode in a copied-up entry's identity.
-- fs_base_backing: a regular file copied up from a large base file keeps in fs_data only the
--   chunks changed since; a chunk it lacks that starts before valid_len reads the base file
--   (fs_base_identity.base_path, which must still have the recorded size and mtime). Truncating
--   lowers valid_len, so bytes cut off never come back; at 0 the row goes.
CREATE TABLE IF NOT EXISTS fs_base_backing (
  ino INTEGER PRIMARY KEY,
  valid_len INTEGER NOT NULL
);
ALTER TABLE fs_base_identity ADD COLUMN mode INTEGER;
