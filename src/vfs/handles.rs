//! Open handles of this process, and when a file that lost its last link may go.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::{Fh, FileKind, Ino, Vfs, VfsError, VfsResult, rows};

/// What an open handle refers to.
pub(super) struct Handle {
    pub(super) ino: Ino,
    /// Whether a `write` row for this handle is already in the journal: a handle's writes are
    /// journaled once, not once per request.
    pub(super) journaled_write: bool,
}

/// Open handles of this process.
#[derive(Default)]
pub(super) struct OpenFiles {
    pub(super) handles: HashMap<u64, Handle>,
    pub(super) next_fh: u64,
    /// Open handles per inode, so an unlinked file keeps its data until the last release.
    pub(super) open_count: HashMap<Ino, u32>,
    /// Open inodes that may have lost their last link (their `fs_orphan` row is checked on
    /// the last release).
    pub(super) orphaned: std::collections::HashSet<Ino>,
    /// Set by a kernel frontend that opens files without telling us (FUSE with no OPEN):
    /// every inode the kernel knows may be open, so a file that loses its last link waits in
    /// `fs_orphan` until the kernel forgets it.
    pub(super) kernel_holds: bool,
    /// Orphans the kernel forgot while handles of ours were still open: freed at the last
    /// release.
    pub(super) forgotten: std::collections::HashSet<Ino>,
    /// Orphans the kernel forgot, to be freed by the next round of maintenance.
    pub(super) to_free: Vec<Ino>,
    /// When each inode last got a `write` journal row from writes made without a handle, so
    /// a burst of such writes is journaled once.
    pub(super) unopened_writes: HashMap<Ino, std::time::Instant>,
}

impl Vfs {
    pub(super) fn files(&self) -> std::sync::MutexGuard<'_, OpenFiles> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this process has `ino` open; if so, marks it as becoming an orphan should it
    /// lose its last link in the current operation.
    pub(super) fn is_open(&self, ino: Ino) -> bool {
        let mut files = self.files();
        let open = files.kernel_holds || files.open_count.contains_key(&ino);
        if open {
            files.orphaned.insert(ino);
        }
        open
    }

    pub(super) fn add_handle(&self, ino: Ino) -> Fh {
        let mut files = self.files();
        let fh = files.next_fh;
        files.next_fh += 1;
        files.handles.insert(
            fh,
            Handle {
                ino,
                journaled_write: false,
            },
        );
        *files.open_count.entry(ino).or_insert(0) += 1;
        Fh(fh)
    }

    pub(super) fn handle_ino(&self, fh: Fh) -> VfsResult<Ino> {
        self.files()
            .handles
            .get(&fh.0)
            .map(|h| h.ino)
            .ok_or(VfsError::BadHandle)
    }

    /// Opens an existing inode for reading and writing; directories are opened with `readdir`.
    pub fn open(&self, ino: Ino) -> VfsResult<Fh> {
        let attr = rows::attr(&self.store()?.conn, ino)?;
        if attr.kind == FileKind::Dir {
            return Err(VfsError::IsDir);
        }
        Ok(self.add_handle(ino))
    }

    /// Closes a handle; the last close of an unlinked file frees it.
    pub fn release(&self, fh: Fh) -> VfsResult<()> {
        let orphaned = {
            let mut files = self.files();
            let handle = files.handles.remove(&fh.0).ok_or(VfsError::BadHandle)?;
            let count = files.open_count.entry(handle.ino).or_insert(1);
            *count -= 1;
            if *count > 0 {
                return Ok(());
            }
            files.open_count.remove(&handle.ino);
            // With a kernel frontend the kernel may still have the file open without a
            // handle of ours; it says so by not having forgotten the inode yet.
            if files.kernel_holds && !files.forgotten.remove(&handle.ino) {
                return Ok(());
            }
            files.orphaned.remove(&handle.ino).then_some(handle.ino)
        };
        if let Some(ino) = orphaned {
            self.free_orphans(&[ino])?;
        }
        Ok(())
    }

    /// Makes files that lose their last link wait for [`Vfs::forget`] before their data goes
    /// (for a kernel frontend that opens files without a handle from us).
    pub fn free_on_forget(&self) {
        self.files().kernel_holds = true;
    }

    /// The kernel dropped these inodes: none is open any more, so orphans among them go
    /// (in one transaction).
    pub fn forget(&self, inos: &[Ino]) -> VfsResult<()> {
        let free: Vec<Ino> = {
            let mut files = self.files();
            if files.orphaned.is_empty() {
                return Ok(());
            }
            let mut free = Vec::new();
            for ino in inos {
                if !files.orphaned.contains(ino) {
                    continue;
                }
                if files.open_count.contains_key(ino) {
                    files.forgotten.insert(*ino);
                } else {
                    files.orphaned.remove(ino);
                    free.push(*ino);
                }
            }
            free
        };
        if free.is_empty() {
            return Ok(());
        }
        // With a maintenance thread, frees are batched: many files deleted at once (rm -rf)
        // then cost one transaction instead of one each.
        if self.background_maintenance.load(Ordering::Relaxed) {
            self.files().to_free.extend(free);
            return Ok(());
        }
        self.free_orphans(&free)
    }

    /// Whether some file that lost its last link is still waiting for its last close.
    pub fn has_orphans(&self) -> bool {
        !self.files().orphaned.is_empty()
    }
}
