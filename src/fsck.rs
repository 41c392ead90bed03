//! Checks a session database against the rules of SPEC.md and repairs what can be repaired
//! without losing data.
//!
//! Every check is one set-based SQL query, so a database with hundreds of thousands of inodes
//! is checked in a few scans. At most [`MAX_PER_KIND`] problems of one query are listed one by
//! one; the rest are summed up in one more problem of the same kind.
//!
//! [`repair`] runs in one `BEGIN IMMEDIATE` transaction. It never deletes an inode: an inode
//! that lost its names is given one in `/lost+found` (as `#<ino>`, like e2fsck). It deletes only
//! rows that belong to nothing (names of missing inodes, chunks of missing files, chunks past a
//! file's end, side rows of missing inodes, stale caches). When `PRAGMA integrity_check` fails
//! it changes nothing: SQL-level repairs on a damaged file could lose more; recover the file
//! first (`sqlite3 broken.db .recover | sqlite3 fixed.db`).
//!
//! The database must have format version 1 (open it once with `store::Store::open`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

/// Problems of one check listed one by one; more are summed up in one extra problem.
pub const MAX_PER_KIND: usize = 100;

/// One thing wrong in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What is wrong, in plain words ("inode 12 has nlink 3 but 2 names point at it").
    pub detail: String,
    /// Whether [`repair`] fixes it.
    pub repairable: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)?;
        if !self.repairable {
            write!(f, " (not repairable)")?;
        }
        Ok(())
    }
}

/// What kind of rule a [`Problem`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// `PRAGMA integrity_check` found damage in the SQLite file itself (not repairable here).
    Integrity,
    /// Inode 1 is missing (repairable: recreated) or is not a directory (not repairable).
    MissingRoot,
    /// `fs_config.chunk_size` is missing or not a positive integer (not repairable).
    BadChunkSize,
    /// An inode's mode has no known file type (not repairable).
    BadMode,
    /// A directory entry points at an inode that does not exist (repair: delete the entry).
    DanglingDentry,
    /// A directory entry's parent does not exist or is not a directory (repair: delete the
    /// entry; an inode left without names goes to `/lost+found`).
    MissingParent,
    /// A stored name is empty, too long, contains `/` or NUL, or is `.`/`..` (not repairable).
    BadName,
    /// A directory has more than one name, or the root has a name (repair: keep the oldest
    /// name of the directory, delete the others; delete names of the root).
    DirectoryHardLink,
    /// `nlink` disagrees with the names (files) or subdirectories (directories) (repair: set it).
    WrongNlink,
    /// An inode other than the root has no name and is not an open orphan (repair: name it
    /// `/lost+found/#<ino>`).
    UnreachableInode,
    /// A directory cannot be reached from the root because it is in (or below) a cycle of
    /// directories (repair: move one directory of each cycle to `/lost+found/#<ino>`).
    DirectoryCycle,
    /// An `fs_orphan` row for an inode that has names or does not exist (repair: delete it).
    StaleOrphanRow,
    /// `fs_data` rows of an inode that does not exist or is not a regular file (repair: delete).
    OrphanChunks,
    /// Chunks that start at or after the end of their file (repair: delete them).
    ChunkBeyondSize,
    /// A chunk longer than the file's size or the chunk size allows (repair: trim it); a
    /// symlink, directory or special file whose size is wrong (repair: set it); a negative size
    /// (not repairable).
    SizeMismatch,
    /// A chunk before a file's last one is shorter than the chunk size (repair: pad it with
    /// zeros, which is what the missing bytes read as).
    ShortChunk,
    /// A symlink inode has no `fs_symlink` row (not repairable: the target is lost).
    MissingSymlinkTarget,
    /// An `fs_symlink`, `fs_xattr`, `fs_content_hash`, `fs_origin` or `fs_base_backing` row
    /// for an inode that does not exist (repair: delete it).
    RowForMissingInode,
    /// An `fs_content_hash` row for a size the file no longer has, or for a non-file
    /// (repair: delete it; it is a cache).
    StaleContentHash,
    /// A whiteout for a path that exists in the session (repair: delete the whiteout).
    ShadowedWhiteout,
    /// A journal row with an unknown op or a time that is not a positive integer (report only).
    JournalSanity,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Problems left after the repair (not repairable, or not repaired).
    pub problems: Vec<Problem>,
    /// What the repair did, in plain words.
    pub repaired: Vec<String>,
}

// File type bits of `fs_inode.mode`, as SQL integer literals.
// S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000.
const IS_DIR: &str = "(mode & 61440) = 16384";
const IS_REG: &str = "(mode & 61440) = 32768";
const IS_LNK: &str = "(mode & 61440) = 40960";
/// FIFO, char device, directory, block device, regular file, symlink, socket.
const KNOWN_TYPES: &str = "(4096, 8192, 16384, 24576, 32768, 40960, 49152)";

/// The journal ops SPEC.md lists.
const KNOWN_OPS: &str = "('create', 'mknod', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', \
     'rename', 'exchange', 'write', 'truncate', 'fallocate', 'chmod', 'chown', 'utimens', \
     'setxattr', 'removexattr', 'apply')";

const LOST_FOUND: &str = "lost+found";
/// Mode of a `/lost+found` we create: a directory only its owner can enter.
const LOST_FOUND_MODE: i64 = 0o040700;

// ----- shared row selections: each check reports them, each repair fixes exactly them -------

/// `fs_dentry` rows (alias `d`) pointing at a missing inode.
const DANGLING: &str = "NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = d.ino)";

/// `fs_dentry` rows (alias `d`) whose parent is missing or not a directory. Entries of a
/// missing root are not counted: the root is reported, and recreated, by itself.
const BAD_PARENT: &str = "NOT EXISTS (SELECT 1 FROM fs_inode p WHERE p.ino = d.parent_ino \
     AND (p.mode & 61440) = 16384) \
     AND NOT (d.parent_ino = 1 AND NOT EXISTS (SELECT 1 FROM fs_inode r WHERE r.ino = 1))";

/// Extra names of directories (all but the oldest one in an existing directory) and names of
/// the root (alias `d`).
const EXTRA_DIR_NAME: &str = "(d.ino = 1 OR (d.id > (SELECT min(e.id) FROM fs_dentry e \
     WHERE e.ino = d.ino AND EXISTS (SELECT 1 FROM fs_inode q WHERE q.ino = e.parent_ino \
     AND (q.mode & 61440) = 16384)) AND EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = d.ino \
     AND (i.mode & 61440) = 16384)))";

/// Non-directories (alias `i`) without names that no open handle claims.
const NAMELESS: &str = "i.ino <> 1 AND NOT EXISTS (SELECT 1 FROM fs_dentry d WHERE d.ino = i.ino) \
     AND NOT EXISTS (SELECT 1 FROM fs_orphan o WHERE o.ino = i.ino)";

/// The link count an inode (alias `i`) should have.
const EXPECTED_NLINK: &str = "CASE WHEN (i.mode & 61440) = 16384 THEN 2 + (SELECT count(*) \
     FROM fs_dentry d JOIN fs_inode c ON c.ino = d.ino WHERE d.parent_ino = i.ino \
     AND (c.mode & 61440) = 16384) ELSE (SELECT count(*) FROM fs_dentry d WHERE d.ino = i.ino) END";

/// Inodes (alias `i`) whose nlink is wrong. A nameless inode outside `fs_orphan` is reported
/// as unreachable instead; its count is fixed once it has a name again. A root that is not a
/// directory is reported as such, not by its link count.
fn wrong_nlink_filter() -> String {
    format!(
        "i.nlink IS NOT ({EXPECTED_NLINK}) AND NOT ((i.mode & 61440) <> 16384 AND {NAMELESS}) \
         AND NOT (i.ino = 1 AND (i.mode & 61440) <> 16384)"
    )
}

/// `fs_orphan` rows (alias `o`) whose inode has names or does not exist.
const STALE_ORPHAN: &str = "(EXISTS (SELECT 1 FROM fs_dentry d WHERE d.ino = o.ino) \
     OR NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = o.ino))";

/// `fs_data` rows (alias `f`) of missing inodes or of inodes that are not regular files.
const ORPHAN_CHUNK: &str = "NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino \
     AND (i.mode & 61440) = 32768)";

/// `fs_data` rows (alias `f`, joined with its regular file `i`) past the end of the file;
/// `?1` is the chunk size.
/// Files with a negative size are left alone (reported as such).
const BEYOND_SIZE: &str = "i.size >= 0 AND (f.chunk_index < 0 OR f.chunk_index * ?1 >= i.size)";

/// Chunks (alias `f`, file `i`) longer than their place in the file allows; `?1` chunk size.
const TOO_LONG_CHUNK: &str = "f.chunk_index >= 0 AND f.chunk_index * ?1 < i.size \
     AND octet_length(f.data) > min(?1, i.size - f.chunk_index * ?1)";

/// Chunks (alias `f`, file `i`) before the file's last one that are not full; `?1` chunk size.
const SHORT_CHUNK: &str = "f.chunk_index >= 0 AND i.size > 0 \
     AND f.chunk_index < (i.size - 1) / ?1 AND octet_length(f.data) < ?1";

/// The size an inode (alias `i`) that is not a regular file should have; NULL for files.
const EXPECTED_OTHER_SIZE: &str = "CASE WHEN (i.mode & 61440) = 32768 THEN NULL \
     WHEN (i.mode & 61440) = 40960 THEN (SELECT octet_length(s.target) FROM fs_symlink s \
     WHERE s.ino = i.ino) ELSE 0 END";

/// `fs_content_hash` rows (alias `h`) that no longer describe their file.
const STALE_HASH: &str = "EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = h.ino) \
     AND NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = h.ino AND (i.mode & 61440) = 32768 \
     AND i.size = h.size)";

/// Whiteout paths that resolve to an entry of the session: walks `fs_dentry` from the root one
/// component at a time. Paths and names are compared as bytes; a component matches a TEXT
/// name (UTF-8) or a BLOB name (any other bytes), the two forms names are stored in.
const SHADOWED_WHITEOUTS: &str = "WITH RECURSIVE walk(path, rest, ino, steps) AS ( \
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
fn cycle_dirs_sql() -> String {
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

// ----- check ----------------------------------------------------------------------------------

/// Checks the database; returns every problem found (empty when the database is consistent).
pub fn check(conn: &Connection) -> rusqlite::Result<Vec<Problem>> {
    let mut c = Checker {
        conn,
        out: Vec::new(),
        damaged: false,
    };
    c.integrity()?;
    c.run("the root", |c| c.root())?;
    let chunk_size = c.chunk_size()?;
    c.run("file types", |c| c.modes())?;
    c.run("directory entries", |c| c.dentries())?;
    c.run("link counts", |c| c.nlinks())?;
    c.run("reachability", |c| c.reachability())?;
    c.run("orphans", |c| c.orphans())?;
    c.run("chunks", |c| c.chunks(chunk_size))?;
    c.run("sizes", |c| c.sizes())?;
    c.run("symlinks and side tables", |c| c.side_rows())?;
    c.run("whiteouts", |c| c.whiteouts())?;
    c.run("the journal", |c| c.journal())?;
    Ok(c.out)
}

struct Checker<'a> {
    conn: &'a Connection,
    out: Vec<Problem>,
    /// The integrity check failed: later checks may hit damaged pages.
    damaged: bool,
}

impl Checker<'_> {
    fn push(&mut self, kind: ProblemKind, repairable: bool, detail: String) {
        self.out.push(Problem {
            kind,
            detail,
            repairable,
        });
    }

    /// Runs one group of checks; on a damaged file its errors become problems.
    fn run(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        match f(self) {
            Err(e) if self.damaged => {
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("could not check {what}: {e}"),
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Runs `sql` and adds one problem per row (at most [`MAX_PER_KIND`], then a summary).
    /// `detail` reads the row's columns from index 1 on (column 0 is the total count).
    fn report<P: rusqlite::Params>(
        &mut self,
        kind: ProblemKind,
        repairable: bool,
        sql: &str,
        params: P,
        detail: impl Fn(&Row<'_>) -> rusqlite::Result<String>,
    ) -> rusqlite::Result<()> {
        let wrapped = format!(
            "SELECT count(*) OVER (), q.* FROM ({sql}) q LIMIT {}",
            MAX_PER_KIND + 1
        );
        let mut stmt = self.conn.prepare(&wrapped)?;
        let mut rows = stmt.query(params)?;
        let mut total = 0i64;
        let mut listed = 0usize;
        while let Some(row) = rows.next()? {
            total = row.get(0)?;
            if listed < MAX_PER_KIND {
                let d = detail(row)?;
                self.push(kind, repairable, d);
                listed += 1;
            }
        }
        let more = total - listed as i64;
        if more > 0 {
            self.push(
                kind,
                repairable,
                format!("... and {more} more problems like the ones above"),
            );
        }
        Ok(())
    }

    fn integrity(&mut self) -> rusqlite::Result<()> {
        let messages: Vec<String> = {
            let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?
        };
        for m in messages {
            if m != "ok" {
                self.damaged = true;
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("SQLite integrity check: {m}"),
                );
            }
        }
        Ok(())
    }

    fn root(&mut self) -> rusqlite::Result<()> {
        match root_mode(self.conn)? {
            None => self.push(
                ProblemKind::MissingRoot,
                true,
                "the root directory (inode 1) does not exist".into(),
            ),
            Some(mode) if !is_dir_mode(mode) => self.push(
                ProblemKind::MissingRoot,
                false,
                format!("inode 1, the root, is not a directory (mode {mode:#o})"),
            ),
            Some(_) => {}
        }
        Ok(())
    }

    fn chunk_size(&mut self) -> rusqlite::Result<Option<i64>> {
        let cs = match read_chunk_size(self.conn) {
            Ok(cs) => cs,
            Err(e) if self.damaged => {
                self.push(
                    ProblemKind::Integrity,
                    false,
                    format!("could not read the chunk size: {e}"),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match cs {
            Ok(n) => Ok(Some(n)),
            Err(what) => {
                self.push(
                    ProblemKind::BadChunkSize,
                    false,
                    format!(
                        "fs_config chunk_size is {what}, not a positive integer; \
                         file contents cannot be checked"
                    ),
                );
                Ok(None)
            }
        }
    }

    fn modes(&mut self) -> rusqlite::Result<()> {
        let sql =
            format!("SELECT ino, mode FROM fs_inode WHERE (mode & 61440) NOT IN {KNOWN_TYPES}");
        self.report(ProblemKind::BadMode, false, &sql, [], |r| {
            Ok(format!(
                "inode {} has mode {:#o}, which is no known file type",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?
            ))
        })
    }

    fn dentries(&mut self) -> rusqlite::Result<()> {
        let sql = format!("SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE {DANGLING}");
        self.report(ProblemKind::DanglingDentry, true, &sql, [], |r| {
            Ok(format!(
                "entry {} in directory {} points at inode {}, which does not exist",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = format!(
            "SELECT d.name, d.parent_ino, d.ino, p.mode FROM fs_dentry d \
             LEFT JOIN fs_inode p ON p.ino = d.parent_ino WHERE {BAD_PARENT}"
        );
        self.report(ProblemKind::MissingParent, true, &sql, [], |r| {
            let parent: i64 = r.get(2)?;
            let why = match r.get::<_, Option<i64>>(4)? {
                None => "does not exist".to_string(),
                Some(mode) => format!("is not a directory (mode {mode:#o})"),
            };
            Ok(format!(
                "entry {} for inode {} is in inode {parent}, which {why}",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = "SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE \
             typeof(d.name) NOT IN ('text', 'blob') \
             OR octet_length(d.name) NOT BETWEEN 1 AND 255 \
             OR instr(CAST(d.name AS BLOB), x'2f') > 0 OR instr(CAST(d.name AS BLOB), x'00') > 0 \
             OR CAST(d.name AS BLOB) IN (x'2e', x'2e2e')";
        self.report(ProblemKind::BadName, false, sql, [], |r| {
            Ok(format!(
                "entry {} in directory {} (inode {}) is not a valid file name",
                show_name(r.get_ref(1)?),
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })?;

        let sql = format!(
            "SELECT d.name, d.parent_ino, d.ino FROM fs_dentry d WHERE {EXTRA_DIR_NAME} \
             AND NOT ({DANGLING}) AND NOT ({BAD_PARENT})"
        );
        self.report(ProblemKind::DirectoryHardLink, true, &sql, [], |r| {
            let ino: i64 = r.get(3)?;
            let name = show_name(r.get_ref(1)?);
            let parent: i64 = r.get(2)?;
            Ok(if ino == 1 {
                format!("the root directory has a name: entry {name} in directory {parent}")
            } else {
                format!(
                    "directory {ino} has more than one name: entry {name} in directory \
                     {parent} is an extra one"
                )
            })
        })
    }

    fn nlinks(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino, i.nlink, {EXPECTED_NLINK}, {IS_DIR} FROM fs_inode i WHERE {}",
            wrong_nlink_filter()
        );
        self.report(ProblemKind::WrongNlink, true, &sql, [], |r| {
            let (ino, nlink, want): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(if r.get::<_, bool>(4)? {
                format!(
                    "directory {ino} has nlink {nlink} but should have {want} \
                     (2 + {} subdirectories)",
                    want - 2
                )
            } else {
                format!("inode {ino} has nlink {nlink} but {want} names point at it")
            })
        })
    }

    fn reachability(&mut self) -> rusqlite::Result<()> {
        let sql =
            format!("SELECT i.ino, i.mode, i.size FROM fs_inode i WHERE {NAMELESS} ORDER BY i.ino");
        self.report(ProblemKind::UnreachableInode, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            Ok(format!(
                "{} {ino} ({} bytes) has no name and is not open \
                 (it belongs in /lost+found/#{ino})",
                kind_word(r.get(2)?),
                r.get::<_, i64>(3)?
            ))
        })?;
        let sql = cycle_dirs_sql();
        self.report(ProblemKind::DirectoryCycle, true, &sql, [], |r| {
            Ok(format!(
                "directory {} (entry {} in directory {}) cannot be reached from the root: \
                 it is in or below a cycle of directories",
                r.get::<_, i64>(1)?,
                show_name(r.get_ref(3)?),
                r.get::<_, i64>(2)?
            ))
        })
    }

    fn orphans(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT o.ino, (SELECT count(*) FROM fs_dentry d WHERE d.ino = o.ino), \
             EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = o.ino) \
             FROM fs_orphan o WHERE {STALE_ORPHAN}"
        );
        self.report(ProblemKind::StaleOrphanRow, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            Ok(if r.get::<_, bool>(3)? {
                format!(
                    "inode {ino} is listed as an open orphan but {} names point at it",
                    r.get::<_, i64>(2)?
                )
            } else {
                format!("inode {ino} is listed as an open orphan but does not exist")
            })
        })
    }

    fn chunks(&mut self, chunk_size: Option<i64>) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT f.ino, count(*), (SELECT mode FROM fs_inode i WHERE i.ino = f.ino) \
             FROM fs_data f WHERE {ORPHAN_CHUNK} GROUP BY f.ino"
        );
        self.report(ProblemKind::OrphanChunks, true, &sql, [], |r| {
            let ino: i64 = r.get(1)?;
            let n: i64 = r.get(2)?;
            Ok(match r.get::<_, Option<i64>>(3)? {
                None => format!("{n} data chunks belong to inode {ino}, which does not exist"),
                Some(mode) => format!(
                    "{n} data chunks belong to inode {ino}, which is a {} and has no contents",
                    kind_word(mode)
                ),
            })
        })?;
        let Some(cs) = chunk_size else {
            return Ok(());
        };
        let sql = format!(
            "SELECT f.ino, count(*), i.size, min(f.chunk_index) FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {BEYOND_SIZE} GROUP BY f.ino"
        );
        self.report(ProblemKind::ChunkBeyondSize, true, &sql, [cs], |r| {
            Ok(format!(
                "file {} has {} bytes but {} data chunks from index {} on lie past its end",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(4)?
            ))
        })?;
        let sql = format!(
            "SELECT f.ino, f.chunk_index, octet_length(f.data), \
             min(?1, i.size - f.chunk_index * ?1), i.size FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {TOO_LONG_CHUNK}"
        );
        self.report(ProblemKind::SizeMismatch, true, &sql, [cs], |r| {
            Ok(format!(
                "chunk {} of file {} holds {} bytes but only {} fit \
                 (file size {}, chunk size {cs})",
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?
            ))
        })?;
        let sql = format!(
            "SELECT f.ino, f.chunk_index, octet_length(f.data) FROM fs_data f \
             JOIN fs_inode i ON i.ino = f.ino WHERE {IS_REG} AND {SHORT_CHUNK}"
        );
        self.report(ProblemKind::ShortChunk, true, &sql, [cs], |r| {
            Ok(format!(
                "chunk {} of file {} holds {} bytes but is not the last one, so it should \
                 hold {cs}",
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?
            ))
        })
    }

    fn sizes(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino, i.mode, i.size, {EXPECTED_OTHER_SIZE} AS want FROM fs_inode i \
             WHERE want IS NOT NULL AND i.size IS NOT want"
        );
        self.report(ProblemKind::SizeMismatch, true, &sql, [], |r| {
            let mode: i64 = r.get(2)?;
            let want: i64 = r.get(4)?;
            let why = if is_lnk_mode(mode) {
                "its target length"
            } else {
                "it has no contents"
            };
            Ok(format!(
                "{} {} has size {} but should have {want} ({why})",
                kind_word(mode),
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(3)?
            ))
        })?;
        self.report(
            ProblemKind::SizeMismatch,
            false,
            "SELECT ino, size FROM fs_inode WHERE size < 0",
            [],
            |r| {
                Ok(format!(
                    "inode {} has a negative size ({})",
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?
                ))
            },
        )
    }

    fn side_rows(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT i.ino FROM fs_inode i WHERE {IS_LNK} \
             AND NOT EXISTS (SELECT 1 FROM fs_symlink s WHERE s.ino = i.ino)"
        );
        self.report(ProblemKind::MissingSymlinkTarget, false, &sql, [], |r| {
            Ok(format!(
                "symlink {} has no target (no fs_symlink row)",
                r.get::<_, i64>(1)?
            ))
        })?;
        let sql = format!(
            "SELECT 'fs_symlink', s.ino, NULL FROM fs_symlink s WHERE {m} \
             UNION ALL SELECT 'fs_xattr', s.ino, s.name FROM fs_xattr s WHERE {m} \
             UNION ALL SELECT 'fs_content_hash', s.ino, NULL FROM fs_content_hash s WHERE {m} \
             UNION ALL SELECT 'fs_origin', s.delta_ino, NULL FROM fs_origin s WHERE {mo} \
             UNION ALL SELECT 'fs_base_backing', s.ino, NULL FROM fs_base_backing s WHERE {m}",
            m = missing_inode("s.ino"),
            mo = missing_inode("s.delta_ino"),
        );
        self.report(ProblemKind::RowForMissingInode, true, &sql, [], |r| {
            let table: String = r.get(1)?;
            let ino: i64 = r.get(2)?;
            Ok(match r.get_ref(3)? {
                ValueRef::Null => {
                    format!("{table} has a row for inode {ino}, which does not exist")
                }
                name => format!(
                    "{table} has attribute {} for inode {ino}, which does not exist",
                    show_name(name)
                ),
            })
        })?;
        let sql = format!(
            "SELECT h.ino, h.size, (SELECT size FROM fs_inode i WHERE i.ino = h.ino) \
             FROM fs_content_hash h WHERE {STALE_HASH}"
        );
        self.report(ProblemKind::StaleContentHash, true, &sql, [], |r| {
            Ok(format!(
                "the cached content hash of inode {} is for {} bytes but the inode is not a \
                 file of that size (size {})",
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?
            ))
        })
    }

    fn whiteouts(&mut self) -> rusqlite::Result<()> {
        self.report(
            ProblemKind::ShadowedWhiteout,
            true,
            SHADOWED_WHITEOUTS,
            [],
            |r| {
                Ok(format!(
                    "whiteout {} hides a base path but the session has an entry there",
                    show_name(r.get_ref(1)?)
                ))
            },
        )
    }

    fn journal(&mut self) -> rusqlite::Result<()> {
        let sql = format!(
            "SELECT seq, op, time_ns FROM fs_change WHERE op IS NULL OR op NOT IN {KNOWN_OPS} \
             OR typeof(time_ns) <> 'integer' OR time_ns <= 0"
        );
        self.report(ProblemKind::JournalSanity, false, &sql, [], |r| {
            let op = match r.get_ref(2)? {
                ValueRef::Null => "no op".to_string(),
                v => format!("op {}", show_name(v)),
            };
            let time = match r.get_ref(3)? {
                ValueRef::Integer(t) => t.to_string(),
                ValueRef::Null => "NULL".to_string(),
                v => show_name(v),
            };
            Ok(format!(
                "journal row {} has {op} and time_ns {time} (expected a known op and a \
                 positive time)",
                r.get::<_, i64>(1)?
            ))
        })
    }
}

fn missing_inode(col: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = {col})")
}

fn root_mode(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT mode FROM fs_inode WHERE ino = 1", [], |r| r.get(0))
        .optional()
}

/// The chunk size, or a description of the bad value found.
fn read_chunk_size(conn: &Connection) -> rusqlite::Result<Result<i64, String>> {
    let mut stmt = conn.prepare("SELECT value FROM fs_config WHERE key = 'chunk_size'")?;
    let mut rows = stmt.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(Err("missing".into()));
    };
    Ok(match row.get_ref(0)? {
        ValueRef::Integer(n) if n > 0 => Ok(n),
        ValueRef::Text(t) => match std::str::from_utf8(t).ok().map(|s| s.trim().parse::<i64>()) {
            Some(Ok(n)) if n > 0 => Ok(n),
            _ => Err(show_name(ValueRef::Text(t))),
        },
        ValueRef::Integer(n) => Err(n.to_string()),
        v => Err(format!("a {:?} value", v.data_type())),
    })
}

fn is_dir_mode(mode: i64) -> bool {
    mode & 0o170000 == 0o040000
}

fn is_lnk_mode(mode: i64) -> bool {
    mode & 0o170000 == 0o120000
}

fn kind_word(mode: i64) -> &'static str {
    match mode & 0o170000 {
        0o040000 => "directory",
        0o100000 => "file",
        0o120000 => "symlink",
        0o010000 => "fifo",
        0o140000 => "socket",
        0o020000 => "character device",
        0o060000 => "block device",
        _ => "inode of unknown type",
    }
}

/// A stored name (TEXT or BLOB) for a message: quoted, with non-UTF-8 bytes escaped.
fn show_name(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => format!("{s:?}"),
            Err(_) => format!("\"{}\"", b.escape_ascii()),
        },
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(f) => f.to_string(),
    }
}

// ----- repair ---------------------------------------------------------------------------------

/// Checks, repairs what can be repaired without losing data (in one `BEGIN IMMEDIATE`
/// transaction), and checks again. `problems` holds what is left.
pub fn repair(conn: &mut Connection) -> rusqlite::Result<Report> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before = check(&tx)?;
    if before.iter().any(|p| p.kind == ProblemKind::Integrity) {
        // Damaged pages: do not write; the caller sees the problems unchanged.
        drop(tx);
        return Ok(Report {
            problems: before,
            repaired: Vec::new(),
        });
    }
    let mut r = Repairer {
        conn: &tx,
        done: Vec::new(),
        now: crate::vfs::Timestamp::now(),
    };
    if before.iter().any(|p| p.repairable) {
        let found: HashSet<ProblemKind> = before.iter().map(|p| p.kind).collect();
        r.all(&found)?;
    }
    let repaired = r.done;
    tx.commit()?;
    let problems = check(conn)?;
    Ok(Report { problems, repaired })
}

struct Repairer<'a> {
    conn: &'a Connection,
    done: Vec<String>,
    now: crate::vfs::Timestamp,
}

impl Repairer<'_> {
    /// Runs `sql` (with `params`); if it changed rows, notes `what(n)`.
    fn exec<P: rusqlite::Params>(
        &mut self,
        sql: &str,
        params: P,
        what: impl FnOnce(usize) -> String,
    ) -> rusqlite::Result<usize> {
        let n = self.conn.execute(sql, params)?;
        if n > 0 {
            self.done.push(what(n));
        }
        Ok(n)
    }

    /// Journals the removal of the `fs_dentry` rows (alias `d`) matching `filter`, so mounts
    /// of the session drop what they cached about them.
    fn journal_unlinks(&self, filter: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 SELECT ?1, 'unlink', d.ino, NULL, ?2 FROM fs_dentry d WHERE {filter}"
            ),
            params![self.now.as_nanos(), std::process::id() as i64],
        )?;
        Ok(())
    }

    /// Runs the repairs of the problem kinds `found`, in an order where each step sees the
    /// results of the earlier ones (names first, link counts last).
    fn all(&mut self, found: &HashSet<ProblemKind>) -> rusqlite::Result<()> {
        use ProblemKind as K;
        let has = |k: ProblemKind| found.contains(&k);
        let now = self.now;
        // Whether names were added or removed: link counts and lost+found must follow.
        let mut names_changed = false;
        let root = root_mode(self.conn)?;
        if root.is_none() {
            self.exec(
                "INSERT INTO fs_inode (ino, mode, nlink, atime, mtime, ctime, atime_nsec, \
                 mtime_nsec, ctime_nsec) VALUES (1, 16877, 2, ?1, ?1, ?1, ?2, ?2, ?2)",
                params![now.sec, now.nsec as i64],
                |_| "created the missing root directory (inode 1)".into(),
            )?;
            names_changed = true;
        }
        let root_is_dir = root.is_none_or(is_dir_mode);

        // Names that lead nowhere or hang in nothing.
        if has(K::DanglingDentry) {
            self.journal_unlinks(DANGLING)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {DANGLING}"),
                [],
                |n| format!("deleted {n} directory entries that pointed at missing inodes"),
            )? > 0;
        }
        if has(K::MissingParent) {
            self.journal_unlinks(BAD_PARENT)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {BAD_PARENT}"),
                [],
                |n| {
                    format!(
                        "deleted {n} directory entries whose parent was missing or not a \
                         directory (inodes left without a name go to /{LOST_FOUND})"
                    )
                },
            )? > 0;
        }
        // After the two above, so the oldest name kept is a valid one.
        if has(K::DirectoryHardLink) || names_changed {
            self.journal_unlinks(EXTRA_DIR_NAME)?;
            names_changed |= self.exec(
                &format!("DELETE FROM fs_dentry AS d WHERE {EXTRA_DIR_NAME}"),
                [],
                |n| format!("deleted {n} extra names of directories (each keeps its oldest name)"),
            )? > 0;
        }

        // Rows that belong to nothing, and caches that are out of date.
        if has(K::StaleOrphanRow) {
            self.exec(
                &format!("DELETE FROM fs_orphan AS o WHERE {STALE_ORPHAN}"),
                [],
                |n| {
                    format!(
                        "deleted {n} stale fs_orphan rows (their inodes have names or are gone)"
                    )
                },
            )?;
        }
        if has(K::OrphanChunks) {
            self.exec(
                &format!("DELETE FROM fs_data AS f WHERE {ORPHAN_CHUNK}"),
                [],
                |n| {
                    format!(
                        "deleted {n} data chunks that belonged to missing inodes or to inodes \
                         that are not regular files"
                    )
                },
            )?;
        }
        if has(K::RowForMissingInode) {
            for (table, col) in [
                ("fs_symlink", "ino"),
                ("fs_xattr", "ino"),
                ("fs_content_hash", "ino"),
                ("fs_origin", "delta_ino"),
                ("fs_base_backing", "ino"),
            ] {
                self.exec(
                    &format!(
                        "DELETE FROM {table} AS s WHERE {}",
                        missing_inode(&format!("s.{col}"))
                    ),
                    [],
                    |n| format!("deleted {n} {table} rows of missing inodes"),
                )?;
            }
        }
        if has(K::StaleContentHash) {
            self.exec(
                &format!("DELETE FROM fs_content_hash AS h WHERE {STALE_HASH}"),
                [],
                |n| format!("deleted {n} out-of-date cached content hashes"),
            )?;
        }

        // Contents: only with a chunk size we trust.
        let chunks = has(K::ChunkBeyondSize) || has(K::SizeMismatch) || has(K::ShortChunk);
        if chunks && let Ok(cs) = read_chunk_size(self.conn)? {
            self.exec(
                &format!(
                    "DELETE FROM fs_data AS f WHERE EXISTS (SELECT 1 FROM fs_inode i \
                     WHERE i.ino = f.ino AND {IS_REG} AND {BEYOND_SIZE})"
                ),
                [cs],
                |n| format!("deleted {n} data chunks that lay past the end of their files"),
            )?;
            self.exec(
                &format!(
                    "UPDATE fs_data AS f SET data = substr(CAST(f.data AS BLOB), 1, \
                     (SELECT min(?1, i.size - f.chunk_index * ?1) FROM fs_inode i \
                      WHERE i.ino = f.ino)) \
                     WHERE EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino AND {IS_REG} \
                     AND {TOO_LONG_CHUNK})"
                ),
                [cs],
                |n| format!("trimmed {n} data chunks to the file size or the chunk size"),
            )?;
            self.exec(
                &format!(
                    "UPDATE fs_data AS f SET data = CAST(CAST(f.data AS BLOB) \
                     || zeroblob(?1 - octet_length(f.data)) AS BLOB) \
                     WHERE EXISTS (SELECT 1 FROM fs_inode i WHERE i.ino = f.ino AND {IS_REG} \
                     AND {SHORT_CHUNK})"
                ),
                [cs],
                |n| {
                    format!(
                        "padded {n} short data chunks with zeros to the chunk size (they read \
                         the same)"
                    )
                },
            )?;
        }
        if has(K::SizeMismatch) {
            self.exec(
                &format!(
                    "UPDATE fs_inode AS i SET size = {EXPECTED_OTHER_SIZE} \
                     WHERE ({EXPECTED_OTHER_SIZE}) IS NOT NULL \
                     AND i.size IS NOT ({EXPECTED_OTHER_SIZE})"
                ),
                [],
                |n| {
                    format!(
                        "set the size of {n} symlinks, directories or special files \
                         (target length, or 0)"
                    )
                },
            )?;
        }

        if root_is_dir && (has(K::UnreachableInode) || has(K::DirectoryCycle) || names_changed) {
            names_changed |= self.lost_and_found()?;
        }

        // After lost+found, whose name could shadow a whiteout too.
        if has(K::ShadowedWhiteout) || names_changed {
            self.exec(
                &format!("DELETE FROM fs_whiteout WHERE path IN ({SHADOWED_WHITEOUTS})"),
                [],
                |n| format!("deleted {n} whiteouts of paths that exist in the session"),
            )?;
        }

        // Link counts last: every change of names above is in them.
        if has(K::WrongNlink) || names_changed {
            self.exec(
                &format!(
                    "UPDATE fs_inode AS i SET nlink = {EXPECTED_NLINK} WHERE {}",
                    wrong_nlink_filter()
                ),
                [],
                |n| format!("set the link count of {n} inodes"),
            )?;
        }
        Ok(())
    }

    /// Gives inodes without names, and one directory of each unreachable cycle, a name in
    /// `/lost+found`.
    /// Returns whether it added or moved names.
    fn lost_and_found(&mut self) -> rusqlite::Result<bool> {
        let nameless: i64 = self.conn.query_row(
            &format!("SELECT count(*) FROM fs_inode i WHERE {NAMELESS}"),
            [],
            |r| r.get(0),
        )?;
        let cycles = self.cycles()?;
        if nameless == 0 && cycles.is_empty() {
            return Ok(false);
        }
        let Some(lf) = self.lost_found_dir()? else {
            return Ok(false);
        };
        let (t, pid) = (self.now.as_nanos(), std::process::id() as i64);
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 SELECT ?2, 'link', i.ino, '/{LOST_FOUND}/#' || i.ino, ?3 FROM fs_inode i \
                 WHERE {NAMELESS} AND NOT EXISTS (SELECT 1 FROM fs_dentry e \
                 WHERE e.parent_ino = ?1 AND e.name = '#' || i.ino)"
            ),
            params![lf, t, pid],
        )?;
        self.exec(
            &format!(
                "INSERT INTO fs_dentry (name, parent_ino, ino) \
                 SELECT '#' || i.ino, ?1, i.ino FROM fs_inode i WHERE {NAMELESS} \
                 ON CONFLICT DO NOTHING"
            ),
            [lf],
            |n| format!("moved {n} inodes without a name to /{LOST_FOUND}/#<ino>"),
        )?;
        let mut moved = Vec::new();
        for ino in cycles {
            let n = self.conn.execute(
                "UPDATE OR IGNORE fs_dentry SET parent_ino = ?1, name = '#' || ?2 \
                 WHERE id = (SELECT min(id) FROM fs_dentry WHERE ino = ?2)",
                params![lf, ino],
            )?;
            if n > 0 {
                self.conn.execute(
                    &format!(
                        "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                         VALUES (?1, 'rename', ?2, '/{LOST_FOUND}/#' || ?2, ?3)"
                    ),
                    params![t, ino, pid],
                )?;
                moved.push(ino.to_string());
            }
        }
        if !moved.is_empty() {
            self.done.push(format!(
                "broke {} cycles of directories by moving directory {} to /{LOST_FOUND}",
                moved.len(),
                moved.join(", ")
            ));
        }
        Ok(true)
    }

    /// One directory (the smallest inode) of each cycle of directories that the root cannot
    /// reach. The unreachable directories are few; finding cycles in them is a graph walk.
    fn cycles(&self) -> rusqlite::Result<Vec<i64>> {
        let parent: BTreeMap<i64, i64> = {
            let mut stmt = self.conn.prepare(&cycle_dirs_sql())?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        // 0 = not seen, 1 = on the current walk, 2 = done.
        let mut state: HashMap<i64, u8> = HashMap::new();
        let mut picks = Vec::new();
        for &start in parent.keys() {
            let mut walk = Vec::new();
            let mut cur = start;
            loop {
                match state.get(&cur).copied().unwrap_or(0) {
                    0 => {
                        state.insert(cur, 1);
                        walk.push(cur);
                        match parent.get(&cur) {
                            Some(&p) => cur = p,
                            None => break,
                        }
                    }
                    1 => {
                        // `cur` closes a cycle: the walk from its first visit on.
                        if let Some(pos) = walk.iter().position(|&w| w == cur)
                            && let Some(&min) = walk[pos..].iter().min()
                        {
                            picks.push(min);
                        }
                        break;
                    }
                    _ => break,
                }
            }
            for w in walk {
                state.insert(w, 2);
            }
        }
        Ok(picks)
    }

    /// The inode of `/lost+found`, created (mode 0o040700) if missing; `None` if the name is
    /// taken by something that is not a directory.
    fn lost_found_dir(&mut self) -> rusqlite::Result<Option<i64>> {
        let existing: Option<(i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT d.ino, i.mode FROM fs_dentry d LEFT JOIN fs_inode i ON i.ino = d.ino \
                 WHERE d.parent_ino = 1 AND d.name = ?1",
                [LOST_FOUND],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((ino, Some(mode))) if is_dir_mode(mode) => return Ok(Some(ino)),
            Some(_) => return Ok(None),
            None => {}
        }
        let now = self.now;
        self.conn.execute(
            "INSERT INTO fs_inode (mode, nlink, atime, mtime, ctime, atime_nsec, mtime_nsec, \
             ctime_nsec) VALUES (?1, 2, ?2, ?2, ?2, ?3, ?3, ?3)",
            params![LOST_FOUND_MODE, now.sec, now.nsec as i64],
        )?;
        let ino = self.conn.last_insert_rowid();
        self.conn.execute(
            "INSERT INTO fs_dentry (name, parent_ino, ino) VALUES (?1, 1, ?2)",
            params![LOST_FOUND, ino],
        )?;
        self.conn.execute(
            "UPDATE fs_inode SET mtime = ?1, ctime = ?1, mtime_nsec = ?2, ctime_nsec = ?2 \
             WHERE ino = 1",
            params![now.sec, now.nsec as i64],
        )?;
        self.conn.execute(
            &format!(
                "INSERT INTO fs_change (time_ns, op, ino, path, pid) \
                 VALUES (?1, 'mkdir', ?2, '/{LOST_FOUND}', ?3)"
            ),
            params![now.as_nanos(), ino, std::process::id() as i64],
        )?;
        self.done.push(format!(
            "created /{LOST_FOUND} (inode {ino}, mode {LOST_FOUND_MODE:#o})"
        ));
        Ok(Some(ino))
    }
}
