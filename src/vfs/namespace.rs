//! Names: lookup, listing, path resolution; creating, linking, removing, renaming entries.

use rusqlite::{OptionalExtension, params};

use super::rows::Change;
use super::{
    Attr, Creds, DirEntry, Fh, FileKind, Ino, JournalOp, RenameFlags, Timestamp, Vfs, VfsError,
    VfsResult, names, rows,
};

/// How many symlinks path resolution follows before ELOOP (as Linux's MAXSYMLINKS).
const MAX_SYMLINKS: u32 = 40;

/// What `make_node` creates.
struct NewNode<'a> {
    kind: FileKind,
    perm: u32,
    rdev: u32,
    creds: Creds,
    symlink_target: Option<&'a [u8]>,
}

impl Vfs {
    // ----- lookups ------------------------------------------------------------------------

    /// Finds `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> VfsResult<Attr> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        // One statement, so no explicit transaction: the hot path of every path walk.
        let store = self.store()?;
        match rows::child_attr(&store.conn, parent, name)? {
            Some(attr) => Ok(attr),
            None => {
                rows::dir_attr(&store.conn, parent)?;
                Err(VfsError::NotFound)
            }
        }
    }

    pub fn readlink(&self, ino: Ino) -> VfsResult<Vec<u8>> {
        let store = self.store()?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT target FROM fs_symlink WHERE ino = ?1")?;
        let target = stmt
            .query_row([ino.0 as i64], |r| names::from_sql(r.get_ref(0)?))
            .optional()?;
        match target {
            Some(t) => Ok(t),
            None => {
                rows::attr(&store.conn, ino)?;
                Err(VfsError::NotSymlink)
            }
        }
    }

    /// Entries of directory `dir` after cursor `after` (0 = from the start), at most `limit`.
    pub fn readdir(&self, dir: Ino, after: u64, limit: usize) -> VfsResult<Vec<DirEntry>> {
        // One statement, no explicit transaction; only directories have entries, so the
        // directory itself is checked only when the batch comes back empty.
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(
            "SELECT d.id, d.name, d.ino, i.mode FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino \
             WHERE d.parent_ino = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
        )?;
        let entries = stmt
            .query_map(
                params![
                    dir.0 as i64,
                    after as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    let mode: i64 = r.get(3)?;
                    Ok(DirEntry {
                        offset: r.get::<_, i64>(0)? as u64,
                        name: names::from_sql(r.get_ref(1)?)?,
                        ino: Ino(r.get::<_, i64>(2)? as u64),
                        kind: FileKind::from_mode(mode as u32).unwrap_or(FileKind::File),
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            rows::dir_attr(&store.conn, dir)?;
        }
        Ok(entries)
    }

    /// Like [`Vfs::readdir`], with each entry's attributes (one query for the whole batch).
    pub fn readdir_plus(
        &self,
        dir: Ino,
        after: u64,
        limit: usize,
    ) -> VfsResult<Vec<(DirEntry, Attr)>> {
        let store = self.store()?;
        let mut stmt = store.conn.prepare_cached(&format!(
            "SELECT d.id, d.name, d.ino, {} FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino \
             WHERE d.parent_ino = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
            rows::ATTR_COLUMNS
        ))?;
        let entries = stmt
            .query_map(
                params![
                    dir.0 as i64,
                    after as i64,
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    let ino = Ino(r.get::<_, i64>(2)? as u64);
                    let attr = rows::attr_from_row(r, 3, ino)?;
                    let entry = DirEntry {
                        offset: r.get::<_, i64>(0)? as u64,
                        name: names::from_sql(r.get_ref(1)?)?,
                        ino,
                        kind: attr.kind,
                    };
                    Ok((entry, attr))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            rows::dir_attr(&store.conn, dir)?;
        }
        Ok(entries)
    }

    /// The directory that holds directory `dir` (the root for the root).
    pub fn parent_of(&self, dir: Ino) -> VfsResult<Ino> {
        rows::parent_of_dir(&self.store()?.conn, dir)
    }

    /// Resolves an absolute path (relative paths start at the root too). Symlinks in the
    /// middle are followed; the last component is followed only with `follow`.
    pub fn resolve(&self, path: &[u8], follow: bool) -> VfsResult<Ino> {
        let mut hops = 0;
        self.resolve_from(Ino::ROOT, path, follow, &mut hops)
    }

    fn resolve_from(
        &self,
        start: Ino,
        path: &[u8],
        follow: bool,
        hops: &mut u32,
    ) -> VfsResult<Ino> {
        let mut cur = if path.starts_with(b"/") {
            Ino::ROOT
        } else {
            start
        };
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty() && *p != b".")
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let dir = self.getattr(cur)?;
            if dir.kind != FileKind::Dir {
                return Err(VfsError::NotDir);
            }
            if *part == b".." {
                cur = rows::parent_of_dir(&self.store()?.conn, cur)?;
                continue;
            }
            let attr = self.lookup(cur, part)?;
            if attr.kind == FileKind::Symlink && (!last || follow) {
                *hops += 1;
                if *hops > MAX_SYMLINKS {
                    return Err(VfsError::Loop);
                }
                let target = self.readlink(attr.ino)?;
                cur = self.resolve_from(cur, &target, true, hops)?;
            } else {
                cur = attr.ino;
            }
        }
        Ok(cur)
    }

    // ----- creating -----------------------------------------------------------------------

    /// Creates an inode under `parent`. Shared by create/mknod/mkdir/symlink.
    fn make_node(&self, parent: Ino, name: &[u8], node: NewNode<'_>) -> VfsResult<Attr> {
        let NewNode {
            kind,
            perm,
            rdev,
            creds,
            symlink_target,
        } = node;
        names::check_name(name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let parent_attr = rows::dir_attr(&tx, parent)?;
        if rows::child(&tx, parent, name)?.is_some() {
            return Err(VfsError::Exists);
        }
        let is_dir = kind == FileKind::Dir;
        // A set-group-ID directory hands its group to new entries, and its bit to new
        // subdirectories (inode_init_owner() in Linux).
        let mut perm = perm & 0o7777;
        let mut gid = creds.gid;
        if parent_attr.perm & libc::S_ISGID != 0 {
            gid = parent_attr.gid;
            if is_dir {
                perm |= libc::S_ISGID;
            }
        }
        let new = rows::NewInode {
            mode: kind.type_bits() | perm,
            nlink: if is_dir { 2 } else { 1 },
            uid: creds.uid,
            gid,
            rdev,
            size: symlink_target.map_or(0, |t| t.len() as u64),
        };
        let ino = rows::insert_inode(&tx, &new, now)?;
        rows::insert_dentry(&tx, parent, name, ino)?;
        if let Some(target) = symlink_target {
            tx.prepare_cached("INSERT INTO fs_symlink (ino, target) VALUES (?1, ?2)")?
                .execute(params![ino.0 as i64, names::to_sql(target)])?;
        }
        if is_dir {
            rows::add_nlink(&tx, parent, 1, None)?;
        }
        rows::touch_dir(&tx, parent, now)?;
        let path = rows::child_path(&tx, parent, name)?;
        let op = match kind {
            FileKind::File => JournalOp::Create,
            FileKind::Dir => JournalOp::Mkdir,
            FileKind::Symlink => JournalOp::Symlink,
            _ => JournalOp::Mknod,
        };
        rows::journal_at(&tx, runner, now, op, ino, path.as_deref())?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        Ok(attr)
    }

    /// The path of `ino` in the delta (the merged view's path), if it has a name.
    pub fn path_of(&self, ino: Ino) -> VfsResult<Option<Vec<u8>>> {
        rows::path_of(&self.store()?.conn, ino)
    }

    /// Creates and opens a regular file; `Exists` if the name is taken.
    pub fn create(
        &self,
        parent: Ino,
        name: &[u8],
        perm: u32,
        creds: Creds,
    ) -> VfsResult<(Attr, Fh)> {
        let attr = self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::File,
                perm,
                rdev: 0,
                creds,
                symlink_target: None,
            },
        )?;
        let fh = self.add_handle(attr.ino);
        Ok((attr, fh))
    }

    /// Creates a regular file, FIFO, socket or device node.
    pub fn mknod(
        &self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        perm: u32,
        rdev: u32,
        creds: Creds,
    ) -> VfsResult<Attr> {
        if matches!(kind, FileKind::Dir | FileKind::Symlink) {
            return Err(VfsError::Invalid);
        }
        let rdev = if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
            rdev
        } else {
            0
        };
        self.make_node(
            parent,
            name,
            NewNode {
                kind,
                perm,
                rdev,
                creds,
                symlink_target: None,
            },
        )
    }

    pub fn mkdir(&self, parent: Ino, name: &[u8], perm: u32, creds: Creds) -> VfsResult<Attr> {
        // mkdir(2): only the permission and sticky bits of `mode` are used.
        self.make_node(
            parent,
            name,
            NewNode {
                kind: FileKind::Dir,
                perm: perm & 0o1777,
                rdev: 0,
                creds,
                symlink_target: None,
            },
        )
    }

    pub fn symlink(
        &self,
        parent: Ino,
        name: &[u8],
        target: &[u8],
        creds: Creds,
    ) -> VfsResult<Attr> {
        // symlink(2): the target may be anything but empty, up to PATH_MAX.
        if target.is_empty() || target.contains(&0) {
            return Err(if target.is_empty() {
                VfsError::NotFound
            } else {
                VfsError::Invalid
            });
        }
        if target.len() >= libc::PATH_MAX as usize {
            return Err(VfsError::NameTooLong);
        }
        let node = NewNode {
            kind: FileKind::Symlink,
            perm: 0o777,
            rdev: 0,
            creds,
            symlink_target: Some(target),
        };
        self.make_node(parent, name, node)
    }

    /// Adds the name `new_name` in `new_parent` for `ino`.
    pub fn link(&self, ino: Ino, new_parent: Ino, new_name: &[u8]) -> VfsResult<Attr> {
        names::check_name(new_name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        rows::dir_attr(&tx, new_parent)?;
        // linkat(2) looks up the new name before vfs_link() refuses directories.
        if rows::child(&tx, new_parent, new_name)?.is_some() {
            return Err(VfsError::Exists);
        }
        if attr.kind == FileKind::Dir {
            return Err(VfsError::NotPermitted);
        }
        rows::insert_dentry(&tx, new_parent, new_name, ino)?;
        rows::add_nlink(&tx, ino, 1, Some(now))?;
        rows::touch_dir(&tx, new_parent, now)?;
        // An orphan that is linked again is no longer an orphan.
        tx.prepare_cached("DELETE FROM fs_orphan WHERE ino = ?1")?
            .execute([ino.0 as i64])?;
        let path = rows::child_path(&tx, new_parent, new_name)?;
        rows::journal_at(&tx, runner, now, JournalOp::Link, ino, path.as_deref())?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        Ok(attr)
    }

    // ----- removing -----------------------------------------------------------------------

    /// Drops one link of non-directory `ino`; at zero links the inode goes, unless it is open
    /// here, in which case it waits in `fs_orphan` for the last release.
    fn drop_link(
        conn: &rusqlite::Connection,
        is_open: bool,
        ino: Ino,
        now: Timestamp,
    ) -> VfsResult<()> {
        rows::add_nlink(conn, ino, -1, Some(now))?;
        if rows::attr(conn, ino)?.nlink == 0 {
            if is_open {
                rows::insert_orphan(conn, ino, now)?;
            } else {
                rows::purge_inode(conn, ino)?;
            }
        }
        Ok(())
    }

    pub fn unlink(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        let ino = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        // unlink(2): Linux reports EISDIR for a directory.
        if rows::attr(&tx, ino)?.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        let path = rows::child_path(&tx, parent, name)?;
        rows::delete_dentry(&tx, parent, name)?;
        Self::drop_link(&tx, self.is_open(ino), ino, now)?;
        rows::touch_dir(&tx, parent, now)?;
        rows::journal_at(&tx, runner, now, JournalOp::Unlink, ino, path.as_deref())?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }

    fn dir_is_empty(conn: &rusqlite::Connection, dir: Ino) -> VfsResult<bool> {
        let mut stmt =
            conn.prepare_cached("SELECT 1 FROM fs_dentry WHERE parent_ino = ?1 LIMIT 1")?;
        Ok(stmt
            .query_row([dir.0 as i64], |_| Ok(()))
            .optional()?
            .is_none())
    }

    pub fn rmdir(&self, parent: Ino, name: &[u8]) -> VfsResult<()> {
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        let ino = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        if rows::attr(&tx, ino)?.kind != FileKind::Dir {
            return Err(VfsError::NotDir);
        }
        if !Self::dir_is_empty(&tx, ino)? {
            return Err(VfsError::NotEmpty);
        }
        let path = rows::child_path(&tx, parent, name)?;
        rows::delete_dentry(&tx, parent, name)?;
        rows::purge_inode(&tx, ino)?;
        rows::add_nlink(&tx, parent, -1, None)?;
        rows::touch_dir(&tx, parent, now)?;
        rows::journal_at(&tx, runner, now, JournalOp::Rmdir, ino, path.as_deref())?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, as renameat2(2).
    pub fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> VfsResult<()> {
        if flags.noreplace && flags.exchange {
            return Err(VfsError::Invalid);
        }
        if name.len() > names::NAME_MAX {
            return Err(VfsError::NameTooLong);
        }
        names::check_name(new_name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::dir_attr(&tx, parent)?;
        rows::dir_attr(&tx, new_parent)?;
        let src = rows::child(&tx, parent, name)?.ok_or(VfsError::NotFound)?;
        let src_attr = rows::attr(&tx, src)?;
        let dst = rows::child(&tx, new_parent, new_name)?;
        // The order of checks follows do_renameat2() in Linux, so errno matches the kernel's.
        if flags.noreplace && dst.is_some() {
            return Err(VfsError::Exists);
        }
        if flags.exchange && dst.is_none() {
            return Err(VfsError::NotFound);
        }
        let src_is_dir = src_attr.kind == FileKind::Dir;
        if src_is_dir && src != dst.unwrap_or(Ino(0)) && rows::is_ancestor(&tx, src, new_parent)? {
            return Err(VfsError::Invalid);
        }
        let dst_attr = match dst {
            Some(d) => Some(rows::attr(&tx, d)?),
            None => None,
        };
        if let Some(d) = &dst_attr
            && d.kind == FileKind::Dir
            && d.ino != src
            && rows::is_ancestor(&tx, d.ino, parent)?
        {
            return Err(if flags.exchange {
                VfsError::Invalid
            } else {
                VfsError::NotEmpty
            });
        }
        if dst == Some(src) {
            return Ok(());
        }
        let old_path = rows::child_path(&tx, parent, name)?;
        let new_path = rows::child_path(&tx, new_parent, new_name)?;
        let set_entry = |ino: Ino, p: Ino, n: &[u8]| -> VfsResult<()> {
            tx.prepare_cached("UPDATE fs_dentry SET ino = ?1 WHERE parent_ino = ?2 AND name = ?3")?
                .execute(params![ino.0 as i64, p.0 as i64, names::to_sql(n)])?;
            Ok(())
        };
        if flags.exchange {
            let dst_attr = dst_attr.expect("exchange target checked above");
            set_entry(dst_attr.ino, parent, name)?;
            set_entry(src, new_parent, new_name)?;
            if parent != new_parent {
                let dst_is_dir = dst_attr.kind == FileKind::Dir;
                let moved = src_is_dir as i64 - dst_is_dir as i64;
                if moved != 0 {
                    rows::add_nlink(&tx, parent, -moved, None)?;
                    rows::add_nlink(&tx, new_parent, moved, None)?;
                }
            }
            rows::touch_ctime(&tx, dst_attr.ino, now)?;
        } else {
            if let Some(d) = &dst_attr {
                match (src_is_dir, d.kind == FileKind::Dir) {
                    (true, false) => return Err(VfsError::NotDir),
                    (false, true) => return Err(VfsError::IsDir),
                    (true, true) if !Self::dir_is_empty(&tx, d.ino)? => {
                        return Err(VfsError::NotEmpty);
                    }
                    _ => {}
                }
                rows::delete_dentry(&tx, new_parent, new_name)?;
                if d.kind == FileKind::Dir {
                    rows::purge_inode(&tx, d.ino)?;
                    rows::add_nlink(&tx, new_parent, -1, None)?;
                } else {
                    Self::drop_link(&tx, self.is_open(d.ino), d.ino, now)?;
                }
            }
            tx.prepare_cached(
                "UPDATE fs_dentry SET parent_ino = ?1, name = ?2 WHERE parent_ino = ?3 AND name = ?4",
            )?
            .execute(params![
                new_parent.0 as i64,
                names::to_sql(new_name),
                parent.0 as i64,
                names::to_sql(name)
            ])?;
            if src_is_dir && parent != new_parent {
                rows::add_nlink(&tx, parent, -1, None)?;
                rows::add_nlink(&tx, new_parent, 1, None)?;
            }
        }
        rows::touch_ctime(&tx, src, now)?;
        rows::touch_dir(&tx, parent, now)?;
        if new_parent != parent {
            rows::touch_dir(&tx, new_parent, now)?;
        }
        let op = if flags.exchange {
            JournalOp::Exchange
        } else {
            JournalOp::Rename
        };
        rows::journal(
            &tx,
            runner,
            now,
            Change {
                op,
                ino: Some(src),
                path: new_path.as_deref(),
                old_path: old_path.as_deref(),
            },
        )?;
        tx.commit()?;
        self.after_free(&mut store)?;
        Ok(())
    }
}
