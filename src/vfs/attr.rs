//! Attributes: getattr, setattr (chmod, chown, truncate, utimensat) and statfs.

use std::path::Path;

use rusqlite::params;

use super::delta::lower_valid_len;
use super::{
    Attr, FileKind, Ino, JournalOp, SetAttr, StatFs, TimeSet, Timestamp, Vfs, VfsError, VfsResult,
    data, names, rows,
};

impl Vfs {
    pub fn getattr(&self, ino: Ino) -> VfsResult<Attr> {
        rows::attr(&self.store()?.conn, ino)
    }

    /// Changes the attributes named in `set`, as chmod/chown/truncate/utimensat do.
    pub fn setattr(&self, ino: Ino, set: &SetAttr) -> VfsResult<Attr> {
        let now = Timestamp::now();
        let runner = self.runner();
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        let mut mtime = set.mtime;
        if let Some(size) = set.size {
            match attr.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(VfsError::IsDir),
                _ => return Err(VfsError::Invalid),
            }
            let base = self.base_bytes(&tx, ino)?;
            data::truncate(&tx, chunk_size, ino, attr.size, size, base.as_ref())?;
            lower_valid_len(&tx, ino, size)?;
            tx.prepare_cached("UPDATE fs_inode SET size = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, size as i64])?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
            // truncate(2) updates mtime (and ctime) unless the caller sets mtime itself.
            mtime.get_or_insert(TimeSet::Now);
        }
        if let Some(mode) = set.mode {
            tx.prepare_cached("UPDATE fs_inode SET mode = (mode & ?2) | ?3 WHERE ino = ?1")?
                .execute(params![
                    ino.0 as i64,
                    libc::S_IFMT as i64,
                    (mode & 0o7777) as i64
                ])?;
        }
        if set.kill_suidgid && attr.kind != FileKind::Dir {
            // Only when there is a bit to clear: chown and truncate ask this every time.
            let perm = set.mode.map_or(attr.perm, |m| m & 0o7777);
            let mut kept = perm & !libc::S_ISUID;
            if perm & libc::S_IXGRP != 0 {
                kept &= !libc::S_ISGID;
            }
            if kept != perm {
                tx.prepare_cached("UPDATE fs_inode SET mode = (mode & ?2) | ?3 WHERE ino = ?1")?
                    .execute(params![ino.0 as i64, libc::S_IFMT as i64, kept as i64])?;
            }
        }
        if let Some(uid) = set.uid {
            tx.prepare_cached("UPDATE fs_inode SET uid = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, uid as i64])?;
        }
        if let Some(gid) = set.gid {
            tx.prepare_cached("UPDATE fs_inode SET gid = ?2 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, gid as i64])?;
        }
        let resolve = |t: TimeSet| match t {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        };
        if let Some(t) = set.atime.map(resolve) {
            tx.prepare_cached("UPDATE fs_inode SET atime = ?2, atime_nsec = ?3 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, t.sec, t.nsec as i64])?;
        }
        if let Some(t) = mtime.map(resolve) {
            tx.prepare_cached("UPDATE fs_inode SET mtime = ?2, mtime_nsec = ?3 WHERE ino = ?1")?
                .execute(params![ino.0 as i64, t.sec, t.nsec as i64])?;
        }
        rows::touch_ctime(&tx, ino, now)?;
        let op = if set.size.is_some() {
            JournalOp::Truncate
        } else if set.mode.is_some() {
            JournalOp::Chmod
        } else if set.uid.is_some() || set.gid.is_some() {
            JournalOp::Chown
        } else if set.kill_suidgid {
            JournalOp::Chmod
        } else {
            JournalOp::Utimens
        };
        rows::journal_ino(&tx, runner, now, op, ino)?;
        let attr = rows::attr(&tx, ino)?;
        tx.commit()?;
        if set.size.is_some() {
            self.after_free(&mut store)?;
        }
        Ok(attr)
    }

    pub fn statfs(&self) -> VfsResult<StatFs> {
        let store = self.store()?;
        let files: i64 = store
            .conn
            .query_row("SELECT count(*) FROM fs_inode", [], |r| r.get(0))?;
        let dir = store
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let host = host_statvfs(dir);
        let block_size = 4096u32;
        let (blocks, free, avail, ffree) = match host {
            Some(s) => {
                let scale = |n: u64| n.saturating_mul(s.0) / block_size as u64;
                (scale(s.1), scale(s.2), scale(s.3), s.4)
            }
            None => (0, 0, 0, 0),
        };
        Ok(StatFs {
            block_size,
            blocks,
            blocks_free: free,
            blocks_available: avail,
            files: files as u64 + ffree,
            files_free: ffree,
            name_max: names::NAME_MAX as u32,
        })
    }
}

/// (fragment size, blocks, free, available, free inodes) of the filesystem holding `dir`.
fn host_statvfs(dir: &Path) -> Option<(u64, u64, u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, for which all zero bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs writes into the struct we pass; `c` is a valid C string.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    Some((
        s.f_frsize as u64,
        s.f_blocks as u64,
        s.f_bfree as u64,
        s.f_bavail as u64,
        s.f_ffree as u64,
    ))
}
