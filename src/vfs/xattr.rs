//! Extended attributes: setxattr, getxattr, listxattr, removexattr.

use rusqlite::{OptionalExtension, params};

use super::{Ino, JournalOp, Timestamp, Vfs, VfsError, VfsResult, XattrMode, names, rows};

impl Vfs {
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], mode: XattrMode) -> VfsResult<()> {
        check_xattr_name(name)?;
        // POSIX ACLs would have to be enforced and kept in step with the mode bits; stored as
        // plain attributes they would not be, and tools that copy permissions as ACLs (cp -a,
        // mv, sed -i) would leave wrong modes. Refusing makes them fall back to chmod.
        if name.starts_with(b"system.posix_acl_") {
            return Err(VfsError::NotSupported);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(VfsError::TooBig);
        }
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::attr(&tx, ino)?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM fs_xattr WHERE ino = ?1 AND name = ?2")?
            .query_row(params![ino.0 as i64, names::to_sql(name)], |_| Ok(()))
            .optional()?
            .is_some();
        match (mode, exists) {
            (XattrMode::Create, true) => return Err(VfsError::Exists),
            (XattrMode::Replace, false) => return Err(VfsError::NoAttr),
            _ => {}
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_xattr (ino, name, value) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![ino.0 as i64, names::to_sql(name), value])?;
        rows::touch_ctime(&tx, ino, now)?;
        rows::journal_ino(&tx, runner, now, JournalOp::Setxattr, ino)?;
        tx.commit()?;
        Ok(())
    }

    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> VfsResult<Vec<u8>> {
        check_xattr_name(name)?;
        let store = self.store()?;
        // One query tells a missing attribute (asked before every first write) from a
        // missing inode.
        let value: Option<Option<Vec<u8>>> = store
            .conn
            .prepare_cached(
                "SELECT (SELECT value FROM fs_xattr WHERE ino = ?1 AND name = ?2) \
                 FROM fs_inode WHERE ino = ?1",
            )?
            .query_row(params![ino.0 as i64, names::to_sql(name)], |r| r.get(0))
            .optional()?;
        match value {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(VfsError::NoAttr),
            None => Err(VfsError::NotFound),
        }
    }

    /// Attribute names of `ino`, sorted.
    pub fn listxattr(&self, ino: Ino) -> VfsResult<Vec<Vec<u8>>> {
        let store = self.store()?;
        rows::attr(&store.conn, ino)?;
        let mut stmt = store
            .conn
            .prepare_cached("SELECT name FROM fs_xattr WHERE ino = ?1 ORDER BY name")?;
        let names = stmt
            .query_map([ino.0 as i64], |r| names::from_sql(r.get_ref(0)?))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> VfsResult<()> {
        check_xattr_name(name)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        rows::attr(&tx, ino)?;
        let removed = tx
            .prepare_cached("DELETE FROM fs_xattr WHERE ino = ?1 AND name = ?2")?
            .execute(params![ino.0 as i64, names::to_sql(name)])?;
        if removed == 0 {
            return Err(VfsError::NoAttr);
        }
        rows::touch_ctime(&tx, ino, now)?;
        rows::journal_ino(&tx, runner, now, JournalOp::Removexattr, ino)?;
        tx.commit()?;
        Ok(())
    }
}

/// Largest xattr value, as XATTR_SIZE_MAX on Linux.
const XATTR_SIZE_MAX: usize = 65536;

fn check_xattr_name(name: &[u8]) -> VfsResult<()> {
    // XATTR_NAME_MAX is 255; the kernel answers ERANGE for longer names.
    if name.is_empty() || name.contains(&0) {
        return Err(VfsError::Invalid);
    }
    if name.len() > 255 {
        return Err(VfsError::NameTooLong);
    }
    Ok(())
}
