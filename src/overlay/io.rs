//! Open files and their I/O: delta handles, base files read in place, read-ahead.

use std::fs::File;

use super::Overlay;
use super::copy_up::CopyFor;
use super::host::{io_err, read_at_into};
use super::nodes::{BaseEntry, Node};
use crate::readahead::ReadAhead;
use crate::vfs::{Fh, Ino, VfsError, VfsResult};

/// An open file: the delta's handle, or the host file for a base file only read.
pub(super) enum Handle {
    Delta(Fh),
    Base(File),
}

impl Overlay {
    pub(super) fn next_handle(&self) -> u64 {
        let mut n = self.next_fh.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    }

    pub(super) fn add_handle(&self, h: Handle) -> Fh {
        let fh = self.next_handle();
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, h);
        Fh(fh)
    }

    /// Opens a file; `write` copies a base file up first (reading never does).
    pub fn open(&self, ino: Ino, write: bool) -> VfsResult<Fh> {
        self.pass_through_or(
            |vfs| vfs.open(ino),
            || {
                let node = self.resolve(ino)?;
                let handle = match (&node, write) {
                    (Node::Base(b), false) => {
                        if self.base_stat(&b.path)?.is_some_and(|m| m.is_dir()) {
                            return Err(VfsError::IsDir);
                        }
                        Handle::Base(File::open(self.host(&b.path)).map_err(io_err)?)
                    }
                    _ => Handle::Delta(self.vfs.open(self.copy_up(&node)?)?),
                };
                Ok(self.add_handle(handle))
            },
        )
    }

    /// For an open handle of an untouched base file: that host file, so the kernel can read
    /// it directly (FUSE passthrough).
    pub fn base_file_of(&self, fh: Fh) -> Option<File> {
        match self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh.0)
        {
            Some(Handle::Base(f)) => f.try_clone().ok(),
            _ => None,
        }
    }

    pub fn read(&self, fh: Fh, offset: u64, len: u32) -> VfsResult<Vec<u8>> {
        self.pass_through_or(
            |vfs| vfs.read(fh, offset, len),
            || {
                let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
                match handles.get(&fh.0) {
                    Some(Handle::Delta(d)) => {
                        let d = *d;
                        drop(handles);
                        self.vfs.read(d, offset, len)
                    }
                    Some(Handle::Base(f)) => {
                        let mut buf = Vec::new();
                        read_at_into(f, offset, len, &mut buf)?;
                        Ok(buf)
                    }
                    None => Err(VfsError::BadHandle),
                }
            },
        )
    }

    pub fn write(&self, fh: Fh, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        self.pass_through_or(
            |vfs| vfs.write(fh, offset, buf),
            || {
                let d = match self
                    .handles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&fh.0)
                {
                    Some(Handle::Delta(d)) => *d,
                    Some(Handle::Base(_)) => return Err(VfsError::BadHandle),
                    None => return Err(VfsError::BadHandle),
                };
                self.vfs.write(d, offset, buf)
            },
        )
    }

    /// Reads node `ino` without a handle (the kernel opens files without asking us): the
    /// delta's bytes, or the host file's for an untouched base file.
    pub fn read_node(&self, ino: Ino, offset: u64, len: u32, out: &mut Vec<u8>) -> VfsResult<()> {
        match self.resolve(ino)? {
            Node::Delta(d) => {
                *out = self.vfs.read_ino(d, offset, len)?;
                Ok(())
            }
            Node::Base(b) => {
                if offset == 0 {
                    self.read_ahead_after(ino, &b);
                }
                let file = File::open(self.host(&b.path)).map_err(io_err)?;
                read_at_into(&file, offset, len, out)
            }
        }
    }

    /// A base file starts being read: if its directory is being read in listing order, has
    /// the next small base files read into the host's cache (see `readahead`).
    fn read_ahead_after(&self, node: Ino, entry: &BaseEntry) {
        let order = self
            .listing_orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&entry.parent)
            .cloned();
        let Some(order) = order else { return };
        let Some(at) = order.position(node) else {
            return;
        };
        let read_ahead = self.read_ahead.get_or_init(ReadAhead::new);
        let entries = &order.entries;
        for &(next, worth) in &entries[read_ahead.plan(entry.parent.0, at, entries.len())] {
            if worth && let Ok(Node::Base(b)) = self.resolve(next) {
                read_ahead.warm(self.host(&b.path));
            }
        }
    }

    /// Writes into node `ino` without a handle, copying a base file up first.
    pub fn write_node(&self, ino: Ino, offset: u64, buf: &[u8]) -> VfsResult<u32> {
        match self.resolve(ino)? {
            Node::Delta(d) => self.vfs.write_unopened(d, offset, buf),
            base => {
                self.copy_up_then_write(&base, CopyFor::Data, Some((offset, buf)))?;
                Ok(buf.len() as u32)
            }
        }
    }

    /// The kernel dropped these nodes; files among them that lost their last link go now.
    pub fn forget(&self, nodes: &[Ino]) -> VfsResult<()> {
        // Only orphans need the node resolved; most forgets are of files that still have
        // their names.
        if !self.vfs.has_orphans() {
            return Ok(());
        }
        let inos: Vec<Ino> = nodes
            .iter()
            .filter_map(|n| match self.resolve(*n) {
                Ok(Node::Delta(d)) => Some(d),
                _ => None,
            })
            .collect();
        self.vfs.forget(&inos)
    }

    pub fn release(&self, fh: Fh) -> VfsResult<()> {
        self.pass_through_or(
            |vfs| vfs.release(fh),
            || match self
                .handles
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&fh.0)
            {
                Some(Handle::Delta(d)) => self.vfs.release(d),
                Some(Handle::Base(_)) => Ok(()),
                None => Err(VfsError::BadHandle),
            },
        )
    }

    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: i32) -> VfsResult<()> {
        self.atomically(|| {
            let d = self.copy_up(&self.resolve(ino)?)?;
            self.vfs.fallocate(d, offset, len, mode)
        })
    }

    pub fn fsync(&self) -> VfsResult<()> {
        self.vfs.fsync()
    }
}
