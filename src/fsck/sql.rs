//! The SQL of the checks and repairs: each row selection is shared, so a repair fixes
//! exactly what its check reports.

// File type bits of `fs_inode.mode`, as SQL integer literals.
// S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000.
pub(super) const IS_DIR: &str = "(mode & 61440) = 16384";
pub(super) const IS_REG: &str = "(mode & 61440) = 32768";
pub(super) const IS_LNK: &str = "(mode & 61440) = 40960";
/// FIFO, char device, directory, block device, regular file, symlink, socket.
pub(super) const KNOWN_TYPES: &str = "(4096, 8192, 16384, 24576, 32768, 40960, 49152)";

pub(super) const LOST_FOUND: &str = "lost+found";
/// Mode of a `/lost+found` we create: a directory only its owner can enter.
pub(super) const LOST_FOUND_MODE: i64 = 0o040700;

// ----- shared row selections: each check reports them, each repair fixes exactly them -------

/// `fs_dentry` rows (alias `d`) pointing at a missing inode.
pub(super) const DANGLING: &str = "NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = d.ino)";

/// `fs_dentry` rows (alias `d`) whose parent is missing or not a directory. Entries of a
/// missing root are not counted: the root is reported, and recreated, by itself.
pub(super) const BAD_PARENT: &str = "NOT EXISTS (SELECT 1 FROM fs_inode p WHERE p.ino = d.parent_ino \
     AND (p.mode & 61440) = 16384) \
     AND NOT (d.parent_ino = 1 AND NOT EXISTS (SELECT 1 FROM fs_inode r WHERE r.ino = 1))";

/// Extra names of directories (all but the oldest one in an existing directory) and names of
/// the root (alias `d`).
pub(super) const EXTRA_DIR_NAME: &str = "(d.ino = 1 OR (d.id > (SELECT min(e.id) FROM fs_dentry e \
     WHERE e.ino = d.ino AND EXISTS (SELECT 1 FROM fs_inode q WHERE q.ino = e.parent_ino \
     AND (q.mode & 61440) = 16384)) AND EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = d.ino \
     AND (i.mode & 61440) = 16384)))";

/// Non-directories (alias `i`) without names that no open handle claims.
pub(super) const NAMELESS: &str = "i.ino <> 1 AND NOT EXISTS (SELECT 1 FROM fs_dentry d WHERE d.ino = i.ino) \
     AND NOT EXISTS (SELECT 1 FROM fs_orphan o WHERE o.ino = i.ino)";

/// The link count an inode (alias `i`) should have.
pub(super) const EXPECTED_NLINK: &str = "CASE WHEN (i.mode & 61440) = 16384 THEN 2 + (SELECT count(*) \
     FROM fs_dentry d JOIN fs_inode c ON c.ino = d.ino WHERE d.parent_ino = i.ino \
     AND (c.mode & 61440) = 16384) ELSE (SELECT count(*) FROM fs_dentry d WHERE d.ino = i.ino) END";

/// Inodes (alias `i`) whose nlink is wrong. A directory may count fewer links than ours
/// (2 + its subdirectories), down to 1: other SPEC writers (the AgentFS SDKs) make
/// directories with 1 and do not count subdirectories; more, or 0, is wrong. A nameless
/// inode outside `fs_orphan` is reported as unreachable instead; its count is fixed once it
/// has a name again. A root that is not a directory is reported as such, not by its link
/// count.
pub(super) fn wrong_nlink_filter() -> String {
    nlink_filter(&format!(
        "(CASE WHEN (i.mode & 61440) = 16384 THEN NOT (i.nlink BETWEEN 1 AND ({EXPECTED_NLINK})) \
         ELSE i.nlink IS NOT ({EXPECTED_NLINK}) END)"
    ))
}

/// What the repair of link counts sets: every count that differs from ours, the accepted
/// lower directory counts included (ours are right for every reader).
pub(super) fn inexact_nlink_filter() -> String {
    nlink_filter(&format!("i.nlink IS NOT ({EXPECTED_NLINK})"))
}

fn nlink_filter(differs: &str) -> String {
    format!(
        "{differs} AND NOT ((i.mode & 61440) <> 16384 AND {NAMELESS}) \
         AND NOT (i.ino = 1 AND (i.mode & 61440) <> 16384)"
    )
}

/// `fs_orphan` rows (alias `o`) whose inode has names or does not exist.
pub(super) const STALE_ORPHAN: &str = "(EXISTS (SELECT 1 FROM fs_dentry d WHERE d.ino = o.ino) \
     OR NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = o.ino))";

/// `fs_data` rows (alias `f`) of missing inodes or of inodes that are not regular files.
pub(super) const ORPHAN_CHUNK: &str = "NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino \
     AND (i.mode & 61440) = 32768)";

/// `fs_data` rows (alias `f`, joined with its regular file `i`) past the end of the file;
/// `?1` is the chunk size.
/// Files with a negative size are left alone (reported as such).
pub(super) const BEYOND_SIZE: &str =
    "i.size >= 0 AND (f.chunk_index < 0 OR f.chunk_index * ?1 >= i.size)";

/// Chunks (alias `f`, file `i`) longer than their place in the file allows; `?1` chunk size.
pub(super) const TOO_LONG_CHUNK: &str = "f.chunk_index >= 0 AND f.chunk_index * ?1 < i.size \
     AND octet_length(f.data) > min(?1, i.size - f.chunk_index * ?1)";

/// Chunks (alias `f`, file `i`) before the file's last one that are not full; `?1` chunk size.
pub(super) const SHORT_CHUNK: &str = "f.chunk_index >= 0 AND i.size > 0 \
     AND f.chunk_index < (i.size - 1) / ?1 AND octet_length(f.data) < ?1";

/// The size an inode (alias `i`) that is not a regular file should have; NULL for files.
pub(super) const EXPECTED_OTHER_SIZE: &str = "CASE WHEN (i.mode & 61440) = 32768 THEN NULL \
     WHEN (i.mode & 61440) = 40960 THEN (SELECT octet_length(s.target) FROM fs_symlink s \
     WHERE s.ino = i.ino) ELSE 0 END";

/// `fs_content_hash` rows (alias `h`) that no longer describe their file.
pub(super) const STALE_HASH: &str = "EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = h.ino) \
     AND NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = h.ino AND (i.mode & 61440) = 32768 \
     AND i.size = h.size)";

/// Whiteout paths that resolve to an entry of the session: walks `fs_dentry` from the root one
/// component at a time. Paths and names are compared as bytes; a component matches a TEXT
/// name (UTF-8) or a BLOB name (any other bytes), the two forms names are stored in.
pub(super) const SHADOWED_WHITEOUTS: &str = "WITH RECURSIVE walk(path, rest, ino, steps) AS ( \
       SELECT path, substr(CAST(path AS BLOB), 2), 1, 0 FROM fs_whiteout \
       WHERE substr(CAST(path AS BLOB), 1, 1) = x'2f' \
     UNION ALL \
       SELECT w.path, \
         CASE WHEN instr(w.rest, x'2f') > 0 THEN substr(w.rest, instr(w.rest, x'2f') + 1) \
           ELSE x'' END, \
         d.ino, w.steps + 1 \
       FROM walk w JOIN fs_dentry d ON d.parent_ino = w.ino AND d.name IN ( \
         CAST(CASE WHEN instr(w.rest, x'2f') > 0 \
           THEN substr(w.rest, 1, instr(w.rest, x'2f') - 1) ELSE w.rest END AS TEXT), \
         CASE WHEN instr(w.rest, x'2f') > 0 \
           THEN substr(w.rest, 1, instr(w.rest, x'2f') - 1) ELSE w.rest END) \
       WHERE length(w.rest) > 0 AND w.steps < 4096 \
   ) SELECT DISTINCT path FROM walk WHERE steps > 0 AND length(rest) = 0";

/// Directories that cannot be reached by walking names down from the root, open orphans or
/// the tops of detached trees (inodes none of whose names sits in an existing directory):
/// what is left hangs in or below a cycle of directories.
pub(super) fn cycle_dirs_sql() -> String {
    format!(
        "WITH RECURSIVE reach(ino) AS ( \
           SELECT 1 \
           UNION SELECT ino FROM fs_orphan \
           UNION SELECT i.ino FROM fs_inode i WHERE NOT EXISTS (SELECT 1 FROM fs_dentry d \
             WHERE d.ino = i.ino AND NOT ({BAD_PARENT})) \
           UNION SELECT d.ino FROM fs_dentry d JOIN reach r ON d.parent_ino = r.ino \
         ) \
         SELECT i.ino, d.parent_ino, d.name FROM fs_inode i \
           JOIN fs_dentry d ON d.id = (SELECT min(e.id) FROM fs_dentry e WHERE e.ino = i.ino) \
         WHERE {IS_DIR} AND i.ino NOT IN (SELECT ino FROM reach) ORDER BY i.ino"
    )
}

pub(super) fn missing_inode(col: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = {col})")
}
