//! Row-level helpers shared by the operations: inodes, directory entries, the journal.
//! Each takes the open transaction; none commits.

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{VfsError, VfsResult};
use super::journal::JournalOp;
use super::names;
use super::types::{Attr, FileKind, Ino, Timestamp};

/// The `fs_inode` columns [`attr_from_row`] reads, in its order.
pub const ATTR_COLUMNS: &str = "i.mode, i.nlink, i.uid, i.gid, i.size, i.atime, i.atime_nsec, \
     i.mtime, i.mtime_nsec, i.ctime, i.ctime_nsec, i.rdev";

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

/// Builds an [`Attr`] from [`ATTR_COLUMNS`] starting at column `first` of `r`.
pub fn attr_from_row(r: &rusqlite::Row<'_>, first: usize, ino: Ino) -> rusqlite::Result<Attr> {
    let col = |i: usize| first + i;
    let mode = r.get::<_, i64>(col(0))? as u32;
    let size = r.get::<_, i64>(col(4))?.max(0) as u64;
    Ok(Attr {
        ino,
        // A type we do not know (a foreign writer's bug) reads as a regular file rather
        // than failing every listing of its directory.
        kind: FileKind::from_mode(mode).unwrap_or(FileKind::File),
        perm: mode & 0o7777,
        nlink: r.get::<_, i64>(col(1))?.max(0) as u32,
        uid: r.get::<_, i64>(col(2))? as u32,
        gid: r.get::<_, i64>(col(3))? as u32,
        size,
        blocks: size.div_ceil(512),
        atime: ts(r.get(col(5))?, r.get(col(6))?),
        mtime: ts(r.get(col(7))?, r.get(col(8))?),
        ctime: ts(r.get(col(9))?, r.get(col(10))?),
        rdev: r.get::<_, i64>(col(11))? as u32,
    })
}

/// The attributes of `ino`, or `NotFound`.
pub fn attr(conn: &Connection, ino: Ino) -> VfsResult<Attr> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTR_COLUMNS} FROM fs_inode i WHERE i.ino = ?1"
    ))?;
    stmt.query_row([ino.0 as i64], |r| attr_from_row(r, 0, ino))
        .optional()?
        .ok_or(VfsError::NotFound)
}

/// The inode a name in `parent` points at, if any.
pub fn child(conn: &Connection, parent: Ino, name: &[u8]) -> VfsResult<Option<Ino>> {
    let mut stmt =
        conn.prepare_cached("SELECT ino FROM fs_dentry WHERE parent_ino = ?1 AND name = ?2")?;
    let ino = stmt
        .query_row(params![parent.0 as i64, names::to_sql(name)], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?;
    Ok(ino.map(|i| Ino(i as u64)))
}

/// The attributes of the entry `name` in `parent`, in one indexed query.
pub fn child_attr(conn: &Connection, parent: Ino, name: &[u8]) -> VfsResult<Option<Attr>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT i.ino, {ATTR_COLUMNS} FROM fs_inode i WHERE i.ino = \
         (SELECT d.ino FROM fs_dentry d WHERE d.parent_ino = ?1 AND d.name = ?2)"
    ))?;
    Ok(stmt
        .query_row(params![parent.0 as i64, names::to_sql(name)], |r| {
            let ino = Ino(r.get::<_, i64>(0)? as u64);
            attr_from_row(r, 1, ino)
        })
        .optional()?)
}

/// Loads `ino` and fails with `NotDir` unless it is a directory.
pub fn dir_attr(conn: &Connection, ino: Ino) -> VfsResult<Attr> {
    let a = attr(conn, ino)?;
    if a.kind != FileKind::Dir {
        return Err(VfsError::NotDir);
    }
    Ok(a)
}

/// Column values of a new `fs_inode` row; times are all set to the creation time.
pub struct NewInode {
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
}

pub fn insert_inode(conn: &Connection, new: &NewInode, now: Timestamp) -> VfsResult<Ino> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO fs_inode (mode, nlink, uid, gid, size, rdev, atime, mtime, ctime, \
         atime_nsec, mtime_nsec, ctime_nsec) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8, ?8, ?8)",
    )?;
    stmt.execute(params![
        new.mode as i64,
        new.nlink as i64,
        new.uid as i64,
        new.gid as i64,
        new.size as i64,
        new.rdev as i64,
        now.sec,
        now.nsec as i64
    ])?;
    Ok(Ino(conn.last_insert_rowid() as u64))
}

pub fn insert_dentry(conn: &Connection, parent: Ino, name: &[u8], ino: Ino) -> VfsResult<()> {
    let mut stmt =
        conn.prepare_cached("INSERT INTO fs_dentry (name, parent_ino, ino) VALUES (?1, ?2, ?3)")?;
    stmt.execute(params![names::to_sql(name), parent.0 as i64, ino.0 as i64])?;
    Ok(())
}

pub fn delete_dentry(conn: &Connection, parent: Ino, name: &[u8]) -> VfsResult<()> {
    let mut stmt =
        conn.prepare_cached("DELETE FROM fs_dentry WHERE parent_ino = ?1 AND name = ?2")?;
    stmt.execute(params![parent.0 as i64, names::to_sql(name)])?;
    Ok(())
}

/// Adds `delta` to the link count of `ino`; with `touch`, also sets ctime. A directory keeps
/// at least 1: sessions written by other SPEC writers (the AgentFS SDKs) do not count
/// subdirectories, so removing one must not take a live directory's count to 0.
pub fn add_nlink(conn: &Connection, ino: Ino, delta: i64, now: Option<Timestamp>) -> VfsResult<()> {
    match now {
        Some(now) => {
            let mut stmt = conn.prepare_cached(
                "UPDATE fs_inode SET nlink = max(nlink + ?2, (mode & 61440) = 16384), ctime = ?3, \
                 ctime_nsec = ?4 WHERE ino = ?1",
            )?;
            stmt.execute(params![ino.0 as i64, delta, now.sec, now.nsec as i64])?;
        }
        None => {
            let mut stmt = conn
                .prepare_cached(
                "UPDATE fs_inode SET nlink = max(nlink + ?2, (mode & 61440) = 16384) WHERE ino = ?1",
            )?;
            stmt.execute(params![ino.0 as i64, delta])?;
        }
    }
    Ok(())
}

/// Sets mtime and ctime of a directory whose entries changed.
pub fn touch_dir(conn: &Connection, dir: Ino, now: Timestamp) -> VfsResult<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE fs_inode SET mtime = ?2, mtime_nsec = ?3, ctime = ?2, ctime_nsec = ?3 WHERE ino = ?1",
    )?;
    stmt.execute(params![dir.0 as i64, now.sec, now.nsec as i64])?;
    Ok(())
}

/// Sets ctime only (metadata change).
pub fn touch_ctime(conn: &Connection, ino: Ino, now: Timestamp) -> VfsResult<()> {
    let mut stmt =
        conn.prepare_cached("UPDATE fs_inode SET ctime = ?2, ctime_nsec = ?3 WHERE ino = ?1")?;
    stmt.execute(params![ino.0 as i64, now.sec, now.nsec as i64])?;
    Ok(())
}

/// Removes an inode and everything hanging off it.
pub fn purge_inode(conn: &Connection, ino: Ino) -> VfsResult<()> {
    for sql in [
        "DELETE FROM fs_data WHERE ino = ?1",
        "DELETE FROM fs_symlink WHERE ino = ?1",
        "DELETE FROM fs_xattr WHERE ino = ?1",
        "DELETE FROM fs_content_hash WHERE ino = ?1",
        "DELETE FROM fs_orphan WHERE ino = ?1",
        "DELETE FROM fs_inode WHERE ino = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([ino.0 as i64])?;
    }
    super::delta::forget_inode(conn, ino)
}

/// Records that an inode lost its last name while this process still has it open.
pub fn insert_orphan(conn: &Connection, ino: Ino, now: Timestamp) -> VfsResult<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO fs_orphan (ino, pid, since_ns) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        ino.0 as i64,
        std::process::id() as i64,
        now.as_nanos()
    ])?;
    Ok(())
}

/// The directory holding `dir` (for the root, the root).
pub fn parent_of_dir(conn: &Connection, dir: Ino) -> VfsResult<Ino> {
    if dir == Ino::ROOT {
        return Ok(Ino::ROOT);
    }
    let mut stmt =
        conn.prepare_cached("SELECT parent_ino FROM fs_dentry WHERE ino = ?1 LIMIT 1")?;
    let p = stmt
        .query_row([dir.0 as i64], |r| r.get::<_, i64>(0))
        .optional()?;
    Ok(p.map(|p| Ino(p as u64)).unwrap_or(Ino::ROOT))
}

/// True if `ancestor` is `node` or one of the directories above it.
pub fn is_ancestor(conn: &Connection, ancestor: Ino, mut node: Ino) -> VfsResult<bool> {
    // Bounded so a corrupt cycle cannot hang us.
    for _ in 0..4096 {
        if node == ancestor {
            return Ok(true);
        }
        if node == Ino::ROOT {
            return Ok(false);
        }
        node = parent_of_dir(conn, node)?;
    }
    Ok(false)
}

/// One path of `ino` from the root, as bytes (`/` for the root); `None` if it has no name.
pub fn path_of(conn: &Connection, ino: Ino) -> VfsResult<Option<Vec<u8>>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut cur = ino;
    let mut stmt = conn.prepare_cached(
        "SELECT parent_ino, name FROM fs_dentry WHERE ino = ?1 ORDER BY id LIMIT 1",
    )?;
    for _ in 0..4096 {
        if cur == Ino::ROOT {
            let mut path = Vec::new();
            for p in parts.iter().rev() {
                path.push(b'/');
                path.extend_from_slice(p);
            }
            if path.is_empty() {
                path.push(b'/');
            }
            return Ok(Some(path));
        }
        let row = stmt
            .query_row([cur.0 as i64], |r| {
                Ok((r.get::<_, i64>(0)?, names::from_sql(r.get_ref(1)?)?))
            })
            .optional()?;
        match row {
            Some((parent, name)) => {
                parts.push(name);
                cur = Ino(parent as u64);
            }
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The path of entry `name` in directory `parent`.
pub fn child_path(conn: &Connection, parent: Ino, name: &[u8]) -> VfsResult<Option<Vec<u8>>> {
    Ok(path_of(conn, parent)?.map(|mut p| {
        if p != b"/" {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        p
    }))
}

/// One row of the change journal.
pub struct Change<'a> {
    pub op: JournalOp,
    pub ino: Option<Ino>,
    pub path: Option<&'a [u8]>,
    pub old_path: Option<&'a [u8]>,
}

/// Journals `op` on `ino` at `path`.
pub fn journal_at(
    conn: &Connection,
    runner: Option<i64>,
    now: Timestamp,
    op: JournalOp,
    ino: Ino,
    path: Option<&[u8]>,
) -> VfsResult<()> {
    let change = Change {
        op,
        ino: Some(ino),
        path,
        old_path: None,
    };
    journal(conn, runner, now, change)
}

/// Journals `op` on `ino` at its current path.
pub fn journal_ino(
    conn: &Connection,
    runner: Option<i64>,
    now: Timestamp,
    op: JournalOp,
    ino: Ino,
) -> VfsResult<()> {
    let path = path_of(conn, ino)?;
    journal_at(conn, runner, now, op, ino, path.as_deref())
}

pub fn journal(
    conn: &Connection,
    runner: Option<i64>,
    now: Timestamp,
    c: Change<'_>,
) -> VfsResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO fs_change (time_ns, runner_id, op, ino, path, old_path, pid, tool_call_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    stmt.execute(params![
        now.as_nanos(),
        runner,
        c.op.as_str(),
        c.ino.map(|i| i.0 as i64),
        c.path.map(names::to_sql),
        c.old_path.map(names::to_sql),
        std::process::id() as i64,
        super::journal::current_tool_call(),
    ])?;
    Ok(())
}
