//! The overlay's rows: copy-up records (origins, identities), whiteouts, opaque dirs, base backing.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::{
    Attr, CopyUp, FileKind, Ino, JournalOp, Timestamp, Vfs, VfsError, VfsResult, data, names, rows,
};

impl Vfs {
    /// Copies a base entry into the delta as entry `name` of `parent`, in one transaction:
    /// its metadata, its bytes (read from `c.data`) and its origin (`fs_origin`), so a crash
    /// never leaves half a copy shadowing the base. Not journaled: the merged view does not
    /// change; the change that needed the copy is journaled by its own operation.
    ///
    /// `chain` is a path of base entries below `parent`, each copied into the one before:
    /// the directories a change needs first, then the entry it changes, all committed at once.
    pub fn copy_up(&self, parent: Ino, chain: Vec<(&[u8], CopyUp<'_>)>) -> VfsResult<Attr> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let mut dir = parent;
        for (name, c) in chain {
            dir = self.copy_up_in(&tx, dir, name, c)?;
        }
        let attr = rows::attr(&tx, dir)?;
        tx.commit()?;
        Ok(attr)
    }

    /// One entry of [`Vfs::copy_up`], inside its transaction, with its write if any.
    fn copy_up_in(
        &self,
        tx: &rusqlite::Connection,
        parent: Ino,
        name: &[u8],
        c: CopyUp<'_>,
    ) -> VfsResult<Ino> {
        names::check_name(name)?;
        rows::dir_attr(tx, parent)?;
        let then_write = c.then_write;
        let ino = match rows::child(tx, parent, name)? {
            // Another thread copied it up first.
            Some(existing) => existing,
            None => {
                let (ino, written_at) = self.insert_copy(tx, parent, name, c)?;
                if let Some(at) = written_at {
                    if self.starts_write_burst(ino) {
                        rows::journal_ino(tx, self.runner(), at, JournalOp::Write, ino)?;
                    }
                    return Ok(ino);
                }
                ino
            }
        };
        if let Some((offset, buf)) = then_write {
            let journal_it = self.starts_write_burst(ino);
            self.write_in(tx, ino, offset, buf, journal_it, false)?;
        }
        Ok(ino)
    }

    /// The new delta inode of a copy-up: metadata, bytes, origin and identity. A write that
    /// lands within the copied bytes or right after them is made on the bytes in memory, so
    /// they are stored once; the time it was made at comes back with the inode then.
    fn insert_copy(
        &self,
        tx: &rusqlite::Connection,
        parent: Ino,
        name: &[u8],
        c: CopyUp<'_>,
    ) -> VfsResult<(Ino, Option<Timestamp>)> {
        let chunk_size = self.chunk_size;
        let now = Timestamp::now();
        let is_dir = c.kind == FileKind::Dir;
        let new = rows::NewInode {
            mode: c.kind.type_bits() | (c.perm & 0o7777),
            nlink: if is_dir { 2 } else { 1 },
            uid: c.uid,
            gid: c.gid,
            rdev: c.rdev,
            size: c.symlink_target.map_or(0, |t| t.len() as u64),
        };
        let ino = rows::insert_inode(tx, &new, now)?;
        rows::insert_dentry(tx, parent, name, ino)?;
        if let Some(target) = c.symlink_target {
            tx.prepare_cached("INSERT INTO fs_symlink (ino, target) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, names::to_sql(target)])?;
        }
        if is_dir {
            rows::add_nlink(tx, parent, 1, None)?;
        }
        let mut hash = c.base_hash;
        let mut mtime = c.mtime;
        let mut written_at = None;
        if let Some(reader) = c.data {
            // Whole: files this small are copied (larger ones stay in the base until changed).
            let mut bytes = Vec::with_capacity(c.size as usize);
            reader.read_to_end(&mut bytes).map_err(|e| {
                VfsError::Store(crate::store::StoreError::Io {
                    path: std::path::PathBuf::from(String::from_utf8_lossy(name).into_owned()),
                    source: e,
                })
            })?;
            hash = Some(*blake3::hash(&bytes).as_bytes());
            if let Some((offset, buf)) = c.then_write.filter(|(o, _)| *o <= bytes.len() as u64) {
                let (offset, end) = (offset as usize, offset as usize + buf.len());
                if end > bytes.len() {
                    bytes.resize(end, 0);
                }
                bytes[offset..end].copy_from_slice(buf);
                mtime = now;
                written_at = Some(now);
            }
            let size = data::write(tx, chunk_size, ino, 0, 0, &bytes, None)?;
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, size as i64])?;
        } else if c.backed_by_base {
            // Partial copy-up: no bytes now; they stay in the base until they change.
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, c.size as i64])?;
            tx.prepare_cached("INSERT INTO fs_base_backing (ino, valid_len) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, c.size as i64])?;
        }
        tx.prepare_cached(
            "UPDATE fs_inode SET atime = ?2, atime_nsec = ?3, mtime = ?4, mtime_nsec = ?5 WHERE ino = ?1",
        )?
        .execute(params![
            ino.0 as i64,
            c.atime.sec,
            c.atime.nsec as i64,
            mtime.sec,
            mtime.nsec as i64
        ])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_origin (delta_ino, base_ino) VALUES (?1, ?2)",
        )?
        .execute(params![ino.0 as i64, c.base_ino as i64])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_base_identity (ino, base_path, size, mtime_ns, blake3, mode) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            ino.0 as i64,
            names::to_sql(c.base_path),
            c.size as i64,
            c.mtime.as_nanos(),
            hash.as_ref().map(|h| &h[..]),
            new.mode as i64
        ])?;
        Ok((ino, written_at))
    }

    /// Every base inode number some delta entry was copied up from.
    pub fn origin_base_inos(&self) -> VfsResult<HashSet<u64>> {
        let store = self.store()?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT base_ino FROM fs_origin")?;
        let inos = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|i| i as u64))
            .collect::<Result<HashSet<u64>, _>>()?;
        Ok(inos)
    }

    /// The delta inode copied up from base inode `base_ino`, if any.
    pub fn delta_of_base(&self, base_ino: u64) -> VfsResult<Option<Ino>> {
        let store = self.store()?;
        let d: Option<i64> = store
            .conn
            .prepare_cached("SELECT delta_ino FROM fs_origin WHERE base_ino = ?1")?
            .query_row([base_ino as i64], |r| r.get(0))
            .optional()?;
        Ok(d.map(|d| Ino(d as u64)))
    }

    /// The base inode a delta inode was copied up from, if any.
    pub fn origin_of(&self, ino: Ino) -> VfsResult<Option<u64>> {
        let store = self.store()?;
        let b: Option<i64> = store
            .conn
            .prepare_cached("SELECT base_ino FROM fs_origin WHERE delta_ino = ?1")?
            .query_row([ino.0 as i64], |r| r.get(0))
            .optional()?;
        Ok(b.map(|b| b as u64))
    }

    /// Every whited-out base path.
    pub fn all_whiteouts(&self) -> VfsResult<Vec<Vec<u8>>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached("SELECT path FROM fs_whiteout")?;
        let paths = stmt
            .query_map([], |r| names::from_sql(r.get_ref(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(paths)
    }

    /// Marks `path` as deleted from the base (`whiteout`) or not (`!whiteout`).
    pub fn set_whiteout(&self, path: &[u8], whiteout: bool) -> VfsResult<()> {
        self.whiteout_change(path, whiteout, None)
    }

    /// Whites out a base path whose deletion no delta entry journals, journaling it as `op`
    /// (`unlink` or `rmdir`) in the same transaction.
    /// `journal_path` is where the user saw it (it differs from `path` inside a directory
    /// moved within the session).
    pub fn delete_base_path(
        &self,
        path: &[u8],
        journal_path: &[u8],
        op: JournalOp,
    ) -> VfsResult<()> {
        self.whiteout_change(path, true, Some((op, journal_path)))
    }

    fn whiteout_change(
        &self,
        path: &[u8],
        whiteout: bool,
        op: Option<(JournalOp, &[u8])>,
    ) -> VfsResult<()> {
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        if whiteout {
            let cut = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
            let parent: &[u8] = if cut == 0 { b"/" } else { &path[..cut] };
            let tx = store.write_tx()?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO fs_whiteout (path, parent_path, created_at) VALUES (?1, ?2, unixepoch())",
            )?
            .execute(params![names::to_sql(path), names::to_sql(parent)])?;
            if let Some((op, journal_path)) = op {
                let change = rows::Change {
                    op,
                    ino: None,
                    path: Some(journal_path),
                    old_path: None,
                };
                rows::journal(&tx, runner, now, change)?;
            }
            tx.commit()?;
        } else {
            store
                .conn
                .prepare_cached("DELETE FROM fs_whiteout WHERE path = ?1")?
                .execute([names::to_sql(path)])?;
        }
        Ok(())
    }

    /// Whether delta directory `dir` hides the base directory at its path (it replaced a
    /// deleted one).
    pub fn is_opaque(&self, dir: Ino) -> VfsResult<bool> {
        let store = self.store()?;
        Ok(store
            .conn
            .prepare_cached("SELECT 1 FROM fs_opaque WHERE ino = ?1")?
            .query_row([dir.0 as i64], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn set_opaque(&self, dir: Ino) -> VfsResult<()> {
        self.writer()?
            .conn
            .prepare_cached("INSERT OR IGNORE INTO fs_opaque (ino) VALUES (?1)")?
            .execute([dir.0 as i64])?;
        Ok(())
    }

    /// The base directory a delta directory shows, as a path from the base root: the one it
    /// was copied up from (it keeps showing it wherever it is moved), else its parent's base
    /// directory plus its name; `None` if it shows none (opaque, or not reachable).
    pub fn base_path_of(&self, dir: Ino) -> VfsResult<Option<Vec<u8>>> {
        let store = self.store()?;
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = dir;
        let start: Vec<u8> = loop {
            if cur == Ino::ROOT {
                break b"/".to_vec();
            }
            let row = store
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM fs_opaque WHERE ino = ?1), \
                     (SELECT base_path FROM fs_base_identity WHERE ino = ?1), \
                     d.parent_ino, d.name FROM fs_dentry d WHERE d.ino = ?1 LIMIT 1",
                )?
                .query_row([cur.0 as i64], |r| {
                    let base = match r.get_ref(1)? {
                        rusqlite::types::ValueRef::Null => None,
                        v => Some(names::from_sql(v)?),
                    };
                    Ok((
                        r.get::<_, bool>(0)?,
                        base,
                        r.get::<_, i64>(2)?,
                        names::from_sql(r.get_ref(3)?)?,
                    ))
                })
                .optional()?;
            let Some((opaque, base, parent, name)) = row else {
                return Ok(None);
            };
            if opaque {
                return Ok(None);
            }
            if let Some(b) = base {
                break b;
            }
            names.push(name);
            cur = Ino(parent as u64);
        };
        let mut path = start;
        for name in names.iter().rev() {
            if path.last() != Some(&b'/') {
                path.push(b'/');
            }
            path.extend_from_slice(name);
        }
        Ok(Some(path))
    }

    /// For a partially copied-up file: the base file holding the bytes not stored yet.
    pub(super) fn base_bytes(
        &self,
        conn: &rusqlite::Connection,
        ino: Ino,
    ) -> VfsResult<Option<data::BaseBytes>> {
        base_bytes_of(conn, self.base_root.as_deref(), ino)
    }
}

/// For a partially copied-up file `ino`: its base file (under `base_root`) and how much of it
/// is valid; `None` for every other inode. Fails if the host changed the base file since the
/// copy-up (its size or mtime differ from the recorded identity): its bytes would no longer be
/// the ones the session started from.
pub fn base_bytes_of(
    conn: &rusqlite::Connection,
    base_root: Option<&Path>,
    ino: Ino,
) -> VfsResult<Option<data::BaseBytes>> {
    use std::os::unix::fs::MetadataExt;
    let row = conn
        .prepare_cached(
            "SELECT b.valid_len, i.base_path, i.size, i.mtime_ns FROM fs_base_backing b \
             JOIN fs_base_identity i ON i.ino = b.ino WHERE b.ino = ?1",
        )?
        .query_row([ino.0 as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                names::from_sql(r.get_ref(1)?)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let Some((valid_len, path, size, mtime_ns)) = row else {
        return Ok(None);
    };
    let root = base_root.ok_or_else(|| {
        VfsError::BaseRead("is unknown: the session has no base directory".into())
    })?;
    let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(&path));
    let host = root.join(rel);
    let file = std::fs::File::open(&host)
        .map_err(|e| VfsError::BaseRead(format!("{} cannot be read: {e}", host.display())))?;
    let md = file
        .metadata()
        .map_err(|e| VfsError::BaseRead(format!("{} cannot be read: {e}", host.display())))?;
    let md_mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
    if md.len() != size as u64 || md_mtime_ns != mtime_ns {
        return Err(VfsError::BaseRead(format!(
            "{} changed on the host since the session copied it",
            host.display()
        )));
    }
    Ok(Some(data::BaseBytes {
        file,
        valid_len: valid_len as u64,
    }))
}

/// After a truncation to `size`: bytes of the base past it never show through again.
pub(super) fn lower_valid_len(conn: &rusqlite::Connection, ino: Ino, size: u64) -> VfsResult<()> {
    conn.prepare_cached(
        "UPDATE fs_base_backing SET valid_len = min(valid_len, ?2) WHERE ino = ?1",
    )?
    .execute(params![ino.0 as i64, size as i64])?;
    conn.prepare_cached("DELETE FROM fs_base_backing WHERE ino = ?1 AND valid_len = 0")?
        .execute([ino.0 as i64])?;
    Ok(())
}

/// Deletes the overlay's rows of an inode that is going (its origin, opaque mark, base
/// identity and backing), as part of removing the inode.
pub(super) fn forget_inode(conn: &rusqlite::Connection, ino: Ino) -> VfsResult<()> {
    for sql in [
        "DELETE FROM fs_origin WHERE delta_ino = ?1",
        "DELETE FROM fs_opaque WHERE ino = ?1",
        "DELETE FROM fs_base_identity WHERE ino = ?1",
        "DELETE FROM fs_base_backing WHERE ino = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([ino.0 as i64])?;
    }
    Ok(())
}
