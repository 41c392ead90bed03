//! File contents as fixed-size chunks in `fs_data`.
//!
//! Byte `n` lives in chunk `n / chunk_size` at offset `n % chunk_size`. Every chunk before the
//! file's last one is exactly `chunk_size` bytes; a missing chunk is a hole and reads as zeros,
//! so sparse files cost nothing for their holes.
//!
//! A file copied up partially from a large base file (see [`BaseBytes`]) has only the chunks
//! written since in `fs_data`; a missing chunk inside the base's valid range reads the base
//! file's bytes, and is stored whole the first time part of it changes.

use rusqlite::{Connection, OptionalExtension, params};

use super::error::{VfsError, VfsResult};
use super::types::Ino;

/// Largest file size we accept (SQLite integers are signed 64-bit).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The base file under a partially copied-up file: its first `valid_len` bytes are the
/// file's bytes wherever `fs_data` has no chunk (past them, missing chunks are holes).
pub struct BaseBytes {
    pub file: std::fs::File,
    pub valid_len: u64,
}

impl BaseBytes {
    /// Fills `out` with the base bytes at `offset`, zeros past `valid_len`.
    fn read_into(&self, out: &mut [u8], offset: u64) -> VfsResult<()> {
        use std::os::unix::fs::FileExt;
        let want = self.valid_len.saturating_sub(offset).min(out.len() as u64) as usize;
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut out[got..want], offset + got as u64) {
                // The base file shrank under us: what is gone reads as zeros.
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VfsError::BaseRead(format!("cannot be read: {e}"))),
            }
        }
        out[got..].fill(0);
        Ok(())
    }

    /// Whether chunk `index` has bytes in the base.
    fn covers(&self, chunk_size: u64, index: u64) -> bool {
        index * chunk_size < self.valid_len
    }
}

/// A chunk's stored bytes, or for a partially copied-up file its bytes in the base.
fn load_chunk_or_base(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    index: u64,
    base: Option<&BaseBytes>,
) -> VfsResult<Option<Vec<u8>>> {
    if let Some(chunk) = load_chunk(conn, ino, index)? {
        return Ok(Some(chunk));
    }
    match base {
        Some(b) if b.covers(chunk_size, index) => {
            let start = index * chunk_size;
            let len = (b.valid_len - start).min(chunk_size) as usize;
            let mut chunk = vec![0u8; len];
            b.read_into(&mut chunk, start)?;
            Ok(Some(chunk))
        }
        _ => Ok(None),
    }
}

fn load_chunk(conn: &Connection, ino: Ino, index: u64) -> VfsResult<Option<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM fs_data WHERE ino = ?1 AND chunk_index = ?2")?;
    Ok(stmt
        .query_row(params![ino.0 as i64, index as i64], |r| r.get(0))
        .optional()?)
}

fn store_chunk(conn: &Connection, ino: Ino, index: u64, data: &[u8]) -> VfsResult<()> {
    // An upsert rewrites an existing chunk in place (same rowid, index untouched), where
    // INSERT OR REPLACE would delete and re-insert it.
    let mut stmt = conn.prepare_cached(
        "INSERT INTO fs_data (ino, chunk_index, data) VALUES (?1, ?2, ?3) \
         ON CONFLICT (ino, chunk_index) DO UPDATE SET data = excluded.data",
    )?;
    stmt.execute(params![ino.0 as i64, index as i64, data])?;
    Ok(())
}

/// Reads up to `len` bytes at `offset` of a file of `size` bytes.
pub fn read(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    size: u64,
    offset: u64,
    len: u32,
    base: Option<&BaseBytes>,
) -> VfsResult<Vec<u8>> {
    if offset >= size || len == 0 {
        return Ok(Vec::new());
    }
    let end = size.min(offset.saturating_add(len as u64));
    let mut out = vec![0u8; (end - offset) as usize];
    if let Some(b) = base {
        // The base first; stored chunks then replace it where they exist.
        b.read_into(&mut out, offset)?;
    }
    let first = offset / chunk_size;
    let last = (end - 1) / chunk_size;
    let mut stmt = conn.prepare_cached(
        "SELECT chunk_index, data FROM fs_data WHERE ino = ?1 AND chunk_index BETWEEN ?2 AND ?3",
    )?;
    let mut rows = stmt.query(params![ino.0 as i64, first as i64, last as i64])?;
    while let Some(row) = rows.next()? {
        let index = row.get::<_, i64>(0)? as u64;
        let data = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b,
            _ => &[][..],
        };
        let chunk_start = index * chunk_size;
        let lo = offset.max(chunk_start);
        let hi = end.min(chunk_start + data.len() as u64);
        if lo < hi {
            out[(lo - offset) as usize..(hi - offset) as usize]
                .copy_from_slice(&data[(lo - chunk_start) as usize..(hi - chunk_start) as usize]);
        }
        if base.is_some() {
            // A stored chunk is the whole truth for its range: past its bytes, zeros.
            let zero_from = offset.max(hi);
            let zero_to = end.min(chunk_start + chunk_size);
            if zero_from < zero_to {
                out[(zero_from - offset) as usize..(zero_to - offset) as usize].fill(0);
            }
        }
    }
    Ok(out)
}

/// Pads the last chunk of a file of `old_size` bytes to its full length, because a write or
/// truncate is about to make it a middle chunk of a file of `new_size` bytes.
fn pad_old_tail(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    old_size: u64,
    new_size: u64,
    base: Option<&BaseBytes>,
) -> VfsResult<()> {
    if old_size == 0 || old_size.is_multiple_of(chunk_size) {
        return Ok(());
    }
    let old_last = (old_size - 1) / chunk_size;
    let new_last = (new_size - 1) / chunk_size;
    let target = if new_last > old_last {
        chunk_size
    } else {
        new_size - old_last * chunk_size
    } as usize;
    if let Some(mut chunk) = load_chunk_or_base(conn, chunk_size, ino, old_last, base)?
        && chunk.len() < target
    {
        chunk.resize(target, 0);
        store_chunk(conn, ino, old_last, &chunk)?;
    }
    Ok(())
}

/// Writes `data` at `offset` into a file of `size` bytes; returns the new size.
pub fn write(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    size: u64,
    offset: u64,
    data: &[u8],
    base: Option<&BaseBytes>,
) -> VfsResult<u64> {
    if data.is_empty() {
        return Ok(size);
    }
    let end = offset
        .checked_add(data.len() as u64)
        .filter(|e| *e <= MAX_FILE_SIZE)
        .ok_or(VfsError::TooBig)?;
    let new_size = size.max(end);
    if new_size > size {
        pad_old_tail(conn, chunk_size, ino, size, new_size, base)?;
    }
    let new_last = (new_size - 1) / chunk_size;
    let mut index = offset / chunk_size;
    while index * chunk_size < end {
        let chunk_start = index * chunk_size;
        let lo = offset.max(chunk_start) - chunk_start;
        let hi = end.min(chunk_start + chunk_size) - chunk_start;
        let src = &data[(chunk_start + lo - offset) as usize..(chunk_start + hi - offset) as usize];
        let full_len = if index < new_last {
            chunk_size
        } else {
            new_size - chunk_start
        };
        if lo == 0 && hi == full_len {
            store_chunk(conn, ino, index, src)?;
        } else {
            let mut chunk =
                load_chunk_or_base(conn, chunk_size, ino, index, base)?.unwrap_or_default();
            if (chunk.len() as u64) < full_len {
                chunk.resize(full_len as usize, 0);
            }
            chunk[lo as usize..hi as usize].copy_from_slice(src);
            store_chunk(conn, ino, index, &chunk)?;
        }
        index += 1;
    }
    Ok(new_size)
}

/// Changes the stored contents of a file from `old_size` to `new_size` bytes.
/// For a partially copied-up file the caller also lowers the base's valid length to
/// `new_size` (see [`BaseBytes`]), so bytes cut off never come back from the base.
pub fn truncate(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    old_size: u64,
    new_size: u64,
    base: Option<&BaseBytes>,
) -> VfsResult<()> {
    if new_size > MAX_FILE_SIZE {
        return Err(VfsError::TooBig);
    }
    if new_size > old_size {
        return pad_old_tail(conn, chunk_size, ino, old_size, new_size, base);
    }
    if new_size == old_size {
        return Ok(());
    }
    if new_size == 0 {
        conn.prepare_cached("DELETE FROM fs_data WHERE ino = ?1")?
            .execute([ino.0 as i64])?;
        return Ok(());
    }
    let last = (new_size - 1) / chunk_size;
    conn.prepare_cached("DELETE FROM fs_data WHERE ino = ?1 AND chunk_index > ?2")?
        .execute(params![ino.0 as i64, last as i64])?;
    let keep = (new_size - last * chunk_size) as usize;
    if let Some(mut chunk) = load_chunk_or_base(conn, chunk_size, ino, last, base)?
        && chunk.len() > keep
    {
        chunk.truncate(keep);
        store_chunk(conn, ino, last, &chunk)?;
    }
    Ok(())
}

/// Turns `offset..offset+len` (clipped to `size`) into zeros, dropping whole chunks inside it.
pub fn punch_hole(
    conn: &Connection,
    chunk_size: u64,
    ino: Ino,
    size: u64,
    offset: u64,
    len: u64,
    base: Option<&BaseBytes>,
) -> VfsResult<()> {
    let end = size.min(offset.saturating_add(len));
    if offset >= end {
        return Ok(());
    }
    let mut index = offset / chunk_size;
    while index * chunk_size < end {
        let chunk_start = index * chunk_size;
        let lo = offset.max(chunk_start) - chunk_start;
        let hi = end.min(chunk_start + chunk_size) - chunk_start;
        let is_last = index == (size - 1) / chunk_size;
        // Whole middle chunks become holes; the last chunk stays (zeroed) so it keeps the size.
        let backed = base.is_some_and(|b| b.covers(chunk_size, index));
        if lo == 0 && hi == chunk_size && !is_last && !backed {
            conn.prepare_cached("DELETE FROM fs_data WHERE ino = ?1 AND chunk_index = ?2")?
                .execute(params![ino.0 as i64, index as i64])?;
        } else if let Some(mut chunk) = load_chunk_or_base(conn, chunk_size, ino, index, base)? {
            // (A chunk over the base is stored zeroed: a missing one would read the base.)
            let full = chunk_size.min(size - chunk_start) as usize;
            if chunk.len() < full {
                chunk.resize(full, 0);
            }
            let hi = (hi as usize).min(chunk.len());
            if (lo as usize) < hi {
                chunk[lo as usize..hi].fill(0);
                store_chunk(conn, ino, index, &chunk)?;
            }
        }
        index += 1;
    }
    Ok(())
}
