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

mod repairs;
mod rules;
mod sql;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

pub use repairs::repair;
pub use rules::check;

/// Problems of one check listed one by one; more are summed up in one extra problem.
pub const MAX_PER_KIND: usize = 100;

/// One thing wrong in the database. As JSON (`agentfs fsck --json`): `kind` (the variant's
/// name, as the text output shows it), `detail` and `repairable`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Problems left after the repair (not repairable, or not repaired).
    pub problems: Vec<Problem>,
    /// What the repair did, in plain words.
    pub repaired: Vec<String>,
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
