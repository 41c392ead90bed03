//! File data: reads, writes, fallocate, fsync and content hashes.

use rusqlite::{OptionalExtension, params};

use super::delta::lower_valid_len;
use super::{Fh, FileKind, Ino, JournalOp, Timestamp, Vfs, VfsError, VfsResult, data, rows};

/// Writes made without a handle within this long of the last journaled one are one change.
const UNOPENED_WRITE_BURST: std::time::Duration = std::time::Duration::from_secs(1);

impl Vfs {
    pub fn read(&self, fh: Fh, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        let ino = self.handle_ino(fh)?;
        self.read_ino(ino, offset, len)
    }

    /// Reads without a handle (for tools that inspect a session).
    pub fn read_ino(&self, ino: Ino, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        let chunk_size = self.chunk_size;
        let mut store = self.store()?;
        let tx = store.read_tx()?;
        let attr = rows::attr(&tx, ino)?;
        if attr.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        let base = self.base_bytes(&tx, ino)?;
        data::read(&tx, chunk_size, ino, attr.size, offset, len, base.as_ref())
    }

    /// Writes `buf` at `offset`; returns the number of bytes written (all of them).
    pub fn write(&self, fh: Fh, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        let (ino, journaled) = {
            let files = self.files();
            let h = files.handles.get(&fh.0).ok_or(VfsError::BadHandle)?;
            (h.ino, h.journaled_write)
        };
        self.write_ino(ino, offset, buf, !journaled, false)?;
        if !journaled && let Some(h) = self.files().handles.get_mut(&fh.0) {
            h.journaled_write = true;
        }
        Ok(buf.len() as u32)
    }

    /// Writes `buf` at `offset` (after emptying the file, with `replace`) in one transaction.
    fn write_ino(
        &self,
        ino: Ino,
        offset: u64,
        buf: &[u8],
        journal_it: bool,
        replace: bool,
    ) -> VfsResult<()> {
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        self.write_in(&tx, ino, offset, buf, journal_it, replace)?;
        tx.commit()?;
        Ok(())
    }

    /// The body of [`Vfs::write_ino`], inside the caller's transaction.
    pub(super) fn write_in(
        &self,
        tx: &rusqlite::Connection,
        ino: Ino,
        offset: u64,
        buf: &[u8],
        journal_it: bool,
        replace: bool,
    ) -> VfsResult<()> {
        let now = Timestamp::now();
        let chunk_size = self.chunk_size;
        let attr = rows::attr(tx, ino)?;
        if attr.kind != FileKind::File {
            return Err(if attr.kind == FileKind::Dir {
                VfsError::IsDir
            } else {
                VfsError::Invalid
            });
        }
        let mut base = self.base_bytes(tx, ino)?;
        let old_size = if replace {
            data::truncate(tx, chunk_size, ino, attr.size, 0, base.as_ref())?;
            lower_valid_len(tx, ino, 0)?;
            base = None;
            0
        } else {
            attr.size
        };
        let new_size = data::write(tx, chunk_size, ino, old_size, offset, buf, base.as_ref())?;
        if !buf.is_empty() || replace {
            tx.prepare_cached(
                "UPDATE fs_inode SET size = ?2, mtime = ?3, mtime_nsec = ?4, ctime = ?3, ctime_nsec = ?4 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, new_size as i64, now.sec, now.nsec as i64])?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
        }
        if journal_it {
            rows::journal_ino(tx, self.runner(), now, JournalOp::Write, ino)?;
        }
        Ok(())
    }

    /// Writes `buf` at `offset` of `ino` without a handle (a kernel that opens files without
    /// asking us). A burst of writes to one file is journaled once.
    pub fn write_unopened(&self, ino: Ino, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        let journal_it = self.starts_write_burst(ino);
        self.write_ino(ino, offset, buf, journal_it, false)?;
        Ok(buf.len() as u32)
    }

    /// Whether a write without a handle to `ino` now starts a new burst of writes (and so
    /// gets a journal row).
    pub(super) fn starts_write_burst(&self, ino: Ino) -> bool {
        let now = std::time::Instant::now();
        let mut files = self.files();
        let last = files.unopened_writes.insert(ino, now);
        if files.unopened_writes.len() > 4096 {
            files
                .unopened_writes
                .retain(|_, t| now.duration_since(*t) < UNOPENED_WRITE_BURST);
        }
        last.is_none_or(|t| now.duration_since(t) >= UNOPENED_WRITE_BURST)
    }

    /// Replaces the whole contents of a file in one transaction (for tools).
    pub fn write_all_ino(&self, ino: Ino, contents: &[u8]) -> VfsResult<()> {
        self.write_ino(ino, 0, contents, true, true)?;
        self.store()?
            .reclaim_space(Some(crate::store::RECLAIM_BUDGET_PAGES))?;
        Ok(())
    }

    /// fallocate(2): mode 0 (allocate, growing the size), KEEP_SIZE, and PUNCH_HOLE|KEEP_SIZE.
    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: i32) -> VfsResult<()> {
        if len == 0 {
            return Err(VfsError::Invalid);
        }
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= data::MAX_FILE_SIZE)
            .ok_or(VfsError::TooBig)?;
        let now = Timestamp::now();
        let runner = self.runner();
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        match attr.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(VfsError::IsDir),
            _ => return Err(VfsError::NotSupported),
        }
        let keep_size = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        let punch = mode & libc::FALLOC_FL_PUNCH_HOLE != 0;
        if mode & !(libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE) != 0
            || (punch && !keep_size)
        {
            return Err(VfsError::NotSupported);
        }
        let base = self.base_bytes(&tx, ino)?;
        if punch {
            data::punch_hole(&tx, chunk_size, ino, attr.size, offset, len, base.as_ref())?;
            tx.prepare_cached("DELETE FROM fs_content_hash WHERE ino = ?1")?
                .execute([ino.0 as i64])?;
            tx.prepare_cached(
                "UPDATE fs_inode SET mtime = ?2, mtime_nsec = ?3, ctime = ?2, ctime_nsec = ?3 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, now.sec, now.nsec as i64])?;
        } else if !keep_size && end > attr.size {
            // Space is not reserved in SQLite; the new range is a hole that reads as zeros.
            data::truncate(&tx, chunk_size, ino, attr.size, end, base.as_ref())?;
            tx.prepare_cached(
                "UPDATE fs_inode SET size = ?2, ctime = ?3, ctime_nsec = ?4 WHERE ino = ?1",
            )?
            .execute(params![ino.0 as i64, end as i64, now.sec, now.nsec as i64])?;
        } else {
            return Ok(());
        }
        rows::journal_ino(&tx, runner, now, JournalOp::Fallocate, ino)?;
        tx.commit()?;
        Ok(())
    }

    /// fsync(2): returns once every committed change, this file's included, is on disk.
    pub fn fsync(&self) -> VfsResult<()> {
        self.writer()?.sync()?;
        Ok(())
    }

    /// The blake3 hash of a file's contents, computed once and kept until the file changes.
    pub fn content_hash(&self, ino: Ino) -> VfsResult<[u8; 32]> {
        let chunk_size = self.chunk_size;
        let mut store = self.writer()?;
        let tx = store.write_tx()?;
        let attr = rows::attr(&tx, ino)?;
        if attr.kind != FileKind::File {
            return Err(VfsError::Invalid);
        }
        let cached: Option<Vec<u8>> = tx
            .prepare_cached("SELECT blake3 FROM fs_content_hash WHERE ino = ?1 AND size = ?2")?
            .query_row(params![ino.0 as i64, attr.size as i64], |r| r.get(0))
            .optional()?;
        if let Some(h) = cached.and_then(|h| <[u8; 32]>::try_from(h).ok()) {
            return Ok(h);
        }
        let base = self.base_bytes(&tx, ino)?;
        let mut hasher = blake3::Hasher::new();
        let mut offset = 0;
        while offset < attr.size {
            let step = (1u64 << 20).min(attr.size - offset);
            let part = data::read(
                &tx,
                chunk_size,
                ino,
                attr.size,
                offset,
                step as u32,
                base.as_ref(),
            )?;
            hasher.update(&part);
            offset += step;
        }
        let hash = *hasher.finalize().as_bytes();
        tx.prepare_cached(
            "INSERT OR REPLACE INTO fs_content_hash (ino, blake3, size) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![ino.0 as i64, &hash[..], attr.size as i64])?;
        tx.commit()?;
        Ok(hash)
    }
}
